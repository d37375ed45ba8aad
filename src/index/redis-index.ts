// KvBlockIndex on Redis / Valkey, shared by every router replica (active-active replicas see one index).
//
// Layout: src/index/redis/layout.ts. Scripts: src/index/redis/scripts.ts.
// - Writes (add/evict/clear/addSpeculative) are buffered in call order and sent as one
//   atomic Lua call per batch on the next macrotask (or at once when the batch is large), over
//   the single connection every read also uses, so any later read sees them.
// - A lookup is one Lua call whatever the prompt length: it walks the keys server-side and
//   returns each pod's contiguous run and tier-weighted score.
// - Redis down or slow: calls time out fast (lookups 50 ms by default), lookups return an
//   empty result, writes are dropped, both counted; the outage is logged once; nothing throws.
//   When Redis returns, this replica checks what it actually lost: every write batch also
//   increments a per-replica counter stored with the data (P w:<writer>), so comparing that
//   counter with the batches it sent and saw acknowledged tells a paused server or one that
//   restarted with its data (nothing lost: no resync) from lost writes (those pods) or a lost
//   dataset (every pod). Only then is 'resync-needed' emitted, and the event layer rebuilds
//   those pods by replay.
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { BlockKey, BlockKeys, IndexStats, KeyType, KvBlockIndex, PodEntry, PodId, PrefixMatch, RemovalCounts } from './types.js';
import { DEFAULT_TIER_WEIGHTS } from './types.js';
import type { Clock } from '../util/clock.js';
import { SpeculativeTtl } from './speculative-ttl.js';
import { DEFAULT_KEY_PREFIX, hexToKey, keyNames, keysToHex, keyToHex, type RedisKeyNames } from './redis/layout.js';
import { randomUUID } from 'node:crypto';
import { withDefaults } from '../util/options.js';
import { RedisConnection, normalizeRedisAddress, withTimeout, type RecoveredInfo, type ResyncInfo } from './redis/connection.js';

export interface RedisIndexConfig {
  /** redis://, rediss://, valkey://, valkeys:// or host:port. Default redis://127.0.0.1:6379. */
  address?: string;
  /** Prefix of every key, so several indexes can share a server. Default "kvr:". */
  keyPrefix?: string;
  /** Tier weights (unknown tiers weigh 1.0). Default gpu 1.0, cpu 0.8. */
  tierWeights?: Readonly<Record<string, number>>;
  /** Weight of a speculative entry in scoring. Default: the "gpu" weight. */
  speculativeWeight?: number;
  /** Budget of one lookup before it returns an empty result. Default 50 ms. */
  lookupTimeoutMs?: number;
  /** Budget of one write batch / getRequestKey / stats call. Default 2000 ms. */
  writeTimeoutMs?: number;
  /** Extra delay before a write batch is sent; 0 = next macrotask. Default 0. */
  flushDelayMs?: number;
  /** Send a batch at once when it holds this many block operations. Default 4096. */
  maxBatchBlocks?: number;
  /** Block operations buffered or in flight beyond which new writes are dropped. Default 1,000,000. */
  maxPendingBlocks?: number;
  /** How often expired speculative entries are swept (any replica may sweep). Default 500 ms. */
  sweepIntervalMs?: number;
  /** Local engine->request key cache for getRequestKey (entries). Default 200,000. */
  engineCacheSize?: number;
  /** While down: how often to probe Redis. Default 250 ms. */
  probeIntervalMs?: number;
  connectTimeoutMs?: number;
}

type RedisTunables = Omit<RedisIndexConfig, 'address' | 'keyPrefix' | 'tierWeights' | 'speculativeWeight'>;
const REDIS_DEFAULTS: Required<RedisTunables> = {
  lookupTimeoutMs: 50,
  writeTimeoutMs: 2000,
  flushDelayMs: 0,
  maxBatchBlocks: 4096,
  maxPendingBlocks: 1_000_000,
  sweepIntervalMs: 500,
  engineCacheSize: 200_000,
  probeIntervalMs: 250,
  connectTimeoutMs: 1000,
};

