// In-memory KvBlockIndex on typed arrays (no per-entry objects):
//
//  - key table: open addressing (linear probing, backward-shift deletion) from a 64-bit
//    request key to a record; each record owns a contiguous run of (entry id, pod | weight
//    class, ref count) slots in a slab with power-of-two size classes, unit-weight slots
//    first, so scoring reads one int per holder and adds tier deficits only where needed.
//  - entries: (pod, tier, speculative) interned to small ints with a precomputed weight.
//  - engine map: separate chaining from (pod, engine key) to its request keys (the last one
//    inline, earlier ones in an overflow list), nodes in fixed chunks that never move. Per
//    pod, because engine hashes are only meaningful within one engine (random NONE_HASH
//    without PYTHONHASHSEED).
//  - capacity in entries, enforced with second-chance (CLOCK) LRU over keys: adds and
//    lookups set a reference bit, eviction gives referenced keys one more round.
//  - scoring walks the keys once with per-pod stamps; runs of keys whose holder lists are
//    identical (the usual shape of a cached prefix) are counted and applied in one pass.
import type { BlockKey, BlockKeys, IndexStats, KeyType, KvBlockIndex, PodEntry, PodId, PrefixMatch } from './types.js';
import { DEFAULT_TIER_WEIGHTS } from './types.js';
import type { IndexMetrics } from './metrics.js';
import { realClock, type Clock, type ClockTimer } from '../util/clock.js';

export interface InMemoryIndexOptions {
  /** Maximum (request key, entry) pairs; least recently used keys are dropped beyond it. */
  capacity?: number;
  /** Tier weights; unknown tiers weigh 1.0. Default gpu 1.0, cpu 0.8. */
  tierWeights?: Record<string, number>;
  metrics?: IndexMetrics;
  /** Time for speculative entries' TTL (default the real clock). */
  clock?: Clock;
}

export const DEFAULT_CAPACITY = 100_000_000;
const MAX_REF = 0xffff;
const NONE = -1;
const RS = 8; // int32 per key record
// record field 6: slab size class (low bits) | number of unit-weight slots, which the run keeps first
const UNIT_SHIFT = 5;
const CLS_MASK = (1 << UNIT_SHIFT) - 1;
const EN = 7; // int32 per engine node
const ECHUNK_BITS = 16; // engine nodes per chunk: 2^16
const ECHUNK_MASK = (1 << ECHUNK_BITS) - 1;

/**
 * A copy of `a` with room for at least `min` elements. Doubling: pages past the copied part
 * stay untouched until used, and on this kind of VM a first touch costs far more than the copy,
 * so fewer, larger steps touch less fresh memory than 1.5x steps.
 */
function grown<T extends Int32Array | Uint32Array | Uint16Array | Uint8Array | Float64Array>(a: T, min: number, fill?: number): T {
  let cap = Math.max(16, a.length);
  while (cap < min) cap *= 2;
  const C = a.constructor as new (n: number) => T;
  const b = new C(cap);
  b.set(a);
  if (fill !== undefined) b.fill(fill, a.length);
  return b;
}

/** (lo, hi) int32 pairs of the keys; all key halves inside the index are signed int32. */
function u32view(keys: BlockKeys): Int32Array {
  return new Int32Array(keys.buffer, keys.byteOffset, keys.length * 2);
}

function mix(lo: number, hi: number): number {
  return Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b) ^ (hi >>> 7);
}

interface SpecItem {
  due: number;
  keys: BlockKeys;
  entry: number;
  gen: number;
}

/** What an expired queue slot holds until the queue is compacted. */
const EXPIRED: SpecItem = { due: -Infinity, keys: new BigUint64Array(0), entry: NONE, gen: NONE };

export class InMemoryKvBlockIndex implements KvBlockIndex {
  readonly capacity: number;
  private readonly weights: Record<string, number>;
  private readonly metrics: IndexMetrics | null;

  // pods and entries
  private readonly podIds = new Map<string, number>();
  private podNames: string[] = [];
  private podGen = new Int32Array(16);
  private readonly entryIds = new Map<string, number>();
  private entryPod = new Int32Array(16);
  private entryW = new Float64Array(16);
  private entrySpec = new Uint8Array(16);
  private entryCls = new Uint8Array(16);
  private entryCount = 0;
  /** Distinct entry weights -> deficit (1 - weight) by class, so slots carry a 1-byte class. */
  private readonly classOf = new Map<number, number>([[1, 0]]); // class 0: weight 1, no deficit
  private readonly classDeficit = new Float64Array(256);

  // request key records
  // records, 8 int32 each (one cache line holds two): lo, hi, slab offset, run length,
  // LRU prev, LRU next, size class | unit slots << UNIT_SHIFT, reference bit
  private rec = new Int32Array(1024 * RS);
  /** 1 when a key may hold two entries of one pod (sticky): scoring takes the max-weight path. */
  private recMixed = new Uint8Array(1024);
  private recTop = 0;
  private recFree = NONE;
  private recCount = 0;
  private lruHead = NONE;
  private lruTail = NONE;
  /**
   * Slot i is tab[2i] = rec + 1 (0 = empty) and tab[2i + 1] = the key's mix hash: probes and
   * deletion's backward shift compare hashes in the slot's own cache line instead of reading
   * every displaced key's record (a cache miss each).
   */
  private tab = new Int32Array(2 * 2048);
  private tabBits = 11;

