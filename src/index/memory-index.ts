// In-memory KvBlockIndex on typed arrays (no per-entry objects). The data structures live in
// ./memory/, one per file:
//  - entries.ts: (pod, tier, speculative) interned to small ints with a precomputed weight.
//  - key-table.ts + holder-slabs.ts + record-layout.ts: open addressing from a 64-bit request
//    key to a record that owns a run of holder slots (entry, pod | weight class, ref count).
//  - lru.ts: capacity in entries, enforced with second-chance (CLOCK) LRU over keys: adds and
//    lookups set a reference bit, eviction gives referenced keys one more round.
//  - engine-map.ts: (pod, engine key) -> its request keys, per pod because engine hashes are
//    only meaningful within one engine (random NONE_HASH without PYTHONHASHSEED).
//  - prefix-walk.ts: longest-prefix scoring in one pass over the keys.
// Speculative entries expire through ./speculative-ttl.ts (shared with the Redis backend);
// metrics come from the ./instrumented-index.ts wrapper, which reads `removals`.
import type { BlockKey, BlockKeys, IndexStats, KeyType, KvBlockIndex, PodEntry, PodId, PrefixMatch, RemovalCounts } from './types.js';
import { DEFAULT_TIER_WEIGHTS } from './types.js';
import type { Clock } from '../util/clock.js';
import { SpeculativeTtl } from './speculative-ttl.js';
import * as arrays from './memory/arrays.js';
import { EngineMap } from './memory/engine-map.js';
import { EntryTable } from './memory/entries.js';
import { KeyTable } from './memory/key-table.js';
import { PrefixWalk } from './memory/prefix-walk.js';
import * as layout from './memory/record-layout.js';
// Imported bindings are re-read and checked on every use, which costs a hot loop dearly (measured
// ~25x on a record-field loop); module constants copied from them once are not.
const { NONE, u32view } = arrays;
const { RS, R_USED } = layout;

export interface InMemoryIndexOptions {
  /** Maximum (request key, entry) pairs; least recently used keys are dropped beyond it. */
  capacity?: number;
  /** Tier weights; unknown tiers weigh 1.0. Default gpu 1.0, cpu 0.8. */
  tierWeights?: Record<string, number>;
  /** Time for speculative entries' TTL. Default realClock. */
  clock?: Clock;
}

export const DEFAULT_CAPACITY = 100_000_000;
/** Int32 slots per chunk of speculative key copies (64 KiB: 512 requests of 16 blocks). */
const SPEC_CHUNK = 16_384;

/** A speculative reservation waiting for its TTL. */
interface SpecItem {
  /** The keys' (lo, hi) int32 pairs at [off, off + len) of a shared chunk (see specCopy). */
  chunk: Int32Array;
  off: number;
  len: number;
  entry: number;
  /** The pod's generation when reserved: a clear() in between voids it. */
  gen: number;
}

export class InMemoryKvBlockIndex implements KvBlockIndex {
  readonly capacity: number;
  readonly removals: RemovalCounts = { evictions: 0, capacityEvictions: 0 };
  private readonly ents: EntryTable;
  private readonly keys: KeyTable;
  private readonly engine = new EngineMap();
  private readonly prefix: PrefixWalk;
  private readonly ttl: SpeculativeTtl<SpecItem>;
  /** Chunk that speculative key copies are carved from: one typed array per 512 reservations instead of one ArrayBuffer each; a chunk lives until its last reservation expires, so one long TTL among short ones holds at most its 64 KiB chunk. */
  private specChunk = new Int32Array(0);
  private specTop = 0;
  /** Engine mappings beyond this trigger a sweep of mappings whose request keys are gone. */
  private engineSweepAt: number;
  /** Sink for `touch` reads, so the compiler keeps them. */
  private touched = 0;
  private closed = false;