export interface RedisIndexDeps {
  logger?: Logger;
  /** Redis-specific counters (up, failures, dropped writes, resyncs) go here. */
  registry?: Registry;
  /** Time for this replica's speculative-expiry timer (Redis applies the TTL itself). Default realClock. */
  clock?: Clock;
}

export interface RedisIndexEvents {
  'resync-needed': [ResyncInfo];
  up: [];
  down: [Error];
}

type WriteOp = string[];

const SWEEP_LIMIT = 2000;
/** Write batches whose outcome is unknown that are remembered by their pods; beyond, all pods count as lost. */
const MAX_FAILED_BATCHES = 10_000;
const MAX_LOST_PODS = 100_000;
/** Fields after the op letter, per op type (scripts.ts APPLY_SCRIPT). */
const OP_ARITY: Readonly<Record<string, number>> = { a: 4, e: 4, c: 1, s: 3, w: 1 };

/** The pods a flat op list writes to. */
function podsOf(ops: readonly string[]): string[] {
  const pods = new Set<string>();
  for (let i = 0; i < ops.length; ) {
    const arity = OP_ARITY[ops[i]] ?? 0;
    if (ops[i] !== 'w' && arity > 0) pods.add(ops[i + 1]);
    i += 1 + Math.max(1, arity);
  }
  return [...pods];
}

/** prom-client metrics of the Redis backend; shared when several indexes use one registry. */
class RedisIndexCounters {
  lookupFailures: Counter<'reason'>;
  writesDropped: Counter<'reason'>;
  resyncs: Counter;
  up: Gauge;
  batches: Histogram;

  constructor(registry: Registry | undefined) {
    const reg = registry ? [registry] : [];
    const get = <T>(name: string, make: () => T): T => (registry?.getSingleMetric(name) as T | undefined) ?? make();
    this.lookupFailures = get('kvrouter_index_redis_lookup_failures_total', () => new Counter({ name: 'kvrouter_index_redis_lookup_failures_total', help: 'Lookups answered with no hits because Redis was unavailable, slow or failing', labelNames: ['reason'], registers: reg }));
    this.writesDropped = get('kvrouter_index_redis_writes_dropped_total', () => new Counter({ name: 'kvrouter_index_redis_writes_dropped_total', help: 'Block operations (add/evict/speculative per key, clear per pod) not applied to Redis', labelNames: ['reason'], registers: reg }));
    this.resyncs = get('kvrouter_index_redis_resyncs_total', () => new Counter({ name: 'kvrouter_index_redis_resyncs_total', help: 'Times Redis came back after losing writes or restarting', registers: reg }));
    this.up = get('kvrouter_index_redis_up', () => new Gauge({ name: 'kvrouter_index_redis_up', help: '1 while the Redis index answers, 0 during an outage', registers: reg }));
    this.batches = get('kvrouter_index_redis_write_batch_blocks', () => new Histogram({ name: 'kvrouter_index_redis_write_batch_blocks', help: 'Block operations per write batch sent to Redis', buckets: [1, 4, 16, 64, 256, 1024, 4096, 16384], registers: reg }));
  }
}

function failureReason(err: unknown): string {
  const name = (err as Error)?.name;
  if (name === 'TimeoutError') return 'timeout';
  if (name === 'UnavailableError') return 'unavailable';
  // the server answered with an error (e.g. OOM at maxmemory with noeviction): it is up
  if (name === 'ReplyError') return 'rejected';
  return 'error';
}

export class RedisKvBlockIndex extends EventEmitter<RedisIndexEvents> implements KvBlockIndex {
  readonly keys: RedisKeyNames;
  private readonly conn: RedisConnection;
  private readonly logger: Logger;
  /** Entries Redis removed on its own (events, TTL): read by InstrumentedKvBlockIndex, which adds the other metrics. */
  readonly removals: RemovalCounts = { evictions: 0, capacityEvictions: 0 };
  private readonly counters: RedisIndexCounters;
  private readonly weightsArg: string;
  private readonly specWeightArg: string;
  private readonly cfg: Required<RedisTunables>;

