// In-memory KvBlockIndex on typed arrays (no per-entry objects):
//
//  - key table: open addressing (linear probing, backward-shift deletion) from a 64-bit
//    request key to a record; each record owns a contiguous run of (entry id, ref count)
//    slots in a slab with power-of-two size classes, so scoring reads each key's pods
//    from one or two cache lines.
//  - entries: (pod, tier, speculative) interned to small ints with a precomputed weight.
//  - engine map: open addressing from (pod, engine key) to its request keys (the last one
//    inline, earlier ones in an overflow list). Per pod, because engine hashes are only
//    meaningful within one engine (random NONE_HASH without PYTHONHASHSEED).
//  - capacity in entries, enforced with second-chance (CLOCK) LRU over keys: adds and
//    lookups set a reference bit, eviction gives referenced keys one more round.
import type { BlockKey, BlockKeys, IndexStats, KeyType, KvBlockIndex, PodEntry, PodId, PrefixMatch } from './types.js';
import { DEFAULT_TIER_WEIGHTS } from './types.js';
import type { IndexMetrics } from './metrics.js';

export interface InMemoryIndexOptions {
  /** Maximum (request key, entry) pairs; least recently used keys are dropped beyond it. */
  capacity?: number;
  /** Tier weights; unknown tiers weigh 1.0. Default gpu 1.0, cpu 0.8. */
  tierWeights?: Record<string, number>;
  metrics?: IndexMetrics;
}

export const DEFAULT_CAPACITY = 100_000_000;
const MAX_REF = 0xffff;
const NONE = -1;

function grown<T extends Int32Array | Uint32Array | Uint16Array | Uint8Array | Float64Array>(a: T, min: number, fill?: number): T {
  let cap = Math.max(16, a.length);
  while (cap < min) cap = Math.ceil(cap * 1.5);
  const C = a.constructor as new (n: number) => T;
  const b = new C(cap);
  b.set(a);
  if (fill !== undefined) b.fill(fill, a.length);
  return b;
}