  // slab of (entry, ref) runs
  private slabE = new Int32Array(4096);
  /** pod << 8 | weight class of slabE's entry: scoring reads one int per slot, no indirection. */
  private slabPC = new Int32Array(4096);
  private slabR = new Uint16Array(4096);
  private slabTop = 0;
  private readonly slabFree = new Int32Array(32).fill(NONE);
  private entries = 0;

  // engine map: (pod, engine key) -> request keys
  // nodes, 7 int32 each, in chunks of 2^16: engine lo, hi, pod + 1 (0 = free), last request
  // lo, hi, overflow list of earlier request keys, next node in the bucket (or free list)
  private eChunks: Int32Array[] = [];
  private eTop = 0;
  private eFree = NONE;
  private eHeads = new Int32Array(1024).fill(NONE);
  private eBits = 10;
  private eCount = 0;
  private engineSweepAt: number;
  private oLo = new Int32Array(64);
  private oHi = new Int32Array(64);
  private oNext = new Int32Array(64);
  private oTop = 0;
  private oFree = NONE;

  // lookup scratch, per pod
  private podSeen = new Int32Array(16);
  private podFilter = new Int32Array(16);
  private podW = new Float64Array(16);
  private podSum = new Float64Array(16);
  private first = new Int32Array(16);
  private stamp = 0;

  // speculative entries
  /**
   * Pending items, sorted by due time, from specHead on. Expiry advances specHead (compacting
   * now and then) instead of splicing the front off: with thousands of items within the TTL,
   * every splice moved them all (~30 us per request at 10k items).
   */
  private spec: SpecItem[] = [];
  private specHead = 0;
  private specTimer: ClockTimer | null = null;
  private readonly clock: Clock;
  private specTimerDue = Infinity;
  private closed = false;

  constructor(opts: InMemoryIndexOptions = {}) {
    const cap = opts.capacity ?? DEFAULT_CAPACITY;
    if (!(cap >= 1)) throw new RangeError(`index capacity must be >= 1, got ${cap}`);
    this.capacity = Math.floor(cap);
    this.weights = { ...DEFAULT_TIER_WEIGHTS, ...(opts.tierWeights ?? {}) };
    this.metrics = opts.metrics ?? null;
    this.clock = opts.clock ?? realClock;
    this.metrics?.setStatsSource(() => this.stats());
    this.engineSweepAt = Math.min(4 * this.capacity, 1 << 30) + 1024;
  }

  // ---------------- pods and entries ----------------

  private podIndex(pod: PodId, create: boolean): number {
    let p = this.podIds.get(pod);
    if (p !== undefined) return p;
    if (!create) return NONE;
    p = this.podNames.length;
    if (p >= 1 << 23) throw new RangeError('more than 2^23 distinct pods'); // slots pack pod << 8 | class
    this.podIds.set(pod, p);
    this.podNames.push(pod);
    if (p >= this.podSeen.length) {
      const n = p + 1;
      this.podSeen = grown(this.podSeen, n);
      this.podFilter = grown(this.podFilter, n);
      this.podW = grown(this.podW, n);
      this.podSum = grown(this.podSum, n);
      this.first = grown(this.first, n);
      this.podGen = grown(this.podGen, n);
    }
    return p;
  }

  // the last entry resolved: events of one pod usually arrive back to back
  private lastPod = '';
  private lastTier = '';
  private lastSpec = -1;
  private lastEntry = NONE;

  private entryIndex(entry: PodEntry, create: boolean): number {
    const spec = entry.speculative ? 1 : 0;
    if (entry.pod === this.lastPod && entry.tier === this.lastTier && spec === this.lastSpec) return this.lastEntry;
    const e = this.resolveEntry(entry, spec, create);
    if (e !== NONE) {
      this.lastPod = entry.pod;
      this.lastTier = entry.tier;
      this.lastSpec = spec;
      this.lastEntry = e;
    }
    return e;
  }

  private resolveEntry(entry: PodEntry, spec: number, create: boolean): number {
    const tier = (entry.tier || 'gpu').toLowerCase();
    const name = `${spec}\u0000${tier}\u0000${entry.pod}`;
    let e = this.entryIds.get(name);
    if (e !== undefined) return e;
    if (!create) return NONE;
    const p = this.podIndex(entry.pod, true);
    e = this.entryCount++;
    if (e >= this.entryPod.length) {
      this.entryPod = grown(this.entryPod, e + 1);
      this.entryW = grown(this.entryW, e + 1);
      this.entrySpec = grown(this.entrySpec, e + 1);
      this.entryCls = grown(this.entryCls, e + 1);
    }
    this.entryPod[e] = p;
    // Speculative entries stand for blocks about to land in GPU memory.
    const w = spec ? (this.weights.gpu ?? 1) : this.weights[tier];
    this.entryW[e] = w === undefined ? 1 : w;
    let c = this.classOf.get(this.entryW[e]);
    if (c === undefined) {
      if (this.classOf.size >= 256) throw new RangeError('more than 256 distinct tier weights');
      c = this.classOf.size;
      this.classOf.set(this.entryW[e], c);
      this.classDeficit[c] = 1 - this.entryW[e];
    }
    this.entryCls[e] = c;
    this.entrySpec[e] = spec;
    this.entryIds.set(name, e);
    return e;
  }

  // ---------------- key table ----------------

  /** The empty table slot where the last unsuccessful find stopped (insertRec's slot). */
  private missAt = 0;