  private ops: WriteOp = [];
  private pendingBlocks = 0;
  private inflightBlocks = 0;
  private flushTimer: NodeJS.Immediate | NodeJS.Timeout | null = null;
  private lastFlush: Promise<void> = Promise.resolve();
  /** Per pod: engine key -> its request keys as this replica wrote them (answers getRequestKey without a round trip). */
  private readonly engineCache = new Map<PodId, Map<string, string>>(); // engine hex -> request hex list, as in Redis
  private engineCached = 0;
  /** This replica's reservations: when one is due, sweep (other replicas' are left to the periodic sweep). */
  private readonly specTtl: SpeculativeTtl<undefined>;
  private readonly sweepTimer: NodeJS.Timeout;
  private sweeping = false;
  private closed = false;
  private invalidLogged = new Set<string>();
  /** This replica's write counter in Redis (incremented by every batch it applies). */
  readonly writerKey: string;
  private batchesSent = 0;
  private batchesAcked = 0;
  /** Sent batches that failed or timed out: applied or not, Redis decides (pause) or not (reset). */
  private failedBatches: string[][] = [];
  /** Pods with writes dropped before sending; null = too many to track: every pod. */
  private lostPods: Set<string> | null = new Set();

  constructor(config: RedisIndexConfig = {}, deps: RedisIndexDeps = {}) {
    super();
    this.logger = (deps.logger ?? pino({ level: 'info' })).child({ component: 'redis-index' });
    this.counters = new RedisIndexCounters(deps.registry);
    this.keys = keyNames(config.keyPrefix ?? DEFAULT_KEY_PREFIX);
    this.writerKey = `${this.keys.prefix}w:${randomUUID()}`;
    const weights = { ...DEFAULT_TIER_WEIGHTS, ...(config.tierWeights ?? {}) };
    for (const tier of Object.keys(weights)) this.checkTier(tier, true);
    this.weightsArg = Object.entries(weights).map(([t, w]) => `${t}=${w}`).join(',');
    this.specWeightArg = String(config.speculativeWeight ?? weights.gpu ?? 1);
    const { address: _address, keyPrefix: _keyPrefix, tierWeights: _tierWeights, speculativeWeight: _speculativeWeight, ...tunables } = config;
    this.cfg = withDefaults(REDIS_DEFAULTS, tunables);
    const address = normalizeRedisAddress(config.address);
    this.conn = new RedisConnection({
      address,
      connectTimeoutMs: this.cfg.connectTimeoutMs,
      probeIntervalMs: this.cfg.probeIntervalMs,
      probeTimeoutMs: Math.max(this.cfg.lookupTimeoutMs * 4, 200),
      logger: this.logger,
    });
    this.counters.up.set(0);
    this.conn.on('up', () => {
      this.counters.up.set(1);
      this.sendBatch(); // writes buffered during the first connection attempt
      this.emit('up');
    });
    this.conn.on('down', (err: Error) => {
      this.counters.up.set(0);
      this.sendBatch(); // drops (and counts) what waited for a connection
      this.emit('down', err);
    });
    this.conn.on('recovered', (info: RecoveredInfo) => {
      void this.checkLoss(info.restarted);
    });
    this.specTtl = new SpeculativeTtl<undefined>({ clock: deps.clock, expire: () => {}, afterTimer: () => this.sweep(), slackMs: 2, maxPending: 100_000 });
    this.sweepTimer = setInterval(() => { void this.sweep(); }, this.cfg.sweepIntervalMs);
    this.sweepTimer.unref();
    this.logger.debug({ address: address.replace(/\/\/[^@/]*@/, '//***@'), prefix: this.keys.prefix }, 'redis index configured');
  }

  /** Create and wait (up to `timeoutMs`) for the first connection; a down Redis still yields a (degraded) index. */
  static async connect(config: RedisIndexConfig = {}, deps: RedisIndexDeps = {}, timeoutMs = 2000): Promise<RedisKvBlockIndex> {
    const idx = new RedisKvBlockIndex(config, deps);
    await idx.ready(timeoutMs);
    return idx;
  }

  /** True once connected; false after `timeoutMs` without Redis. */
  ready(timeoutMs = 2000): Promise<boolean> {
    return this.conn.waitReady(timeoutMs);
  }

  /** The underlying ioredis client (admin tools, tests, benchmarks). */
  get client(): Redis {
    return this.conn.client;
  }