  constructor(opts: InMemoryIndexOptions = {}) {
    const cap = opts.capacity ?? DEFAULT_CAPACITY;
    if (!(cap >= 1)) throw new RangeError(`index capacity must be >= 1, got ${cap}`);
    this.capacity = Math.floor(cap);
    this.ents = new EntryTable({ ...DEFAULT_TIER_WEIGHTS, ...(opts.tierWeights ?? {}) });
    this.keys = new KeyTable(this.ents);
    this.prefix = new PrefixWalk(this.keys, this.ents);
    this.ttl = new SpeculativeTtl<SpecItem>({ clock: opts.clock, expire: (it) => this.expire(it) });
    this.engineSweepAt = Math.min(4 * this.capacity, 1 << 30) + 1024;
  }

  add(engineKeys: BlockKeys | null, requestKeys: BlockKeys, entry: PodEntry): void {
    if (requestKeys.length === 0) return;
    this.addEntry(entry.speculative ? null : engineKeys, requestKeys, this.ents.entryIndex(entry, true));
  }

  /** add() for a resolved entry id (speculative entries never map engine keys). */
  private addEntry(engineKeys: BlockKeys | null, requestKeys: BlockKeys, e: number): void {
    const nR = requestKeys.length;
    const keys = this.keys;
    const p = this.ents.pod[e];
    const rk = u32view(requestKeys);
    const ek = engineKeys && engineKeys.length > 0 ? u32view(engineKeys) : null;
    if (nR > 1) this.touched ^= keys.touch(rk) ^ (ek ? this.engine.touch(ek, p) : 0);
    for (let i = 0; i < 2 * nR; i += 2) {
      const lo = rk[i];
      const hi = rk[i + 1];
      let r = keys.find(lo, hi);
      if (r === NONE) r = keys.insert(lo, hi);
      else keys.rec[r * RS + R_USED] = 1; // re-stored: used again
      keys.ref(r, e);
    }
    if (ek) {
      // llm-d's ratio mapping when engine and request block sizes differ
      const nE = ek.length >> 1;
      const n = Math.max(nE, nR);
      if (nE === nR) for (let i = 0; i < 2 * n; i += 2) this.mapEngine(p, ek[i], ek[i + 1], rk[i], rk[i + 1]);
      else for (let i = 0; i < n; i++) {
        const ei = Math.floor((i * nE) / n) * 2;
        const ri = Math.floor((i * nR) / n) * 2;
        this.mapEngine(p, ek[ei], ek[ei + 1], rk[ri], rk[ri + 1]);
      }
    }
    if (keys.entries > this.capacity) {
      const n = keys.evictTo(this.capacity);
      this.removals.evictions += n;
      this.removals.capacityEvictions += n;
    }
  }

  private mapEngine(p: number, lo: number, hi: number, rlo: number, rhi: number): void {
    if (this.engine.map(p, lo, hi, rlo, rhi) && this.engine.count > this.engineSweepAt) this.sweepEngine();
  }

  /** Drops engine mappings none of whose request keys the pod still holds (capacity evictions leave them behind). */
  private sweepEngine(): void {
    const { engine, keys } = this;
    const before = engine.count;
    engine.retain((n) => {
      const p = engine.podOf(n);
      const reqs = engine.requestKeys(n);
      for (let i = 0; i < reqs.length; i += 2) {
        const r = keys.find(reqs[i], reqs[i + 1]);
        if (r !== NONE && keys.podHolds(r, p)) return true;
      }
      return false;
    });
    // everything still live: allow growth rather than sweeping again at once
    if (engine.count > before * 0.75) this.engineSweepAt = engine.count * 2 + 1024;
  }

