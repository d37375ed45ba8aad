// The Redis connection behind the shared index, and its health: a failed or timed-out call
// marks Redis down (logged once per outage); while down, callers short-circuit instead of
// waiting on timeouts, and a probe (PING) brings it back. When it returns after an outage, or
// the server restarted (new run_id), listeners hear 'recovered' and check what was lost (the
// data may well be intact: a paused server, or a restart that reloaded its dataset).
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { APPLY_SCRIPT, ENGINE_SCRIPT, LOOKUP_SCRIPT, SWEEP_SCRIPT } from './scripts.js';

export const DEFAULT_REDIS_ADDRESS = 'redis://127.0.0.1:6379';

/**
 * ioredis, loaded when the first connection is made rather than with this module: it defines
 * `class VerbatimString extends String`, which makes String.prototype's map unstable, and from
 * then on V8 no longer inlines charCodeAt & co. anywhere in the process (~2.5x slower
 * tokenization). A router on the in-memory index never loads it.
 */
function loadRedis(): typeof Redis {
  return (createRequire(import.meta.url)('ioredis') as { Redis: typeof Redis }).Redis;
}

/** llm-d accepts valkey:// (and we accept valkeys://, host:port); Valkey speaks the Redis protocol. */
export function normalizeRedisAddress(address: string | undefined): string {
  const a = (address ?? '').trim();
  if (!a) return DEFAULT_REDIS_ADDRESS;
  if (a.startsWith('valkey://')) return `redis://${a.slice('valkey://'.length)}`;
  if (a.startsWith('valkeys://')) return `rediss://${a.slice('valkeys://'.length)}`;
  if (/^rediss?:\/\//.test(a) || a.startsWith('unix://')) return a;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(a)) throw new Error(`unsupported Redis address scheme: ${a}`);
  return `redis://${a}`;
}

/** The scripts as ioredis custom commands (defined in RedisConnection). */
export interface ScriptCommands {
  kvrApply(metaKey: string, prefix: string, ops: string[]): Promise<number>;
  kvrLookup(metaKey: string, prefix: string, keysHex: string, pods: string, weights: string, specWeight: string, filtered: '0' | '1'): Promise<(string | number)[]>;
  kvrSweep(metaKey: string, prefix: string, limit: string): Promise<[number, number]>;
  kvrEngine(metaKey: string, prefix: string, engineHex: string, pod: string): Promise<string | null>;
}

export class TimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`redis ${what} timed out after ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

export class UnavailableError extends Error {
  constructor() {
    super('redis unavailable');
    this.name = 'UnavailableError';
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
    p.then(
      (v) => { clearTimeout(timer); resolve(v); },
      (e) => { clearTimeout(timer); reject(e); },
    );
  });
}

export interface ConnectionOptions {
  address: string;
  connectTimeoutMs: number;
  probeIntervalMs: number;
  probeTimeoutMs: number;
  logger: Logger;
}

export interface ResyncInfo {
  /**
   * 'restarted': the server restarted without the writes it had acknowledged; 'data-lost': the
   * same without a restart (flushed, or a failover to a stale replica); 'writes-lost': writes of
   * `pods` were dropped or not applied while it was down or slow.
   */
  reason: 'restarted' | 'data-lost' | 'writes-lost';
  /** The pods whose writes were lost; absent = every pod. */
  pods?: string[];
}

export interface RecoveredInfo {
  /** The server's run_id changed (a restart; its data may or may not have survived). */
  restarted: boolean;
}

/**
 * Events: 'up', 'down' (Error), 'recovered' (RecoveredInfo) after an outage or a restart.
 */
export class RedisConnection extends EventEmitter {
  readonly client: Redis;
  readonly scripts: ScriptCommands;
  /** Commands may be sent (connected, and no failure since the last successful probe). */
  available = false;
  /** Lookups may be sent: false after a lookup timed out, until a probe gets an answer (writes still go). */
  readsOk = true;
  private slowLogged = false;
  /** The first connection attempt is still under way (callers wait for it instead of failing). */
  connecting = true;
  private everUp = false;
  private runId: string | undefined;
  /** Down (or never up) since the last markUp: the next one is a recovery. */
  private outage = false;
  private probeTimer: NodeJS.Timeout | null = null;
  private probing = false;
  private closed = false;
  private downLogged = false;
  private readonly opts: ConnectionOptions;
  private readyWaiters: (() => void)[] = [];

  constructor(opts: ConnectionOptions) {
    super();
    this.opts = opts;
    const RedisClient = loadRedis();
    this.client = new RedisClient(opts.address, {
      // Fail fast instead of queueing while disconnected: the router must not wait on Redis.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      connectTimeout: opts.connectTimeoutMs,
      retryStrategy: (times) => (this.closed ? null : Math.min(50 * times, 1000)),
      lazyConnect: false,
    });
    this.client.defineCommand('kvrApply', { numberOfKeys: 1, lua: APPLY_SCRIPT });
    this.client.defineCommand('kvrLookup', { numberOfKeys: 1, lua: LOOKUP_SCRIPT });
    this.client.defineCommand('kvrSweep', { numberOfKeys: 1, lua: SWEEP_SCRIPT });
    this.client.defineCommand('kvrEngine', { numberOfKeys: 1, lua: ENGINE_SCRIPT });
    this.scripts = this.client as unknown as ScriptCommands;
    this.client.on('ready', () => { void this.onReady(); });
    this.client.on('error', (err: Error) => this.markDown(err));
    this.client.on('close', () => { if (!this.closed) this.markDown(new Error('connection closed')); });
  }

  /** Resolves once Redis answered, or after `timeoutMs` (the index then starts degraded). */
  waitReady(timeoutMs: number): Promise<boolean> {
    if (this.available) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.readyWaiters = this.readyWaiters.filter((w) => w !== done); resolve(false); }, timeoutMs);
      const done = () => { clearTimeout(timer); resolve(true); };
      this.readyWaiters.push(done);
    });
  }

  /** Any call failure: stop sending until a probe succeeds. */
  markDown(err: Error): void {
    if (this.closed) return;
    this.outage = true;
    if (!this.downLogged) {
      this.downLogged = true;
      this.opts.logger.warn({ err: err.message }, 'redis index unavailable: lookups return no prefix hits and writes are dropped until it recovers');
    }
    if (this.available || this.connecting) {
      this.available = false;
      this.connecting = false;
      this.emit('down', err);
    }
    this.startProbe();
  }

  /** A lookup ran out of time: later lookups short-circuit until a probe answers. */
  suspendReads(err: Error): void {
    if (this.closed || !this.readsOk) return;
    this.readsOk = false;
    if (!this.slowLogged) {
      this.slowLogged = true;
      this.opts.logger.warn({ err: err.message }, 'redis index slow: lookups return no prefix hits until it answers again');
    }
    this.startProbe();
  }

  private async onReady(): Promise<void> {
    if (this.closed) return;
    let runId: string | undefined;
    try {
      const info = await withTimeout(this.client.info('server'), this.opts.probeTimeoutMs, 'INFO');
      runId = /run_id:([0-9a-f]+)/.exec(info)?.[1];
    } catch (err) {
      this.markDown(err as Error);
      return;
    }
    this.markUp(runId);
  }

  private markUp(runId: string | undefined): void {
    if (this.closed) return;
    if (this.available) {
      // only lookups were suspended (slow server): resume them
      if (!this.readsOk) {
        this.readsOk = true;
        this.slowLogged = false;
        this.stopProbe();
        this.opts.logger.info('redis index answering lookups again');
      }
      return;
    }
    this.readsOk = true;
    this.slowLogged = false;
    const restarted = this.runId !== undefined && runId !== undefined && runId !== this.runId;
    if (runId) this.runId = runId;
    const wasUp = this.everUp;
    this.available = true;
    this.connecting = false;
    this.everUp = true;
    this.downLogged = false;
    this.stopProbe();
    if (wasUp) this.opts.logger.info({ restarted }, 'redis index available again');
    this.emit('up');
    for (const w of this.readyWaiters.splice(0)) w();
    const recovered = this.outage || restarted;
    this.outage = false;
    if (recovered) this.emit('recovered', { restarted } satisfies RecoveredInfo);
  }

  private startProbe(): void {
    if (this.probeTimer || this.closed) return;
    this.probeTimer = setInterval(() => { void this.probe(); }, this.opts.probeIntervalMs);
    this.probeTimer.unref();
  }

  private stopProbe(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = null;
  }

  /** While down on a live socket (slow or paused server): PING, then check the run_id. */
  private async probe(): Promise<void> {
    if (this.probing || (this.available && this.readsOk) || this.client.status !== 'ready') return;
    this.probing = true;
    try {
      await withTimeout(this.client.ping(), this.opts.probeTimeoutMs, 'PING');
      const info = await withTimeout(this.client.info('server'), this.opts.probeTimeoutMs, 'INFO');
      this.markUp(/run_id:([0-9a-f]+)/.exec(info)?.[1]);
    } catch {
      // still down; the next tick tries again
    } finally {
      this.probing = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.available = false;
    this.stopProbe();
    for (const w of this.readyWaiters.splice(0)) w();
    try {
      if (this.client.status === 'ready') await withTimeout(this.client.quit(), 500, 'QUIT');
      else this.client.disconnect();
    } catch {
      this.client.disconnect();
    }
  }
}