  /** While the first connection attempt is under way, wait for it (within `budgetMs`). */
  private async usable(budgetMs: number): Promise<boolean> {
    if (this.conn.available) return true;
    if (!this.conn.connecting) return false;
    return this.conn.waitReady(budgetMs);
  }

  /** Redis is answering. */
  get available(): boolean {
    return this.conn.available;
  }

  /** Register the resync hook (same as on('resync-needed')). Returns an unsubscribe function. */
  onResyncNeeded(fn: (info: ResyncInfo) => void): () => void {
    this.on('resync-needed', fn);
    return () => this.off('resync-needed', fn);
  }

  // ---------------- writes ----------------

  add(engineKeys: BlockKeys | null, requestKeys: BlockKeys, entry: PodEntry): void {
    if (requestKeys.length === 0) return;
    const tier = this.tierOf(entry);
    if (tier === null || !this.checkPod(entry.pod)) return;
    const eng = engineKeys && engineKeys.length > 0 && !entry.speculative ? engineKeys : null;
    const reqHex = keysToHex(requestKeys);
    const engHex = eng ? keysToHex(eng) : '';
    if (eng) this.rememberMapping(entry.pod, engHex, reqHex);
    this.enqueue(requestKeys.length + (eng?.length ?? 0), ['a', entry.pod, entry.speculative ? `~${tier}` : tier, reqHex, engHex]);
  }

  evict(key: BlockKey, keyType: KeyType, entry: PodEntry): void {
    const tier = this.tierOf(entry);
    if (tier === null || !this.checkPod(entry.pod)) return;
    // Redis decides whether the mapping survives; until then ask it rather than the cache.
    if (keyType === 'engine') this.forgetMapping(entry.pod, key);
    this.enqueue(1, ['e', entry.pod, entry.speculative ? `~${tier}` : tier, keyToHex(key), keyType === 'engine' ? 'e' : 'r']);
  }

  clear(pod: PodId): void {
    if (!this.checkPod(pod)) return;
    this.forgetPod(pod);
    this.enqueue(1, ['c', pod]);
  }

  addSpeculative(requestKeys: BlockKeys, pod: PodId, ttlMs: number): void {
    if (requestKeys.length === 0 || !this.checkPod(pod)) return;
    const ttl = Math.max(0, Math.ceil(ttlMs));
    this.enqueue(requestKeys.length, ['s', pod, String(ttl), keysToHex(requestKeys)]);
    this.specTtl.add(undefined, ttl);
  }

  /** Send buffered writes now; resolves when every write sent so far was applied (or dropped). */
  async flush(): Promise<void> {
    if (this.conn.connecting) await this.conn.waitReady(this.cfg.writeTimeoutMs);
    this.sendBatch();
    return this.lastFlush;
  }

  private enqueue(blocks: number, op: string[]): void {
    if (this.closed) return;
    if (this.pendingBlocks + this.inflightBlocks + blocks > this.cfg.maxPendingBlocks) {
      this.drop(blocks, 'backlog', op);
      return;
    }
    for (const part of op) this.ops.push(part);
    this.pendingBlocks += blocks;
    if (this.pendingBlocks >= this.cfg.maxBatchBlocks) this.sendBatch();
    else if (!this.flushTimer) {
      this.flushTimer = this.cfg.flushDelayMs > 0
        ? setTimeout(() => this.sendBatch(), this.cfg.flushDelayMs)
        : setImmediate(() => this.sendBatch());
    }
  }

  private drop(blocks: number, reason: string, ops: readonly string[]): void {
    this.counters.writesDropped.inc({ reason }, blocks);
    this.noteLost(podsOf(ops));
  }

  private noteLost(pods: readonly string[]): void {
    if (!this.lostPods) return;
    for (const p of pods) this.lostPods.add(p);
    if (this.lostPods.size > MAX_LOST_PODS) this.lostPods = null;
  }