  private find(lo: number, hi: number): number {
    const tab = this.tab;
    const mask = (1 << this.tabBits) - 1;
    const h = mix(lo, hi);
    let i = h >>> (32 - this.tabBits);
    for (;;) {
      const r = tab[2 * i] - 1;
      if (r < 0) {
        this.missAt = i;
        return NONE;
      }
      if (tab[2 * i + 1] === h && this.rec[r * RS] === lo && this.rec[r * RS + 1] === hi) return r;
      i = (i + 1) & mask;
    }
  }

  /** Adds a record for a key that `find` just missed (its probe slot is reused). */
  private insertRec(lo: number, hi: number): number {
    let at = this.missAt;
    if ((this.recCount + 1) * 10 > (1 << this.tabBits) * 7) {
      this.rehashKeys(this.tabBits + 1);
      const mask = (1 << this.tabBits) - 1;
      at = mix(lo, hi) >>> (32 - this.tabBits);
      while (this.tab[2 * at] !== 0) at = (at + 1) & mask;
    }
    let r = this.recFree;
    if (r !== NONE) this.recFree = this.rec[r * RS + 5];
    else {
      r = this.recTop++;
      if ((r + 1) * RS > this.rec.length) this.growRecs(r + 1);
    }
    this.rec[r * RS] = lo;
    this.rec[r * RS + 1] = hi;
    this.rec[r * RS + 3] = 0;
    this.rec[r * RS + 6] = 0;
    this.rec[r * RS + 2] = this.slabAlloc(0);
    this.rec[r * RS + 7] = 0;
    this.recMixed[r] = 0;
    // LRU: new keys at the head
    this.rec[r * RS + 4] = NONE;
    this.rec[r * RS + 5] = this.lruHead;
    if (this.lruHead !== NONE) this.rec[(this.lruHead) * RS + 4] = r;
    this.lruHead = r;
    if (this.lruTail === NONE) this.lruTail = r;
    this.tab[2 * at] = r + 1;
    this.tab[2 * at + 1] = mix(lo, hi);
    this.recCount++;
    return r;
  }

  private growRecs(n: number): void {
    this.rec = grown(this.rec, n * RS);
    this.recMixed = grown(this.recMixed, n);
  }

  private rehashKeys(bits: number): void {
    const tab = new Int32Array(2 << bits);
    const mask = (1 << bits) - 1;
    // in record order (sequential reads); free records have length -1
    for (let r = 0; r < this.recTop; r++) {
      if (this.rec[r * RS + 3] < 0) continue;
      const h = mix(this.rec[r * RS], this.rec[r * RS + 1]);
      let i = h >>> (32 - bits);
      while (tab[2 * i] !== 0) i = (i + 1) & mask;
      tab[2 * i] = r + 1;
      tab[2 * i + 1] = h;
    }
    this.tab = tab;
    this.tabBits = bits;
  }