function u32view(keys: BlockKeys): Uint32Array {
  return new Uint32Array(keys.buffer, keys.byteOffset, keys.length * 2);
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
  private entryCount = 0;

  // request key records
  private recLo = new Uint32Array(1024);
  private recHi = new Uint32Array(1024);
  private recOff = new Int32Array(1024);
  private recLen = new Int32Array(1024);
  private recCls = new Uint8Array(1024);
  private recBit = new Uint8Array(1024);
  /** 1 when a key may hold a non-unit weight or two entries of one pod (sticky): scoring takes the slow path. */
  private recMixed = new Uint8Array(1024);
  private recPrev = new Int32Array(1024);
  private recNext = new Int32Array(1024);
  private recTop = 0;
  private recFree = NONE;
  private recCount = 0;
  private lruHead = NONE;
  private lruTail = NONE;
  private tab = new Int32Array(2048); // rec + 1, 0 = empty
  private tabBits = 11;

  // slab of (entry, ref) runs
  private slabE = new Int32Array(4096);
  private slabP = new Int32Array(4096); // pod of slabE's entry, saves an indirection when scoring
  private slabR = new Uint16Array(4096);
  private slabTop = 0;
  private readonly slabFree = new Int32Array(32).fill(NONE);
  private entries = 0;

  // engine map: (pod, engine key) -> request keys
  private eLo = new Uint32Array(1024);
  private eHi = new Uint32Array(1024);
  private ePod = new Int32Array(1024); // pod + 1, 0 = empty
  private rLo = new Uint32Array(1024);
  private rHi = new Uint32Array(1024);
  private eMore = new Int32Array(1024).fill(NONE);
  private eBits = 10;
  private eCount = 0;
  private engineSweepAt: number;
  private oLo = new Uint32Array(64);
  private oHi = new Uint32Array(64);
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
  private spec: SpecItem[] = [];
  private specTimer: NodeJS.Timeout | null = null;
  private specTimerDue = Infinity;
  private closed = false;

  constructor(opts: InMemoryIndexOptions = {}) {
    const cap = opts.capacity ?? DEFAULT_CAPACITY;
    if (!(cap >= 1)) throw new RangeError(`index capacity must be >= 1, got ${cap}`);
    this.capacity = Math.floor(cap);
    this.weights = { ...DEFAULT_TIER_WEIGHTS, ...(opts.tierWeights ?? {}) };
    this.metrics = opts.metrics ?? null;
    this.metrics?.setStatsSource(() => this.stats());
    this.engineSweepAt = Math.min(4 * this.capacity, 1 << 30) + 1024;
  }

  // ---------------- pods and entries ----------------

  private podIndex(pod: PodId, create: boolean): number {
    let p = this.podIds.get(pod);
    if (p !== undefined) return p;
    if (!create) return NONE;
    p = this.podNames.length;
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

  private entryIndex(entry: PodEntry, create: boolean): number {
    const tier = (entry.tier || 'gpu').toLowerCase();
    const spec = entry.speculative ? 1 : 0;
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
    }
    this.entryPod[e] = p;
    // Speculative entries stand for blocks about to land in GPU memory.
    const w = spec ? (this.weights.gpu ?? 1) : this.weights[tier];
    this.entryW[e] = w === undefined ? 1 : w;
    this.entrySpec[e] = spec;
    this.entryIds.set(name, e);
    return e;
  }

  // ---------------- key table ----------------

  private find(lo: number, hi: number): number {
    const tab = this.tab;
    const mask = tab.length - 1;
    let i = mix(lo, hi) >>> (32 - this.tabBits);
    for (;;) {
      const r = tab[i] - 1;
      if (r < 0) return NONE;
      if (this.recLo[r] === lo && this.recHi[r] === hi) return r;
      i = (i + 1) & mask;
    }
  }

  private insertRec(lo: number, hi: number): number {
    if ((this.recCount + 1) * 10 > this.tab.length * 7) this.rehashKeys(this.tabBits + 1);
    let r = this.recFree;
    if (r !== NONE) this.recFree = this.recNext[r];
    else {
      r = this.recTop++;
      if (r >= this.recLo.length) this.growRecs(r + 1);
    }
    this.recLo[r] = lo;
    this.recHi[r] = hi;
    this.recLen[r] = 0;
    this.recCls[r] = 0;
    this.recOff[r] = this.slabAlloc(0);
    this.recBit[r] = 0;
    this.recMixed[r] = 0;
    // LRU: new keys at the head
    this.recPrev[r] = NONE;
    this.recNext[r] = this.lruHead;
    if (this.lruHead !== NONE) this.recPrev[this.lruHead] = r;
    this.lruHead = r;
    if (this.lruTail === NONE) this.lruTail = r;
    const tab = this.tab;
    const mask = tab.length - 1;
    let i = mix(lo, hi) >>> (32 - this.tabBits);
    while (tab[i] !== 0) i = (i + 1) & mask;
    tab[i] = r + 1;
    this.recCount++;
    return r;
  }

  private growRecs(n: number): void {
    this.recLo = grown(this.recLo, n);
    this.recHi = grown(this.recHi, n);
    this.recOff = grown(this.recOff, n);
    this.recLen = grown(this.recLen, n);
    this.recCls = grown(this.recCls, n);
    this.recBit = grown(this.recBit, n);
    this.recMixed = grown(this.recMixed, n);
    this.recPrev = grown(this.recPrev, n);
    this.recNext = grown(this.recNext, n);
  }

  private rehashKeys(bits: number): void {
    const tab = new Int32Array(1 << bits);
    const mask = tab.length - 1;
    for (let r = this.lruHead; r !== NONE; r = this.recNext[r]) {
      let i = mix(this.recLo[r], this.recHi[r]) >>> (32 - bits);
      while (tab[i] !== 0) i = (i + 1) & mask;
      tab[i] = r + 1;
    }
    this.tab = tab;
    this.tabBits = bits;
  }

  /** Removes a record entirely (table, LRU list, slab run). */
  private deleteRec(r: number): void {
    const tab = this.tab;
    const mask = tab.length - 1;
    const bits = this.tabBits;
    let i = mix(this.recLo[r], this.recHi[r]) >>> (32 - bits);
    while (tab[i] !== r + 1) i = (i + 1) & mask;
    // backward-shift deletion
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const o = tab[j] - 1;
      if (o < 0) break;
      const k = mix(this.recLo[o], this.recHi[o]) >>> (32 - bits);
      // move o into the hole at i unless its home lies cyclically in (i, j]
      const inRange = i <= j ? k > i && k <= j : k > i || k <= j;
      if (!inRange) {
        tab[i] = tab[j];
        i = j;
      }
    }
    tab[i] = 0;
    const prev = this.recPrev[r];
    const next = this.recNext[r];
    if (prev !== NONE) this.recNext[prev] = next;
    else this.lruHead = next;
    if (next !== NONE) this.recPrev[next] = prev;
    else this.lruTail = prev;
    this.entries -= this.recLen[r];
    this.slabRelease(this.recOff[r], this.recCls[r]);
    this.recNext[r] = this.recFree;
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
      this.slabP = grown(this.slabP, at + size);
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
    const off = this.recOff[r];
    const len = this.recLen[r];
    const slabE = this.slabE;
    const p = this.entryPod[e];
    let samePod = false;
    for (let j = off; j < off + len; j++) {
      if (slabE[j] === e) {
        if (this.slabR[j] < MAX_REF) this.slabR[j]++;
        return;
      }
      if (this.slabP[j] === p) samePod = true;
    }
    if (samePod || this.entryW[e] !== 1) this.recMixed[r] = 1;
    if (len === 1 << this.recCls[r]) {
      const cls = this.recCls[r] + 1;
      const noff = this.slabAlloc(cls);
      this.slabE.copyWithin(noff, off, off + len);
      this.slabP.copyWithin(noff, off, off + len);
      this.slabR.copyWithin(noff, off, off + len);
      this.slabRelease(off, cls - 1);
      this.recOff[r] = noff;
      this.recCls[r] = cls;
    }
    const at = this.recOff[r] + len;
    this.slabE[at] = e;
    this.slabP[at] = p;
    this.slabR[at] = 1;
    this.recLen[r] = len + 1;
    this.entries++;
  }

  /** Drops one reference of entry `e` at record `r`; returns 1 if the entry disappeared. */
  private unrefEntry(r: number, e: number): number {
    const off = this.recOff[r];
    const len = this.recLen[r];
    for (let j = off; j < off + len; j++) {
      if (this.slabE[j] !== e) continue;
      if (--this.slabR[j] > 0) return 0;
      const last = off + len - 1;
      this.slabE[j] = this.slabE[last];
      this.slabP[j] = this.slabP[last];
      this.slabR[j] = this.slabR[last];
      this.recLen[r] = len - 1;
      this.entries--;
      if (len === 1) this.deleteRec(r); // no entry left: forget the key
      return 1;
    }
    return 0;
  }

  private podHolds(r: number, p: number): boolean {
    const off = this.recOff[r];
    const end = off + this.recLen[r];
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
      while (this.recBit[r] !== 0 && spins++ < this.recCount) {
        this.recBit[r] = 0;
        this.moveToHead(r);
        r = this.lruTail;
      }
      const n = this.recLen[r];
      if (this.metrics) {
        this.metrics.evictions += n;
        this.metrics.capacityEvictions += n;
      }
      this.deleteRec(r);
    }
  }

  private moveToHead(r: number): void {
    if (this.lruHead === r) return;
    const prev = this.recPrev[r];
    const next = this.recNext[r];
    this.recNext[prev] = next;
    if (next !== NONE) this.recPrev[next] = prev;
    else this.lruTail = prev;
    this.recPrev[r] = NONE;
    this.recNext[r] = this.lruHead;
    this.recPrev[this.lruHead] = r;
    this.lruHead = r;
  }

  // ---------------- engine map ----------------

  private eHome(p: number, lo: number, hi: number): number {
    return mix(lo ^ Math.imul(p + 1, 0x27d4eb2f), hi) >>> (32 - this.eBits);
  }

  private eFind(p: number, lo: number, hi: number): number {
    const mask = this.ePod.length - 1;
    let i = this.eHome(p, lo, hi);
    for (;;) {
      const q = this.ePod[i];
      if (q === 0) return NONE;
      if (q === p + 1 && this.eLo[i] === lo && this.eHi[i] === hi) return i;
      i = (i + 1) & mask;
    }
  }

  private eMap(p: number, lo: number, hi: number, rlo: number, rhi: number): void {
    let s = this.eFind(p, lo, hi);
    if (s === NONE) {
      if ((this.eCount + 1) * 10 > this.ePod.length * 7) this.rehashEngine(this.eBits + 1, NONE);
      const mask = this.ePod.length - 1;
      s = this.eHome(p, lo, hi);
      while (this.ePod[s] !== 0) s = (s + 1) & mask;
      this.ePod[s] = p + 1;
      this.eLo[s] = lo;
      this.eHi[s] = hi;
      this.rLo[s] = rlo;
      this.rHi[s] = rhi;
      this.eMore[s] = NONE;
      this.eCount++;
      if (this.eCount > this.engineSweepAt) this.sweepEngine();
      return;
    }
    if (this.rLo[s] === rlo && this.rHi[s] === rhi) return;
    for (let o = this.eMore[s]; o !== NONE; o = this.oNext[o]) if (this.oLo[o] === rlo && this.oHi[o] === rhi) return;
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
    this.oLo[o] = this.rLo[s];
    this.oHi[o] = this.rHi[s];
    this.oNext[o] = this.eMore[s];
    this.eMore[s] = o;
    this.rLo[s] = rlo;
    this.rHi[s] = rhi;
  }

  private eRequestKeys(s: number): number[] {
    const out = [this.rLo[s], this.rHi[s]];
    for (let o = this.eMore[s]; o !== NONE; o = this.oNext[o]) out.push(this.oLo[o], this.oHi[o]);
    return out;
  }

  private eDelete(s: number): void {
    for (let o = this.eMore[s]; o !== NONE; ) {
      const next = this.oNext[o];
      this.oNext[o] = this.oFree;
      this.oFree = o;
      o = next;
    }
    const mask = this.ePod.length - 1;
    let i = s;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const q = this.ePod[j];
      if (q === 0) break;
      const k = this.eHome(q - 1, this.eLo[j], this.eHi[j]);
      const inRange = i <= j ? k > i && k <= j : k > i || k <= j;
      if (!inRange) {
        this.ePod[i] = q;
        this.eLo[i] = this.eLo[j];
        this.eHi[i] = this.eHi[j];
        this.rLo[i] = this.rLo[j];
        this.rHi[i] = this.rHi[j];
        this.eMore[i] = this.eMore[j];
        i = j;
      }
    }
    this.ePod[i] = 0;
    this.eMore[i] = NONE;
    this.eCount--;
  }

  /** Rebuilds the engine table with `bits` bits, dropping pod `dropPod`'s mappings (or none). */
  private rehashEngine(bits: number, dropPod: number, keep?: (s: number) => boolean): void {
    const n = 1 << bits;
    const old = { ePod: this.ePod, eLo: this.eLo, eHi: this.eHi, rLo: this.rLo, rHi: this.rHi, eMore: this.eMore };
    this.ePod = new Int32Array(n);
    this.eLo = new Uint32Array(n);
    this.eHi = new Uint32Array(n);
    this.rLo = new Uint32Array(n);
    this.rHi = new Uint32Array(n);
    this.eMore = new Int32Array(n).fill(NONE);
    this.eBits = bits;
    this.eCount = 0;
    const mask = n - 1;
    for (let s = 0; s < old.ePod.length; s++) {
      const q = old.ePod[s];
      if (q === 0) continue;
      let drop = q - 1 === dropPod;
      if (!drop && keep) {
        // `keep` reads the old slot through the saved arrays
        drop = !keep(s);
      }
      if (drop) {
        for (let o = old.eMore[s]; o !== NONE; ) {
          const next = this.oNext[o];
          this.oNext[o] = this.oFree;
          this.oFree = o;
          o = next;
        }
        continue;
      }
      let i = this.eHome(q - 1, old.eLo[s], old.eHi[s]);
      while (this.ePod[i] !== 0) i = (i + 1) & mask;
      this.ePod[i] = q;
      this.eLo[i] = old.eLo[s];
      this.eHi[i] = old.eHi[s];
      this.rLo[i] = old.rLo[s];
      this.rHi[i] = old.rHi[s];
      this.eMore[i] = old.eMore[s];
      this.eCount++;
    }
  }

  /** Drops engine mappings none of whose request keys the pod still holds (capacity evictions leave them behind). */
  private sweepEngine(): void {
    const { ePod, rLo, rHi, eMore } = this;
    const before = this.eCount;
    this.rehashEngine(this.eBits, NONE, (s) => {
      const p = ePod[s] - 1;
      let r = this.find(rLo[s], rHi[s]);
      if (r !== NONE && this.podHolds(r, p)) return true;
      for (let o = eMore[s]; o !== NONE; o = this.oNext[o]) {
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
    for (let i = 0; i < 2 * nR; i += 2) {
      const lo = rk[i];
      const hi = rk[i + 1];
      let r = this.find(lo, hi);
      if (r === NONE) r = this.insertRec(lo, hi); // new keys start at the head, unreferenced
      else this.recBit[r] = 1; // re-stored: used again
      this.refEntry(r, e);
    }
    if (this.metrics) this.metrics.admissions += nR;
    if (engineKeys && engineKeys.length > 0 && !entry.speculative) {
      const p = this.entryPod[e];
      const ek = u32view(engineKeys);
      const nE = engineKeys.length;
      const n = Math.max(nE, nR);
      for (let i = 0; i < n; i++) {
        const ei = Math.floor((i * nE) / n) * 2;
        const ri = Math.floor((i * nR) / n) * 2;
        this.eMap(p, ek[ei], ek[ei + 1], rk[ri], rk[ri + 1]);
      }
    }
    if (this.entries > this.capacity) this.enforceCapacity();
  }

  evict(key: BlockKey, keyType: KeyType, entry: PodEntry): void {
    const e = this.entryIndex(entry, false);
    if (e === NONE) return;
    const lo = Number(key & 0xffffffffn);
    const hi = Number((key >> 32n) & 0xffffffffn);
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
    const lo = Number(engineKey & 0xffffffffn);
    const hi = Number((engineKey >> 32n) & 0xffffffffn);
    if (pod !== undefined) {
      const p = this.podIndex(pod, false);
      if (p === NONE) return undefined;
      const s = this.eFind(p, lo, hi);
      return s === NONE ? undefined : (BigInt(this.rHi[s]) << 32n) | BigInt(this.rLo[s]);
    }
    for (let p = 0; p < this.podNames.length; p++) {
      const s = this.eFind(p, lo, hi);
      if (s !== NONE) return (BigInt(this.rHi[s]) << 32n) | BigInt(this.rLo[s]);
    }
    return undefined;
  }

  clear(pod: PodId): void {
    const p = this.podIndex(pod, false);
    if (p === NONE) return;
    this.podGen[p]++;
    let removed = 0;
    for (let r = this.lruHead; r !== NONE; ) {
      const next = this.recNext[r];
      const off = this.recOff[r];
      let len = this.recLen[r];
      for (let j = off; j < off + len; ) {
        if (this.slabP[j] === p) {
          const last = off + len - 1;
          this.slabE[j] = this.slabE[last];
          this.slabP[j] = this.slabP[last];
          this.slabR[j] = this.slabR[last];
          len--;
          removed++;
          this.entries--;
        } else j++;
      }
      this.recLen[r] = len;
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
    const item: SpecItem = { due: performance.now() + Math.max(0, ttlMs), keys: requestKeys.slice(), entry: e, gen: this.podGen[this.entryPod[e]] };
    // keep the queue sorted by due time (usually a plain append: one TTL for everything)
    let i = this.spec.length;
    while (i > 0 && this.spec[i - 1].due > item.due) i--;
    this.spec.splice(i, 0, item);
    this.armSpecTimer();
  }

  private armSpecTimer(): void {
    if (this.spec.length === 0 || this.closed) return;
    const due = this.spec[0].due;
    if (this.specTimer && this.specTimerDue <= due) return;
    if (this.specTimer) clearTimeout(this.specTimer);
    this.specTimerDue = due;
    this.specTimer = setTimeout(() => {
      this.specTimer = null;
      this.specTimerDue = Infinity;
      this.expireSpeculative();
      this.armSpecTimer();
    }, Math.max(0, due - performance.now()) + 1);
    this.specTimer.unref();
  }

  private expireSpeculative(): void {
    const now = performance.now();
    let n = 0;
    while (n < this.spec.length && this.spec[n].due <= now) n++;
    if (n === 0) return;
    const done = this.spec.splice(0, n);
    let removed = 0;
    for (const it of done) {
      if (this.podGen[this.entryPod[it.entry]] !== it.gen) continue; // pod cleared since
      const k = u32view(it.keys);
      for (let i = 0; i < k.length; i += 2) {
        const r = this.find(k[i], k[i + 1]);
        if (r !== NONE) removed += this.unrefEntry(r, it.entry);
      }
    }
    if (this.metrics) this.metrics.evictions += removed;
  }

  longestPrefix(requestKeys: BlockKeys, pods?: ReadonlySet<PodId> | null): Map<PodId, PrefixMatch> {
    const t0 = this.metrics ? performance.now() : 0;
    if (this.spec.length > 0 && this.spec[0].due <= performance.now()) this.expireSpeculative();
    const result = new Map<PodId, PrefixMatch>();
    const n = requestKeys.length;
    let hits = 0;
    if (n > 0) hits = this.walk(u32view(requestKeys), n, pods ?? null, result);
    if (this.metrics) this.metrics.observeLookup((performance.now() - t0) / 1000, hits);
    return result;
  }

  private walk(k: Uint32Array, n: number, pods: ReadonlySet<PodId> | null, result: Map<PodId, PrefixMatch>): number {
    if (this.stamp > 0x3fffffff) {
      this.stamp = 0;
      this.podSeen.fill(0);
      this.podFilter.fill(0);
    }
    const { podSeen, podW, podSum, first, entryW, slabE, slabP, recOff, recLen, recMixed } = this;
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
    let off = recOff[r];
    let end = off + recLen[r];
    for (let j = off; j < end; j++) {
      const p = slabP[j];
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
    this.recBit[r] = 1;
    let blocks = 1;
    let cur = base;
    for (let i = 1; i < n; i++) {
      r = this.find(k[2 * i], k[2 * i + 1]);
      if (r === NONE) break;
      const prev = cur;
      cur = base + i;
      off = recOff[r];
      end = off + recLen[r];
      let advanced = 0;
      if (recMixed[r] === 0) {
        // every entry weighs 1 and each pod appears once: just advance the runs
        for (let j = off; j < end; j++) {
          const p = slabP[j];
          if (podSeen[p] === prev) {
            podSeen[p] = cur;
            advanced++;
          }
        }
      } else {
        for (let j = off; j < end; j++) {
          const p = slabP[j];
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
      this.recBit[r] = 1;
      blocks = i + 1;
    }
    this.stamp = base + n;
    for (let a = 0; a < nFirst; a++) {
      const p = first[a];
      const b = podSeen[p] - base + 1;
      result.set(this.podNames[p], { blocks: b, weighted: b - podSum[p] });
    }
    return blocks;
  }

  stats(): IndexStats {
    return { keys: this.recCount, entries: this.entries, engineKeys: this.eCount, capacity: this.capacity };
  }

  /** Bytes held by the typed arrays (for memory benchmarks). */
  memoryBytes(): number {
    const arrays = [
      this.recLo, this.recHi, this.recOff, this.recLen, this.recCls, this.recBit, this.recPrev, this.recNext, this.tab,
      this.slabE, this.slabP, this.slabR, this.eLo, this.eHi, this.ePod, this.rLo, this.rHi, this.eMore, this.oLo, this.oHi, this.oNext,
    ];
    return arrays.reduce((s, a) => s + a.byteLength, 0);
  }

  close(): void {
    this.closed = true;
    if (this.specTimer) clearTimeout(this.specTimer);
    this.specTimer = null;
    this.spec = [];
  }
}