  /**
   * After an outage or a restart: what did this replica lose? Its counter in Redis says how many
   * of the batches it sent were applied. Fewer than were acknowledged: the dataset is gone
   * (every pod). Failed batches not all applied: their pods. Dropped before sending: their pods.
   * Anything lost is announced with 'resync-needed'; a paused server, or one that restarted with
   * its data, announces nothing.
   */
  private async checkLoss(restarted: boolean): Promise<void> {
    if (this.closed) return;
    this.sendBatch();
    const sent = this.batchesSent;
    let applied: number;
    try {
      applied = Number((await withTimeout(this.conn.client.get(this.writerKey), this.cfg.writeTimeoutMs, 'write counter')) ?? 0);
    } catch (err) {
      this.conn.markDown(err as Error); // checked again on the next recovery
      return;
    }
    // every batch sent before the GET has been answered by now (one connection, in order)
    const failed = this.failedBatches;
    const acked = this.batchesAcked;
    this.failedBatches = [];
    const lost = this.lostPods;
    this.lostPods = new Set();
    this.batchesAcked = applied;
    this.batchesSent = applied + (this.batchesSent - sent);
    let info: ResyncInfo | null = null;
    if (applied < acked) info = { reason: restarted ? 'restarted' : 'data-lost' };
    else {
      const pods = lost === null ? null : new Set(lost);
      // failed batches that Redis applied anyway (a pause) lost nothing
      if (applied < acked + failed.length) for (const ops of failed) for (const p of podsOf(ops)) pods?.add(p);
      if (pods === null) info = { reason: 'writes-lost' };
      else if (pods.size > 0) info = { reason: 'writes-lost', pods: [...pods] };
    }
    if (!info) {
      this.logger.info({ restarted, batches: applied }, 'redis index back with every write this replica made: nothing to resync');
      return;
    }
    // whatever this replica remembered about the lost pods' engine keys may be gone too
    if (info.pods) for (const p of info.pods) this.forgetPod(p);
    else {
      this.engineCache.clear();
      this.engineCached = 0;
    }
    this.counters.resyncs.inc();
    this.logger.warn({ reason: info.reason, pods: info.pods?.length ?? 'all', applied, acked, failed: failed.length }, 'redis index lost writes: asking for a resync');
    this.emit('resync-needed', info);
  }

  private forgetPod(pod: PodId): void {
    const cached = this.engineCache.get(pod);
    if (!cached) return;
    this.engineCached -= cached.size;
    this.engineCache.delete(pod);
  }

  /** Send the buffer as one atomic script call; calls go out in order on one connection. */
  private sendBatch(): void {
    if (this.flushTimer) {
      if (this.cfg.flushDelayMs > 0) clearTimeout(this.flushTimer as NodeJS.Timeout);
      else clearImmediate(this.flushTimer as NodeJS.Immediate);
      this.flushTimer = null;
    }
    if (this.ops.length === 0) return;
    if (this.conn.connecting) return; // sent on 'up', dropped on 'down'
    const ops = this.ops;
    const blocks = this.pendingBlocks;
    this.ops = [];
    this.pendingBlocks = 0;
    if (!this.conn.available) {
      this.drop(blocks, 'unavailable', ops);
      return;
    }
    this.inflightBlocks += blocks;
    this.counters.batches.observe(blocks);
    // last op: count the batch in this replica's counter, so a recovery can tell what was applied
    ops.push('w', this.writerKey);
    this.batchesSent++;
    const sent = withTimeout(this.conn.scripts.kvrApply(this.keys.meta, this.keys.prefix, ops), this.cfg.writeTimeoutMs, 'write batch').then(
      (removed) => {
        this.batchesAcked++;
        this.removals.evictions += removed;
      },
      (err: unknown) => {
        const reason = failureReason(err);
        this.counters.writesDropped.inc({ reason }, blocks);
        if (reason === 'rejected') {
          // a script error leaves part of the batch applied: its pods are lost either way
          this.noteLost(podsOf(ops));
          this.rejected(err as Error);
        } else {
          // timed out or cut off: Redis may still apply it (a paused server); the counter tells
          if (this.failedBatches.length < MAX_FAILED_BATCHES) this.failedBatches.push(ops);
          else this.lostPods = null;
          this.conn.markDown(err as Error);
        }
      },
    ).finally(() => {
      this.inflightBlocks -= blocks;
    });
    this.lastFlush = sent;
  }