  /** Removes a record entirely (table, LRU list, slab run). */
  private deleteRec(r: number): void {
    const tab = this.tab;
    const bits = this.tabBits;
    const mask = (1 << bits) - 1;
    let i = mix(this.rec[r * RS], this.rec[r * RS + 1]) >>> (32 - bits);
    while (tab[2 * i] !== r + 1) i = (i + 1) & mask;
    // backward-shift deletion
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (tab[2 * j] === 0) break;
      const k = tab[2 * j + 1] >>> (32 - bits);
      // move j's key into the hole at i unless its home lies cyclically in (i, j]
      const inRange = i <= j ? k > i && k <= j : k > i || k <= j;
      if (!inRange) {
        tab[2 * i] = tab[2 * j];
        tab[2 * i + 1] = tab[2 * j + 1];
        i = j;
      }
    }
    tab[2 * i] = 0;
    const prev = this.rec[r * RS + 4];
    const next = this.rec[r * RS + 5];
    if (prev !== NONE) this.rec[prev * RS + 5] = next;
    else this.lruHead = next;
    if (next !== NONE) this.rec[next * RS + 4] = prev;
    else this.lruTail = prev;
    this.entries -= this.rec[r * RS + 3];
    this.slabRelease(this.rec[r * RS + 2], this.rec[r * RS + 6] & CLS_MASK);
    this.rec[r * RS + 3] = -1;
    this.rec[r * RS + 5] = this.recFree;
    this.recFree = r;
    this.recCount--;
  }

  // ---------------- slab ----------------

  private slabAlloc(cls: number): number {
    const off = this.slabFree[cls];
    if (off !== NONE) {
      this.slabFree[cls] = this.slabE[off];
      return off;
    }
    const size = 1 << cls;
    const at = this.slabTop;
    if (at + size > this.slabE.length) {
      this.slabE = grown(this.slabE, at + size);
      this.slabPC = grown(this.slabPC, at + size);
      this.slabR = grown(this.slabR, at + size);
    }
    this.slabTop += size;
    return at;
  }

  private slabRelease(off: number, cls: number): void {
    this.slabE[off] = this.slabFree[cls];
    this.slabFree[cls] = off;
  }

  /** Adds one reference of entry `e` at record `r`. */
  private refEntry(r: number, e: number): void {
    const off = this.rec[r * RS + 2];
    const len = this.rec[r * RS + 3];
    const slabE = this.slabE;
    const p = this.entryPod[e];
    let samePod = false;
    for (let j = off; j < off + len; j++) {
      if (slabE[j] === e) {
        if (this.slabR[j] < MAX_REF) this.slabR[j]++;
        return;
      }
      if (this.slabPC[j] >> 8 === p) samePod = true;
    }
    // bit 0: a pod appears twice (max-weight path); bit 1: a non-unit weight (deficit path)
    if (samePod) this.recMixed[r] |= 1;
    if (this.entryW[e] !== 1) this.recMixed[r] |= 2;
    if (len === 1 << (this.rec[r * RS + 6] & CLS_MASK)) {
      const cls = (this.rec[r * RS + 6] & CLS_MASK) + 1;
      const noff = this.slabAlloc(cls);
      this.slabE.copyWithin(noff, off, off + len);
      this.slabPC.copyWithin(noff, off, off + len);
      this.slabR.copyWithin(noff, off, off + len);
      this.slabRelease(off, cls - 1);
      this.rec[r * RS + 2] = noff;
      this.rec[r * RS + 6] += 1; // size class + 1, unit count kept
    }
    const run = this.rec[r * RS + 2];
    let at = run + len;
    if (this.entryCls[e] === 0) {
      // unit weight: joins the unit part, whose first other slot moves to the end
      const u = this.rec[r * RS + 6] >> UNIT_SHIFT;
      this.rec[r * RS + 6] += 1 << UNIT_SHIFT;
      if (u < len) this.slabMove(run + u, at);
      at = run + u;
    }
    this.slabE[at] = e;
    this.slabPC[at] = (p << 8) | this.entryCls[e];
    this.slabR[at] = 1;
    this.rec[r * RS + 3] = len + 1;
    this.entries++;
  }

  private slabMove(from: number, to: number): void {
    this.slabE[to] = this.slabE[from];
    this.slabPC[to] = this.slabPC[from];
    this.slabR[to] = this.slabR[from];
  }

  /** Removes slot `j` of record `r`'s run (`off`, `len` slots), keeping unit slots first. */
  private slabRemove(r: number, off: number, len: number, j: number): void {
    const last = off + len - 1;
    const u = this.rec[r * RS + 6] >> UNIT_SHIFT;
    if (j < off + u) {
      // a unit slot: the last unit slot fills the hole, the last slot fills that one
      this.slabMove(off + u - 1, j);
      this.slabMove(last, off + u - 1);
      this.rec[r * RS + 6] -= 1 << UNIT_SHIFT;
    } else this.slabMove(last, j);
  }

  /** Drops one reference of entry `e` at record `r`; returns 1 if the entry disappeared. */
  private unrefEntry(r: number, e: number): number {
    const off = this.rec[r * RS + 2];
    const len = this.rec[r * RS + 3];
    for (let j = off; j < off + len; j++) {
      if (this.slabE[j] !== e) continue;
      if (--this.slabR[j] > 0) return 0;
      this.slabRemove(r, off, len, j);
      this.rec[r * RS + 3] = len - 1;
      this.entries--;
      if (len === 1) this.deleteRec(r); // no entry left: forget the key
      return 1;
    }
    return 0;
  }

  private podHolds(r: number, p: number): boolean {
    const off = this.rec[r * RS + 2];
    const end = off + this.rec[r * RS + 3];
    for (let j = off; j < end; j++) {
      const e = this.slabE[j];
      if (this.entryPod[e] === p && this.entrySpec[e] === 0) return true;
    }
    return false;
  }

  private enforceCapacity(): void {
    while (this.entries > this.capacity && this.lruTail !== NONE) {
      let r = this.lruTail;
      // second chance: referenced keys move to the head once
      let spins = 0;
      while (this.rec[r * RS + 7] !== 0 && spins++ < this.recCount) {
        this.rec[r * RS + 7] = 0;
        this.moveToHead(r);
        r = this.lruTail;
      }
      const n = this.rec[r * RS + 3];
      if (this.metrics) {
        this.metrics.evictions += n;
        this.metrics.capacityEvictions += n;
      }
      this.deleteRec(r);
    }
  }

  private moveToHead(r: number): void {
    if (this.lruHead === r) return;
    const prev = this.rec[r * RS + 4];
    const next = this.rec[r * RS + 5];
    this.rec[prev * RS + 5] = next;
    if (next !== NONE) this.rec[next * RS + 4] = prev;
    else this.lruTail = prev;
    this.rec[r * RS + 4] = NONE;
    this.rec[r * RS + 5] = this.lruHead;
    this.rec[(this.lruHead) * RS + 4] = r;
    this.lruHead = r;
  }

  // ---------------- engine map ----------------
  // Separate chaining over node chunks: nodes never move, so growing only rebuilds the
  // bucket heads (4 bytes per bucket) instead of copying every mapping into a fresh table.

  private eHome(p: number, lo: number, hi: number): number {
    return mix(lo ^ Math.imul(p + 1, 0x27d4eb2f), hi) >>> (32 - this.eBits);
  }

  private eFind(p: number, lo: number, hi: number): number {
    const chunks = this.eChunks;
    for (let n = this.eHeads[this.eHome(p, lo, hi)]; n !== NONE; ) {
      const c = chunks[n >>> ECHUNK_BITS];
      const b = (n & ECHUNK_MASK) * EN;
      if (c[b] === lo && c[b + 1] === hi && c[b + 2] === p + 1) return n;
      n = c[b + 6];
    }
    return NONE;
  }

  private eMap(p: number, lo: number, hi: number, rlo: number, rhi: number): void {
    const h = this.eHome(p, lo, hi);
    const chunks = this.eChunks;
    let n = this.eHeads[h];
    while (n !== NONE) {
      const c = chunks[n >>> ECHUNK_BITS];
      const b = (n & ECHUNK_MASK) * EN;
      if (c[b] === lo && c[b + 1] === hi && c[b + 2] === p + 1) break;
      n = c[b + 6];
    }
    if (n === NONE) {
      let m = this.eFree;
      if (m !== NONE) this.eFree = this.eChunks[m >>> ECHUNK_BITS][(m & ECHUNK_MASK) * EN + 6];
      else {
        m = this.eTop++;
        if (m >>> ECHUNK_BITS >= this.eChunks.length) this.eChunks.push(new Int32Array(EN << ECHUNK_BITS));
      }
      const c = this.eChunks[m >>> ECHUNK_BITS];
      const b = (m & ECHUNK_MASK) * EN;
      c[b] = lo;
      c[b + 1] = hi;
      c[b + 2] = p + 1;
      c[b + 3] = rlo;
      c[b + 4] = rhi;
      c[b + 5] = NONE;
      c[b + 6] = this.eHeads[h];
      this.eHeads[h] = m;
      this.eCount++;
      if (this.eCount > this.eHeads.length) this.rehashEngine(this.eBits + 1, NONE);
      if (this.eCount > this.engineSweepAt) this.sweepEngine();
      return;
    }
    const c = this.eChunks[n >>> ECHUNK_BITS];
    const b = (n & ECHUNK_MASK) * EN;
    if (c[b + 3] === rlo && c[b + 4] === rhi) return;
    for (let o = c[b + 5]; o !== NONE; o = this.oNext[o]) if (this.oLo[o] === rlo && this.oHi[o] === rhi) return;
    // the newest mapping stays inline (it is the parent for the next block)
    let o = this.oFree;
    if (o !== NONE) this.oFree = this.oNext[o];
    else {
      o = this.oTop++;
      if (o >= this.oLo.length) {
        this.oLo = grown(this.oLo, o + 1);
        this.oHi = grown(this.oHi, o + 1);
        this.oNext = grown(this.oNext, o + 1);
      }
    }
    this.oLo[o] = c[b + 3];
    this.oHi[o] = c[b + 4];
    this.oNext[o] = c[b + 5];
    c[b + 5] = o;
    c[b + 3] = rlo;
    c[b + 4] = rhi;
  }

  /** Field `f` of engine node `n`. */
  private eField(n: number, f: number): number {
    return this.eChunks[n >>> ECHUNK_BITS][(n & ECHUNK_MASK) * EN + f];
  }

  private eRequestKeys(n: number): number[] {
    const out = [this.eField(n, 3), this.eField(n, 4)];
    for (let o = this.eField(n, 5); o !== NONE; o = this.oNext[o]) out.push(this.oLo[o], this.oHi[o]);
    return out;
  }

  /** Returns node `n` and its overflow list to the free lists (the caller unlinks it). */
  private eRelease(n: number): void {
    const c = this.eChunks[n >>> ECHUNK_BITS];
    const b = (n & ECHUNK_MASK) * EN;
    for (let o = c[b + 5]; o !== NONE; ) {
      const next = this.oNext[o];
      this.oNext[o] = this.oFree;
      this.oFree = o;
      o = next;
    }
    c[b + 2] = 0;
    c[b + 5] = NONE;
    c[b + 6] = this.eFree;
    this.eFree = n;
    this.eCount--;
  }

  private eDelete(n: number): void {
    const h = this.eHome(this.eField(n, 2) - 1, this.eField(n, 0), this.eField(n, 1));
    if (this.eHeads[h] === n) this.eHeads[h] = this.eField(n, 6);
    else {
      let m = this.eHeads[h];
      while (this.eField(m, 6) !== n) m = this.eField(m, 6);
      this.eChunks[m >>> ECHUNK_BITS][(m & ECHUNK_MASK) * EN + 6] = this.eField(n, 6);
    }
    this.eRelease(n);
  }

  /**
   * Rebuilds the bucket heads with `bits` bits, dropping pod `dropPod`'s mappings (or none)
   * and those `keep` rejects.
   */
  private rehashEngine(bits: number, dropPod: number, keep?: (n: number) => boolean): void {
    const heads = bits === this.eBits ? this.eHeads.fill(NONE) : new Int32Array(1 << bits).fill(NONE);
    this.eHeads = heads;
    this.eBits = bits;
    const shift = 32 - bits;
    for (let n = 0; n < this.eTop; n++) {
      const c = this.eChunks[n >>> ECHUNK_BITS];
      const b = (n & ECHUNK_MASK) * EN;
      const q = c[b + 2];
      if (q === 0) continue;
      if (q - 1 === dropPod || (keep && !keep(n))) {
        this.eRelease(n);
        continue;
      }
      const h = mix(c[b] ^ Math.imul(q, 0x27d4eb2f), c[b + 1]) >>> shift;
      c[b + 6] = heads[h];
      heads[h] = n;
    }
  }

  /** Drops engine mappings none of whose request keys the pod still holds (capacity evictions leave them behind). */
  private sweepEngine(): void {
    const before = this.eCount;
    this.rehashEngine(this.eBits, NONE, (n) => {
      const p = this.eField(n, 2) - 1;
      let r = this.find(this.eField(n, 3), this.eField(n, 4));
      if (r !== NONE && this.podHolds(r, p)) return true;
      for (let o = this.eField(n, 5); o !== NONE; o = this.oNext[o]) {
        r = this.find(this.oLo[o], this.oHi[o]);
        if (r !== NONE && this.podHolds(r, p)) return true;
      }
      return false;
    });
    // everything still live: allow growth rather than sweeping again at once
    if (this.eCount > before * 0.75) this.engineSweepAt = this.eCount * 2 + 1024;
  }

  // ---------------- KvBlockIndex ----------------

  add(engineKeys: BlockKeys | null, requestKeys: BlockKeys, entry: PodEntry): void {
    const nR = requestKeys.length;
    if (nR === 0) return;
    const e = this.entryIndex(entry, true);
    const rk = u32view(requestKeys);
    const ek = engineKeys && engineKeys.length > 0 && !entry.speculative ? u32view(engineKeys) : null;
    if (nR > 1) this.touch(rk, ek, this.entryPod[e]);
    for (let i = 0; i < 2 * nR; i += 2) {
      const lo = rk[i];
      const hi = rk[i + 1];
      let r = this.find(lo, hi);
      if (r === NONE) r = this.insertRec(lo, hi); // new keys start at the head, unreferenced
      else this.rec[r * RS + 7] = 1; // re-stored: used again
      this.refEntry(r, e);
    }
    if (this.metrics) this.metrics.admissions += nR;
    if (ek) {
      const p = this.entryPod[e];
      const nE = ek.length >> 1;
      const n = Math.max(nE, nR);
      if (nE === nR) for (let i = 0; i < 2 * n; i += 2) this.eMap(p, ek[i], ek[i + 1], rk[i], rk[i + 1]);
      else for (let i = 0; i < n; i++) {
        const ei = Math.floor((i * nE) / n) * 2;
        const ri = Math.floor((i * nR) / n) * 2;
        this.eMap(p, ek[ei], ek[ei + 1], rk[ri], rk[ri + 1]);
      }
    }
    if (this.entries > this.capacity) this.enforceCapacity();
  }

  /** Sink for `touch`'s reads, so the compiler keeps them. */
  private touched = 0;

  /**
   * Reads the table slot, record and slab run of every request key, and the engine bucket and
   * first node of every engine key, before the real work: these reads do not depend on each
   * other, so the CPU overlaps their cache misses instead of waiting for them one key at a time.
   * Branch-free, since a mispredicted branch would cut the overlap short.
   */
  private touch(rk: Int32Array, ek: Int32Array | null, p: number): void {
    const { tab, rec, slabE } = this;
    const shift = 32 - this.tabBits;
    let sink = 0;
    for (let i = 0; i < rk.length; i += 2) {
      const t = tab[2 * (mix(rk[i], rk[i + 1]) >>> shift)] - 1;
      const r = t & ~(t >> 31); // empty slot: record 0
      sink ^= slabE[rec[r * RS + 2]] ^ rec[r * RS];
    }
    if (ek && this.eChunks.length > 0) {
      const heads = this.eHeads;
      const chunks = this.eChunks;
      const eshift = 32 - this.eBits;
      const salt = Math.imul(p + 1, 0x27d4eb2f);
      for (let i = 0; i < ek.length; i += 2) {
        const h = heads[mix(ek[i] ^ salt, ek[i + 1]) >>> eshift]; // eHome
        const n = h & ~(h >> 31);
        sink ^= chunks[n >>> ECHUNK_BITS][(n & ECHUNK_MASK) * EN];
      }
    }
    this.touched ^= sink;
  }

  evict(key: BlockKey, keyType: KeyType, entry: PodEntry): void {
    const e = this.entryIndex(entry, false);
    if (e === NONE) return;
    const lo = Number(key & 0xffffffffn) | 0;
    const hi = Number((key >> 32n) & 0xffffffffn) | 0;
    let removed = 0;
    if (keyType === 'request') {
      const r = this.find(lo, hi);
      if (r !== NONE) removed = this.unrefEntry(r, e);
    } else {
      const p = this.entryPod[e];
      const s = this.eFind(p, lo, hi);
      if (s === NONE) return;
      const reqs = this.eRequestKeys(s);
      let held = false;
      for (let i = 0; i < reqs.length; i += 2) {
        const r = this.find(reqs[i], reqs[i + 1]);
        if (r === NONE) continue;
        removed += this.unrefEntry(r, e);
        if (!held) {
          const r2 = this.find(reqs[i], reqs[i + 1]);
          held = r2 !== NONE && this.podHolds(r2, p);
        }
      }
      if (!held) this.eDelete(this.eFind(p, lo, hi));
    }
    if (this.metrics) this.metrics.evictions += removed;
  }

  getRequestKey(engineKey: BlockKey, pod?: PodId): BlockKey | undefined {
    const lo = Number(engineKey & 0xffffffffn) | 0;
    const hi = Number((engineKey >> 32n) & 0xffffffffn) | 0;
    if (pod !== undefined) {
      const p = this.podIndex(pod, false);
      if (p === NONE) return undefined;
      const s = this.eFind(p, lo, hi);
      return s === NONE ? undefined : (BigInt(this.eField(s, 4) >>> 0) << 32n) | BigInt(this.eField(s, 3) >>> 0);
    }
    for (let p = 0; p < this.podNames.length; p++) {
      const s = this.eFind(p, lo, hi);
      if (s !== NONE) return (BigInt(this.eField(s, 4) >>> 0) << 32n) | BigInt(this.eField(s, 3) >>> 0);
    }
    return undefined;
  }

  clear(pod: PodId): void {
    const p = this.podIndex(pod, false);
    if (p === NONE) return;
    this.podGen[p]++;
    let removed = 0;
    for (let r = this.lruHead; r !== NONE; ) {
      const next = this.rec[r * RS + 5];
      const off = this.rec[r * RS + 2];
      let len = this.rec[r * RS + 3];
      for (let j = off; j < off + len; ) {
        if (this.slabPC[j] >> 8 === p) {
          // every slot not yet checked stays at j or after it
          this.slabRemove(r, off, len, j);
          len--;
          removed++;
          this.entries--;
        } else j++;
      }
      this.rec[r * RS + 3] = len;
      if (len === 0) this.deleteRec(r);
      r = next;
    }
    this.rehashEngine(this.eBits, p);
    if (this.metrics) this.metrics.evictions += removed;
  }

  addSpeculative(requestKeys: BlockKeys, pod: PodId, ttlMs: number): void {
    if (requestKeys.length === 0 || this.closed) return;
    const entry: PodEntry = { pod, tier: 'gpu', speculative: true };
    this.add(null, requestKeys, entry);
    const e = this.entryIndex(entry, false);
    const item: SpecItem = { due: this.clock.now() + Math.max(0, ttlMs), keys: requestKeys.slice(), entry: e, gen: this.podGen[this.entryPod[e]] };
    // keep the queue sorted by due time (usually a plain append: one TTL for everything)
    let i = this.spec.length;
    while (i > this.specHead && this.spec[i - 1].due > item.due) i--;
    if (i === this.spec.length) this.spec.push(item);
    else this.spec.splice(i, 0, item);
    this.armSpecTimer();
  }

  private armSpecTimer(): void {
    if (this.specHead === this.spec.length || this.closed) return;
    const due = this.spec[this.specHead].due;
    if (this.specTimer && this.specTimerDue <= due) return;
    if (this.specTimer) this.clock.clearTimeout(this.specTimer);
    this.specTimerDue = due;
    this.specTimer = this.clock.setTimeout(() => {
      this.specTimer = null;
      this.specTimerDue = Infinity;
      this.expireSpeculative();
      this.armSpecTimer();
    }, Math.max(0, due - this.clock.now()) + 1);
    this.specTimer.unref();
  }

  private expireSpeculative(): void {
    const now = this.clock.now();
    const spec = this.spec;
    const from = this.specHead;
    let n = from;
    while (n < spec.length && spec[n].due <= now) n++;
    if (n === from) return;
    let removed = 0;
    for (let j = from; j < n; j++) {
      const it = spec[j];
      spec[j] = EXPIRED; // the queue lets go of the keys now
      if (this.podGen[this.entryPod[it.entry]] !== it.gen) continue; // pod cleared since
      const k = u32view(it.keys);
      this.touch(k, null, 0); // overlap the keys' cache misses, as add does
      for (let i = 0; i < k.length; i += 2) {
        const r = this.find(k[i], k[i + 1]);
        if (r !== NONE) removed += this.unrefEntry(r, it.entry);
      }
    }
    if (n === spec.length) {
      this.spec = [];
      this.specHead = 0;
    } else if (n > 1024 && n * 2 > spec.length) {
      this.spec = spec.slice(n);
      this.specHead = 0;
    } else this.specHead = n;
    if (this.metrics) this.metrics.evictions += removed;
  }

  longestPrefix(requestKeys: BlockKeys, pods?: ReadonlySet<PodId> | null): Map<PodId, PrefixMatch> {
    const t0 = this.metrics ? performance.now() : 0;
    if (this.specHead < this.spec.length && this.spec[this.specHead].due <= this.clock.now()) this.expireSpeculative();
    const result = new Map<PodId, PrefixMatch>();
    const n = requestKeys.length;
    let hits = 0;
    if (n > 0) hits = this.walk(u32view(requestKeys), n, pods ?? null, result);
    if (this.metrics) this.metrics.observeLookup((performance.now() - t0) / 1000, hits);
    return result;
  }

  private walk(k: Int32Array, n: number, pods: ReadonlySet<PodId> | null, result: Map<PodId, PrefixMatch>): number {
    if (this.stamp > 0x3fffffff) {
      this.stamp = 0;
      this.podSeen.fill(0);
      this.podFilter.fill(0);
    }
    const { podSeen, podW, podSum, first, entryW, slabE, slabPC, recMixed, classDeficit } = this;
    const rec = this.rec;
    let fstamp = 0;
    if (pods) {
      fstamp = ++this.stamp;
      for (const name of pods) {
        const p = this.podIds.get(name);
        if (p !== undefined) this.podFilter[p] = fstamp;
      }
    }
    // Stamps: key i of this walk is stamp base + i. A pod whose podSeen equals the previous
    // key's stamp is still in its run; at the end, its run length is podSeen - base + 1.
    // podSum holds the weight deficit (1 - best tier weight), so weighted = blocks - deficit.
    let r = this.find(k[0], k[1]);
    if (r === NONE) return 0;
    const base = ++this.stamp;
    let nFirst = 0;
    let off = rec[r * RS + 2];
    let end = off + rec[r * RS + 3];
    for (let j = off; j < end; j++) {
      const p = slabPC[j] >> 8;
      if (fstamp !== 0 && this.podFilter[p] !== fstamp) continue;
      const w = entryW[slabE[j]];
      if (podSeen[p] !== base) {
        podSeen[p] = base;
        podW[p] = w;
        podSum[p] = 1 - w;
        first[nFirst++] = p;
      } else if (w > podW[p]) {
        podSum[p] -= w - podW[p];
        podW[p] = w;
      }
    }
    if (nFirst === 0) return 0;
    rec[r * RS + 7] = 1;
    let blocks = 1;
    // `cur` is the stamp of the last key processed slot by slot (at `pOff`, `pLen` slots).
    // Keys whose slots equal that key's, in the same order, cannot change which pods are
    // still running nor their weights (the alive set is a subset of that key's pods), so
    // they are only counted (`rep`) and applied to the surviving pods in one pass later.
    // Consecutive blocks of a cached prefix usually have identical holders.
    let cur = base;
    let pOff = off;
    let pLen = end - off;
    let pMixed = recMixed[r];
    let rep = 0;
    for (let i = 1; i < n; i++) {
      r = this.find(k[2 * i], k[2 * i + 1]);
      if (r === NONE) break;
      off = rec[r * RS + 2];
      const len = rec[r * RS + 3];
      if (len === pLen) {
        let j = 0;
        while (j < len && slabPC[off + j] === slabPC[pOff + j]) j++;
        if (j === len) {
          rep++;
          rec[r * RS + 7] = 1;
          blocks = i + 1;
          continue;
        }
      }
      if (rep > 0) {
        this.applyRepeats(cur, rep, pOff, pLen, pMixed);
        cur += rep;
        rep = 0;
      }
      const prev = cur;
      cur = base + i;
      end = off + len;
      let advanced = 0;
      const mixed = recMixed[r];
      if (mixed === 0) {
        // each pod appears once and every weight is 1: just advance the runs
        for (let j = off; j < end; j++) {
          const p = slabPC[j] >> 8;
          if (podSeen[p] === prev) {
            podSeen[p] = cur;
            advanced++;
          }
        }
      } else if (mixed === 2) {
        // each pod appears once: advance the runs; slots past the unit ones add their deficit
        const mid = off + (rec[r * RS + 6] >> UNIT_SHIFT);
        for (let j = off; j < mid; j++) {
          const p = slabPC[j] >> 8;
          if (podSeen[p] === prev) {
            podSeen[p] = cur;
            advanced++;
          }
        }
        for (let j = mid; j < end; j++) {
          const v = slabPC[j];
          const p = v >> 8;
          if (podSeen[p] === prev) {
            podSeen[p] = cur;
            // branch-free (class 0 is weight 1, deficit 0): holders' tiers rarely follow a pattern
            podSum[p] += classDeficit[v & 0xff];
            advanced++;
          }
        }
      } else {
        for (let j = off; j < end; j++) {
          const p = slabPC[j] >> 8;
          const s = podSeen[p];
          if (s === prev) {
            const w = entryW[slabE[j]];
            podSeen[p] = cur;
            podW[p] = w;
            podSum[p] += 1 - w;
            advanced++;
          } else if (s === cur) {
            const w = entryW[slabE[j]];
            if (w > podW[p]) {
              podSum[p] -= w - podW[p];
              podW[p] = w;
            }
          }
        }
      }
      if (advanced === 0) break;
      rec[r * RS + 7] = 1;
      blocks = i + 1;
      pOff = off;
      pLen = len;
      pMixed = mixed;
    }
    if (rep > 0) this.applyRepeats(cur, rep, pOff, pLen, pMixed);
    this.stamp = base + n;
    for (let a = 0; a < nFirst; a++) {
      const p = first[a];
      const b = podSeen[p] - base + 1;
      result.set(this.podNames[p], { blocks: b, weighted: b - podSum[p] });
    }
    return blocks;
  }

  /**
   * Advances the pods still running at stamp `cur` by `rep` more keys whose slots equal the
   * record at `off` (`len` slots, mixed flags `mixed`), adding `rep` times each pod's deficit.
   */
  private applyRepeats(cur: number, rep: number, off: number, len: number, mixed: number): void {
    const { podSeen, podSum, podW, slabPC, classDeficit } = this;
    const to = cur + rep;
    for (let j = off; j < off + len; j++) {
      const v = slabPC[j];
      const p = v >> 8;
      if (podSeen[p] !== cur) continue;
      podSeen[p] = to;
      // a pod twice on the key (mixed bit 0): the walk left its best weight in podW
      if ((mixed & 1) !== 0) podSum[p] += rep * (1 - podW[p]);
      else if ((v & 0xff) !== 0) podSum[p] += rep * classDeficit[v & 0xff];
    }
  }

  stats(): IndexStats {
    return { keys: this.recCount, entries: this.entries, engineKeys: this.eCount, capacity: this.capacity };
  }

  /** Bytes held by the typed arrays (for memory benchmarks). */
  memoryBytes(): number {
    const arrays = [
      this.rec, this.recMixed, this.tab, this.slabE, this.slabPC, this.slabR, this.eHeads, ...this.eChunks, this.oLo, this.oHi, this.oNext,
    ];
    return arrays.reduce((s, a) => s + a.byteLength, 0);
  }

  close(): void {
    this.closed = true;
    if (this.specTimer) this.clock.clearTimeout(this.specTimer);
    this.specTimer = null;
    this.spec = [];
    this.specHead = 0;
  }
}
