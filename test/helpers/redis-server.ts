// A disposable redis-server for tests and benchmarks: a free loopback port, a temp dir, no
// persistence. It can be stopped and started again on the same port (outage tests) and paused
// with SIGSTOP (a Redis that accepts connections but never answers).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServerHandle {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Kill the server (data is lost); the port stays reserved for `start()`. */
  kill(): Promise<void>;
  /** Start again on the same port after `kill()`, with an empty dataset. */
  start(): Promise<void>;
  /** SIGSTOP: connections stay open but nothing is answered. */
  pause(): void;
  /** SIGCONT after `pause()`. */
  resume(): void;
  /** Kill the server and remove its temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  /** Binary to run; defaults to $REDIS_SERVER or the first redis-server/valkey-server found. */
  binary?: string;
  /** Extra command-line arguments (e.g. ['--maxmemory', '64mb']). */
  args?: string[];
}

const CANDIDATES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server', '/usr/bin/valkey-server', '/usr/local/bin/valkey-server'];

export function findRedisServer(): string | undefined {
  if (process.env.REDIS_SERVER) return process.env.REDIS_SERVER;
  return CANDIDATES.find((p) => existsSync(p));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once a PING on `port` gets +PONG, or rejects after `timeoutMs`. */
async function waitForPong(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode})`);
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect({ host: '127.0.0.1', port });
      let buf = '';
      const done = (v: boolean) => { sock.destroy(); resolve(v); };
      sock.setTimeout(200, () => done(false));
      sock.on('error', () => done(false));
      sock.on('connect', () => sock.write('PING\r\n'));
      sock.on('data', (d) => { buf += d.toString(); if (buf.includes('\r\n')) done(buf.startsWith('+PONG')); });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crashed test must not leave redis-server processes behind.
  process.on('exit', () => { for (const c of live) c.kill('SIGKILL'); });
}

/** Start a redis-server on a free loopback port. Throws when no binary is installed. */
export async function startRedisServer(opts: RedisServerOptions = {}): Promise<RedisServerHandle> {
  const binary = opts.binary ?? findRedisServer();
  if (!binary) throw new Error('redis-server not found (install the redis-server package or set $REDIS_SERVER)');
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), 'kvrouter-redis-'));
  let port = 0;
  let child: ChildProcess | undefined;
  let stopped = false;

  const spawnOn = async (p: number): Promise<void> => {
    const c = spawn(binary, ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', '', '--loglevel', 'warning', ...(opts.args ?? [])], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr?.on('data', (d) => { stderr += d.toString(); });
    live.add(c);
    c.on('exit', () => live.delete(c));
    child = c;
    try {
      await waitForPong(p, c, 5000);
    } catch (err) {
      c.kill('SIGKILL');
      throw new Error(`${(err as Error).message}${stderr ? `: ${stderr.trim()}` : ''}`, { cause: err });
    }
  };

  // The free port can be taken between probing and binding; retry a few times.
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await spawnOn(port);
      break;
    } catch (err) {
      if (attempt >= 4) { rmSync(dir, { recursive: true, force: true }); throw err; }
    }
  }

  const kill = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    });
  };

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    start: async () => {
      if (stopped) throw new Error('redis-server handle already stopped');
      if (child) return;
      await spawnOn(port);
    },
    pause: () => { child?.kill('SIGSTOP'); },
    resume: () => { child?.kill('SIGCONT'); },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