  private rememberMapping(pod: PodId, engHex: string, reqHex: string): void {
    if (this.cfg.engineCacheSize <= 0) return;
    let cache = this.engineCache.get(pod);
    if (!cache) this.engineCache.set(pod, (cache = new Map()));
    // Same ratio mapping and list rule as the script: each request key once, a new one last.
    // Hex strings, not bigints: no allocation per key read, cheap string hashing.
    const nE = engHex.length / 16;
    const nR = reqHex.length / 16;
    const n = Math.max(nE, nR);
    for (let i = 0; i < n; i++) {
      const ei = Math.floor((i * nE) / n) * 16;
      const ri = Math.floor((i * nR) / n) * 16;
      const e = engHex.slice(ei, ei + 16);
      const r = reqHex.slice(ri, ri + 16);
      const had = cache.get(e);
      if (had === undefined) {
        cache.set(e, r);
        this.engineCached++;
      } else if (had !== r) {
        let seen = false;
        for (let j = 0; j < had.length && !seen; j += 16) seen = had.startsWith(r, j);
        if (!seen) cache.set(e, had + r);
      }
    }
    if (this.engineCached > this.cfg.engineCacheSize) {
      // Bounded: drop the oldest half of each pod's cache until back under half the bound.
      for (const [p, c] of this.engineCache) {
        let k = c.size >> 1 || c.size;
        for (const key of c.keys()) {
          if (k-- <= 0) break;
          c.delete(key);
          this.engineCached--;
        }
        if (c.size === 0) this.engineCache.delete(p);
        if (this.engineCached <= this.cfg.engineCacheSize >> 1) break;
      }
    }
  }

  private forgetMapping(pod: PodId, engineKey: bigint): void {
    const cache = this.engineCache.get(pod);
    if (cache?.delete(keyToHex(engineKey))) this.engineCached--;
  }

  // ---------------- reads ----------------

  getRequestKey(engineKey: BlockKey, pod?: PodId): BlockKey | undefined | Promise<BlockKey | undefined> {
    if (pod !== undefined) {
      const cached = this.engineCache.get(pod)?.get(keyToHex(engineKey));
      if (cached !== undefined) return hexToKey(cached.slice(-16));
    }
    return this.fetchRequestKey(engineKey, pod);
  }

  private async fetchRequestKey(engineKey: BlockKey, pod?: PodId): Promise<BlockKey | undefined> {
    if (!(await this.usable(this.cfg.writeTimeoutMs))) return undefined;
    this.sendBatch();
    try {
      const last = await withTimeout(this.conn.scripts.kvrEngine(this.keys.meta, this.keys.prefix, keyToHex(engineKey), pod ?? ''), this.cfg.writeTimeoutMs, 'getRequestKey');
      return last && last.length === 16 ? hexToKey(last) : undefined;
    } catch (err) {
      this.conn.markDown(err as Error);
      return undefined;
    }
  }

  async longestPrefix(requestKeys: BlockKeys, pods?: ReadonlySet<PodId> | null): Promise<Map<PodId, PrefixMatch>> {
    const result = new Map<PodId, PrefixMatch>();
    if (requestKeys.length === 0 || (pods && pods.size === 0)) return result;
    if ((!this.conn.available && !(await this.usable(this.cfg.lookupTimeoutMs))) || !this.conn.readsOk) {
      this.counters.lookupFailures.inc({ reason: 'unavailable' });
      return result;
    }
    this.sendBatch();
    let raw: (string | number)[];
    try {
      raw = await withTimeout(
        this.conn.scripts.kvrLookup(this.keys.meta, this.keys.prefix, keysToHex(requestKeys), pods ? [...pods].join('\n') : '', this.weightsArg, this.specWeightArg, pods ? '1' : '0'),
        this.cfg.lookupTimeoutMs,
        'lookup',
      );
    } catch (err) {
      const reason = failureReason(err);
      this.counters.lookupFailures.inc({ reason });
      // a slow answer suspends lookups only; a broken connection stops everything
      if (reason === 'timeout') this.conn.suspendReads(err as Error);
      else if (reason === 'rejected') this.rejected(err as Error);
      else this.conn.markDown(err as Error);
      return result;
    }
    this.removals.evictions += Number(raw[1]); // raw[0]: leading blocks hit, what the wrapper derives from the result
    for (let i = 2; i + 2 < raw.length; i += 3) result.set(String(raw[i]), { blocks: Number(raw[i + 1]), weighted: Number(raw[i + 2]) });
    return result;
  }