  evict(key: BlockKey, keyType: KeyType, entry: PodEntry): void {
    const e = this.ents.entryIndex(entry, false);
    if (e === NONE) return;
    const { keys, engine } = this;
    const lo = Number(key & 0xffffffffn) | 0;
    const hi = Number((key >> 32n) & 0xffffffffn) | 0;
    let removed = 0;
    if (keyType === 'request') {
      const r = keys.find(lo, hi);
      if (r !== NONE) removed = keys.unref(r, e);
    } else {
      const p = this.ents.pod[e];
      const s = engine.find(p, lo, hi);
      if (s === NONE) return;
      const reqs = engine.requestKeys(s);
      let held = false;
      for (let i = 0; i < reqs.length; i += 2) {
        const r = keys.find(reqs[i], reqs[i + 1]);
        if (r === NONE) continue;
        removed += keys.unref(r, e);
        if (!held) {
          const r2 = keys.find(reqs[i], reqs[i + 1]);
          held = r2 !== NONE && keys.podHolds(r2, p);
        }
      }
      if (!held) engine.delete(s);
    }
    this.removals.evictions += removed;
  }

  getRequestKey(engineKey: BlockKey, pod?: PodId): BlockKey | undefined {
    const lo = Number(engineKey & 0xffffffffn) | 0;
    const hi = Number((engineKey >> 32n) & 0xffffffffn) | 0;
    if (pod !== undefined) {
      const p = this.ents.podIndex(pod, false);
      if (p === NONE) return undefined;
      const s = this.engine.find(p, lo, hi);
      return s === NONE ? undefined : this.engine.newestRequestKey(s);
    }
    for (let p = 0; p < this.ents.podCount; p++) {
      const s = this.engine.find(p, lo, hi);
      if (s !== NONE) return this.engine.newestRequestKey(s);
    }
    return undefined;
  }

  clear(pod: PodId): void {
    const p = this.ents.podIndex(pod, false);
    if (p === NONE) return;
    this.ents.podGen[p]++;
    this.removals.evictions += this.keys.removePod(p);
    this.engine.removePod(p);
  }

  addSpeculative(requestKeys: BlockKeys, pod: PodId, ttlMs: number): void {
    if (requestKeys.length === 0 || this.closed) return;
    const e = this.ents.speculativeEntry(pod);
    this.addEntry(null, requestKeys, e);
    const rk = u32view(requestKeys);
    if (this.specTop + rk.length > this.specChunk.length) {
      // a fresh chunk; the old one is freed once its last reservation expires
      this.specChunk = new Int32Array(Math.max(SPEC_CHUNK, rk.length));
      this.specTop = 0;
    }
    const off = this.specTop;
    this.specChunk.set(rk, off);
    this.specTop += rk.length;
    this.ttl.add({ chunk: this.specChunk, off, len: rk.length, entry: e, gen: this.ents.podGen[this.ents.pod[e]] }, ttlMs);
  }

  private expire(it: SpecItem): void {
    if (this.ents.podGen[this.ents.pod[it.entry]] !== it.gen) return; // pod cleared since
    const keys = this.keys;
    const { chunk: k, off, len } = it;
    this.touched ^= keys.touchRange(k, off, off + len); // overlap the keys' cache misses, as add does
    let removed = 0;
    for (let i = off; i < off + len; i += 2) {
      const r = keys.find(k[i], k[i + 1]);
      if (r !== NONE) removed += keys.unref(r, it.entry);
    }
    this.removals.evictions += removed;
  }

  longestPrefix(requestKeys: BlockKeys, pods?: ReadonlySet<PodId> | null): Map<PodId, PrefixMatch> {
    if (this.ttl.hasDue()) this.ttl.expireDue();
    const result = new Map<PodId, PrefixMatch>();
    if (requestKeys.length > 0) this.prefix.walk(u32view(requestKeys), requestKeys.length, pods ?? null, result);
    return result;
  }

  stats(): IndexStats {
    return { keys: this.keys.count, entries: this.keys.entries, engineKeys: this.engine.count, capacity: this.capacity };
  }

  /** Bytes held by the typed arrays (for memory benchmarks). */
  memoryBytes(): number {
    return this.keys.byteLength() + this.engine.byteLength();
  }

  close(): void {
    this.closed = true;
    this.ttl.close();
  }
}
