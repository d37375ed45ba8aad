// Key table: open addressing (linear probing, backward-shift deletion) from a 64-bit request
// key to its record (./record-layout.ts); each record owns a run of holder slots in the slabs
// (./holder-slabs.ts), unit-weight slots first (each part sorted by pod), so scoring reads one int per holder and adds
// tier deficits only where needed. Records are linked in LRU order (./lru.ts).
import * as arrays from './arrays.js';
import type { EntryTable } from './entries.js';
import * as slabs from './holder-slabs.js';
import { Lru } from './lru.js';
import * as layout from './record-layout.js';
// Imported bindings are re-read and checked on every use, which costs a hot loop dearly (measured
// ~25x on a record-field loop); module constants copied from them once are not.
const { NONE, grown, mix } = arrays;
const { HolderSlabs, MAX_REF } = slabs;
const { CLS_MASK, RS, R_CLS, R_HI, R_LEN, R_LO, R_NEXT, R_RUN, R_USED, UNIT_ONE, UNIT_SHIFT } = layout;

/** recMixed bit: a pod may appear twice on the key (sticky): scoring takes the max-weight path. */
export const MIXED_SAME_POD = 1;
/** recMixed bit: a holder with a non-unit weight (deficit path). */
export const MIXED_WEIGHTED = 2;

export class KeyTable {
  rec = new Int32Array(1024 * RS);
  /** MIXED_* bits per record. */
  recMixed = new Uint8Array(1024);
  private recTop = 0;
  private recFree = NONE;
  /** Live records (distinct keys). */
  count = 0;
  /** (key, entry) pairs held. */
  entries = 0;
  /**
   * Slot i is tab[2i] = rec + 1 (0 = empty) and tab[2i + 1] = the key's mix hash: probes and
   * deletion's backward shift compare hashes in the slot's own cache line instead of reading
   * every displaced key's record (a cache miss each).
   */
  tab = new Int32Array(2 * 2048);
  tabBits = 11;
  /** The empty table slot where the last unsuccessful find stopped (insert's slot). */
  private missAt = 0;
  readonly slabs = new HolderSlabs();
  readonly lru = new Lru();

  constructor(private readonly ents: EntryTable) {}