  async stats(): Promise<IndexStats> {
    const empty: IndexStats = { keys: 0, entries: 0, engineKeys: 0, capacity: Number.POSITIVE_INFINITY };
    if (!(await this.usable(this.cfg.writeTimeoutMs))) return empty;
    this.sendBatch();
    try {
      const [k, e, g] = await withTimeout(this.conn.client.hmget(this.keys.meta, 'keys', 'entries', 'engine'), this.cfg.writeTimeoutMs, 'stats');
      // Memory is bounded by the server's maxmemory, not by an entry count.
      return { keys: Number(k ?? 0), entries: Number(e ?? 0), engineKeys: Number(g ?? 0), capacity: Number.POSITIVE_INFINITY };
    } catch (err) {
      this.conn.markDown(err as Error);
      return empty;
    }
  }

  /** Expire due speculative reservations now (also runs on timers). Returns the entries removed. */
  async sweep(): Promise<number> {
    if (this.sweeping || !this.conn.available || this.closed) return 0;
    this.sweeping = true;
    try {
      // after this replica's pending writes, so its own reservations are there to expire
      this.sendBatch();
      let total = 0;
      for (let round = 0; round < 10; round++) {
        const [due, removed] = await withTimeout(this.conn.scripts.kvrSweep(this.keys.meta, this.keys.prefix, String(SWEEP_LIMIT)), this.cfg.writeTimeoutMs, 'sweep');
        total += removed;
        if (due < SWEEP_LIMIT) break;
      }
      this.removals.evictions += total;
      return total;
    } catch (err) {
      this.conn.markDown(err as Error);
      return 0;
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Delete every key under this index's prefix (tests, `kvrouter` admin). Not part of the
   * KvBlockIndex contract; uses SCAN so other prefixes are untouched.
   */
  async destroyAll(): Promise<void> {
    await this.flush();
    const stream = this.conn.client.scanStream({ match: `${this.keys.prefix}*`, count: 1000 });
    for await (const batch of stream as AsyncIterable<string[]>) {
      if (batch.length) await this.conn.client.unlink(...batch);
    }
    this.engineCache.clear();
    this.engineCached = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.sweepTimer);
    this.specTtl.close();
    await this.flush().catch(() => {});
    this.closed = true;
    await this.conn.close();
    this.counters.up.set(0);
  }

  // ---------------- validation ----------------

  /** The stored tier: lower-cased, "gpu" when empty (as the in-memory index); null when unstorable. */
  private tierOf(entry: PodEntry): string | null {
    const tier = (entry.tier || 'gpu').toLowerCase();
    return this.checkTier(tier, false) ? tier : null;
  }

  private checkPod(pod: string): boolean {
    if (pod.length > 0 && !/[\t\n]/.test(pod)) return true;
    this.invalid(`pod id ${JSON.stringify(pod)} cannot be stored (empty, tab or newline)`);
    return false;
  }

  private checkTier(tier: string, strict: boolean): boolean {
    if (tier.length > 0 && tier[0] !== '~' && !/[\t\n*,=]/.test(tier)) return true;
    const msg = `tier ${JSON.stringify(tier)} cannot be stored (empty, leading '~', or tab, newline, '*', ',', '=')`;
    if (strict) throw new Error(msg);
    this.invalid(msg);
    return false;
  }

  /** Redis refused a call (OOM, script error): it is up, so no outage; log each kind of refusal once. */
  private rejected(err: Error): void {
    const kind = err.message.split(' ')[0] || 'error';
    if (this.invalidLogged.has(`rejected:${kind}`) || this.invalidLogged.size > 100) return;
    this.invalidLogged.add(`rejected:${kind}`);
    this.logger.error({ err: err.message }, 'redis index: Redis refused a call (writes are dropped and counted; check maxmemory)');
  }

  private invalid(msg: string): void {
    this.counters.writesDropped.inc({ reason: 'invalid' });
    if (this.invalidLogged.has(msg) || this.invalidLogged.size > 100) return;
    this.invalidLogged.add(msg);
    this.logger.warn(msg);
  }
}