  find(lo: number, hi: number): number {
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
      if (tab[2 * i + 1] === h && this.rec[r * RS + R_LO] === lo && this.rec[r * RS + R_HI] === hi) return r;
      i = (i + 1) & mask;
    }
  }

  /** Adds a record for a key that `find` just missed (its probe slot is reused); new keys go to the LRU head, unreferenced. */
  insert(lo: number, hi: number): number {
    let at = this.missAt;
    if ((this.count + 1) * 10 > (1 << this.tabBits) * 7) {
      this.rehash(this.tabBits + 1);
      const mask = (1 << this.tabBits) - 1;
      at = mix(lo, hi) >>> (32 - this.tabBits);
      while (this.tab[2 * at] !== 0) at = (at + 1) & mask;
    }
    let r = this.recFree;
    if (r !== NONE) this.recFree = this.rec[r * RS + R_NEXT];
    else {
      r = this.recTop++;
      if ((r + 1) * RS > this.rec.length) {
        this.rec = grown(this.rec, (r + 1) * RS);
        this.recMixed = grown(this.recMixed, r + 1);
      }
    }
    const rec = this.rec;
    rec[r * RS + R_LO] = lo;
    rec[r * RS + R_HI] = hi;
    rec[r * RS + R_LEN] = 0;
    rec[r * RS + R_CLS] = 0;
    rec[r * RS + R_RUN] = this.slabs.alloc(0);
    rec[r * RS + R_USED] = 0;
    this.recMixed[r] = 0;
    this.lru.pushHead(rec, r);
    this.tab[2 * at] = r + 1;
    this.tab[2 * at + 1] = mix(lo, hi);
    this.count++;
    return r;
  }

  private rehash(bits: number): void {
    const tab = new Int32Array(2 << bits);
    const mask = (1 << bits) - 1;
    const rec = this.rec;
    // in record order (sequential reads); free records have length -1
    for (let r = 0; r < this.recTop; r++) {
      if (rec[r * RS + R_LEN] < 0) continue;
      const h = mix(rec[r * RS + R_LO], rec[r * RS + R_HI]);
      let i = h >>> (32 - bits);
      while (tab[2 * i] !== 0) i = (i + 1) & mask;
      tab[2 * i] = r + 1;
      tab[2 * i + 1] = h;
    }
    this.tab = tab;
    this.tabBits = bits;
  }

  /** Removes a record entirely (table, LRU list, slab run). */
  delete(r: number): void {
    const tab = this.tab;
    const rec = this.rec;
    const bits = this.tabBits;
    const mask = (1 << bits) - 1;
    let i = mix(rec[r * RS + R_LO], rec[r * RS + R_HI]) >>> (32 - bits);
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
    this.lru.unlink(rec, r);
    this.entries -= rec[r * RS + R_LEN];
    this.slabs.release(rec[r * RS + R_RUN], rec[r * RS + R_CLS] & CLS_MASK);
    rec[r * RS + R_LEN] = -1;
    rec[r * RS + R_NEXT] = this.recFree;
    this.recFree = r;
    this.count--;
  }

  /** Adds one reference of entry `e` at record `r`. */
  ref(r: number, e: number): void {
    const rec = this.rec;
    const slabs = this.slabs;
    const off = rec[r * RS + R_RUN];
    const len = rec[r * RS + R_LEN];
    const p = this.ents.pod[e];
    let samePod = false;
    for (let j = off; j < off + len; j++) {
      if (slabs.entry[j] === e) {
        if (slabs.refs[j] < MAX_REF) slabs.refs[j]++;
        return;
      }
      if (slabs.podCls[j] >> 8 === p) samePod = true;
    }
    if (samePod) this.recMixed[r] |= MIXED_SAME_POD;
    if (this.ents.weight[e] !== 1) this.recMixed[r] |= MIXED_WEIGHTED;
    if (len === 1 << (rec[r * RS + R_CLS] & CLS_MASK)) {
      // the run is full: move it to the next size class
      const cls = (rec[r * RS + R_CLS] & CLS_MASK) + 1;
      const noff = slabs.alloc(cls);
      slabs.copyRun(noff, off, len);
      slabs.release(off, cls - 1);
      rec[r * RS + R_RUN] = noff;
      rec[r * RS + R_CLS] += 1; // size class + 1, unit count kept
    }
    // Slots stay sorted by podCls within the unit part and within the rest, so keys held by the
    // same pods at the same tiers have identical runs whatever order the pods stored them in:
    // the scoring walk then counts such keys without reading their slots (./prefix-walk.ts).
    const run = rec[r * RS + R_RUN];
    const cls = this.ents.cls[e];
    const pc = (p << 8) | cls;
    const u = rec[r * RS + R_CLS] >> UNIT_SHIFT;
    const partEnd = cls === 0 ? run + u : run + len;
    let at = cls === 0 ? run : run + u;
    while (at < partEnd && slabs.podCls[at] <= pc) at++;
    if (at < run + len) slabs.copyRun(at + 1, at, run + len - at);
    if (cls === 0) rec[r * RS + R_CLS] += UNIT_ONE;
    slabs.set(at, e, pc);
    rec[r * RS + R_LEN] = len + 1;
    this.entries++;
  }

  /** Removes slot `j` of record `r`'s run (`off`, `len` slots), keeping the run's order. */
  removeSlot(r: number, off: number, len: number, j: number): void {
    if (j < off + (this.rec[r * RS + R_CLS] >> UNIT_SHIFT)) this.rec[r * RS + R_CLS] -= UNIT_ONE;
    if (j < off + len - 1) this.slabs.copyRun(j, j + 1, off + len - 1 - j);
  }

  /** Drops one reference of entry `e` at record `r`; returns 1 if the entry disappeared. */
  unref(r: number, e: number): number {
    const off = this.rec[r * RS + R_RUN];
    const len = this.rec[r * RS + R_LEN];
    const slabs = this.slabs;
    for (let j = off; j < off + len; j++) {
      if (slabs.entry[j] !== e) continue;
      if (--slabs.refs[j] > 0) return 0;
      this.removeSlot(r, off, len, j);
      this.rec[r * RS + R_LEN] = len - 1;
      this.entries--;
      if (len === 1) this.delete(r); // no entry left: forget the key
      return 1;
    }
    return 0;
  }

  /** Whether pod `p` holds the key at record `r` with a confirmed (not speculative) entry. */
  podHolds(r: number, p: number): boolean {
    const off = this.rec[r * RS + R_RUN];
    const end = off + this.rec[r * RS + R_LEN];
    const { pod, speculative } = this.ents;
    for (let j = off; j < end; j++) {
      const e = this.slabs.entry[j];
      if (pod[e] === p && speculative[e] === 0) return true;
    }
    return false;
  }

  /** Removes every slot of pod `p`; returns the entries removed. */
  removePod(p: number): number {
    let removed = 0;
    for (let r = this.lru.head; r !== NONE; ) {
      const rec = this.rec;
      const next = rec[r * RS + R_NEXT];
      const off = rec[r * RS + R_RUN];
      let len = rec[r * RS + R_LEN];
      for (let j = off; j < off + len; ) {
        if (this.slabs.podCls[j] >> 8 === p) {
          // every slot not yet checked stays at j or after it
          this.removeSlot(r, off, len, j);
          len--;
          removed++;
          this.entries--;
        } else j++;
      }
      rec[r * RS + R_LEN] = len;
      if (len === 0) this.delete(r);
      r = next;
    }
    return removed;
  }

  /** Removes least recently used keys (second chance for used ones) until at most `capacity` entries remain; returns the entries removed. */
  evictTo(capacity: number): number {
    let removed = 0;
    while (this.entries > capacity && this.lru.tail !== NONE) {
      const r = this.lru.victim(this.rec, this.count);
      removed += this.rec[r * RS + R_LEN];
      this.delete(r);
    }
    return removed;
  }

  /**
   * Reads the table slot, record and slab run of every key before the real work: the reads do
   * not depend on each other, so the CPU overlaps their cache misses instead of waiting for them
   * one key at a time. Branch-free, since a mispredicted branch would cut the overlap short.
   * Returns a value only so the reads are kept.
   */
  touch(k: Int32Array): number {
    return this.touchRange(k, 0, k.length);
  }

  /** touch() over the pairs at [from, to) of `k`. */
  touchRange(k: Int32Array, from: number, to: number): number {
    const { tab, rec } = this;
    const slabE = this.slabs.entry;
    const shift = 32 - this.tabBits;
    let sink = 0;
    for (let i = from; i < to; i += 2) {
      const t = tab[2 * (mix(k[i], k[i + 1]) >>> shift)] - 1;
      const r = t & ~(t >> 31); // empty slot: record 0
      sink ^= slabE[rec[r * RS + R_RUN]] ^ rec[r * RS + R_LO];
    }
    return sink;
  }

  byteLength(): number {
    return this.rec.byteLength + this.recMixed.byteLength + this.tab.byteLength + this.slabs.byteLength();
  }
}
