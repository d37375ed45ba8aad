// Longest-prefix scoring over the key table: one pass over the request's keys with per-pod
// stamps; runs of keys whose holder lists are identical (the usual shape of a cached prefix)
// are counted and applied in one pass.
import type { PodId, PrefixMatch } from '../types.js';
import * as arrays from './arrays.js';
import type { EntryTable } from './entries.js';
import * as keyTable from './key-table.js';
import type { KeyTable } from './key-table.js';
import * as layout from './record-layout.js';
// Imported bindings are re-read and checked on every use, which costs a hot loop dearly (measured
// ~25x on a record-field loop); module constants copied from them once are not.
const { NONE, grown } = arrays;
const { MIXED_SAME_POD } = keyTable;
const { RS, R_CLS, R_LEN, R_RUN, R_USED, UNIT_SHIFT } = layout;

/**
 * Whether the `len` slots at `a` and at `b` hold the same podCls values in the same order.
 * Runs of two or more slots start at even slots (./holder-slabs.ts), so they are compared two
 * slots per float64 (half the loads and loop turns of the hot loop of a long cached prefix).
 * Exact: slots are non-negative int32 (pods < 2^23), so no pair is -0 and equal doubles have
 * equal bits; a pair that is a NaN (pods >= 2^23 - 2^12) compares unequal, which only costs
 * the caller its shortcut.
 */
function sameRun(pc: Int32Array, pairs: Float64Array, a: number, b: number, len: number): boolean {
  if (len === 1) return pc[a] === pc[b];
  const half = len >> 1;
  const a2 = a >> 1;
  const b2 = b >> 1;
  for (let j = 0; j < half; j++) if (pairs[a2 + j] !== pairs[b2 + j]) return false;
  return (len & 1) === 0 || pc[a + len - 1] === pc[b + len - 1];
}

export class PrefixWalk {
  // scratch, per pod
  private podSeen = new Int32Array(16);
  private podFilter = new Int32Array(16);
  private podW = new Float64Array(16);
  private podSum = new Float64Array(16);
  private first = new Int32Array(16);
  private stamp = 0;

  constructor(
    private readonly keys: KeyTable,
    private readonly ents: EntryTable,
  ) {}

  private fitPods(n: number): void {
    if (n <= this.podSeen.length) return;
    this.podSeen = grown(this.podSeen, n);
    this.podFilter = grown(this.podFilter, n);
    this.podW = grown(this.podW, n);
    this.podSum = grown(this.podSum, n);
    this.first = grown(this.first, n);
  }

  /**
   * Fills `result` with each pod's run of leading keys (`k`: `n` keys as (lo, hi) pairs),
   * restricted to `pods` when given; marks the keys used. Returns the keys held by any pod.
   */
  walk(k: Int32Array, n: number, pods: ReadonlySet<PodId> | null, result: Map<PodId, PrefixMatch>): number {
    this.fitPods(this.ents.podCount);
    if (this.stamp > 0x3fffffff) {
      this.stamp = 0;
      this.podSeen.fill(0);
      this.podFilter.fill(0);
    }
    const { podSeen, podW, podSum, first } = this;
    const keys = this.keys;
    const rec = keys.rec;
    const recMixed = keys.recMixed;
    const slabE = keys.slabs.entry;
    const slabPC = keys.slabs.podCls;
    const slabPairs = keys.slabs.podClsPairs;
    const entryW = this.ents.weight;
    const classDeficit = this.ents.classDeficit;
    let fstamp = 0;
    if (pods) {
      fstamp = ++this.stamp;
      for (const name of pods) {
        const p = this.ents.podIds.get(name);
        if (p !== undefined) this.podFilter[p] = fstamp;
      }
    }
    // Stamps: key i of this walk is stamp base + i. A pod whose podSeen equals the previous
    // key's stamp is still in its run; at the end, its run length is podSeen - base + 1.
    // podSum holds the weight deficit (1 - best tier weight), so weighted = blocks - deficit.
    let r = keys.find(k[0], k[1]);
    if (r === NONE) return 0;
    const base = ++this.stamp;
    let nFirst = 0;
    let off = rec[r * RS + R_RUN];
    let end = off + rec[r * RS + R_LEN];
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
    rec[r * RS + R_USED] = 1;
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
      r = keys.find(k[2 * i], k[2 * i + 1]);
      if (r === NONE) break;
      off = rec[r * RS + R_RUN];
      const len = rec[r * RS + R_LEN];
      if (len === pLen && sameRun(slabPC, slabPairs, off, pOff, len)) {
        rep++;
        rec[r * RS + R_USED] = 1;
        blocks = i + 1;
        continue;
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
      } else if ((mixed & MIXED_SAME_POD) === 0) {
        // each pod appears once: advance the runs; slots past the unit ones add their deficit
        const mid = off + (rec[r * RS + R_CLS] >> UNIT_SHIFT);
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
      rec[r * RS + R_USED] = 1;
      blocks = i + 1;
      pOff = off;
      pLen = len;
      pMixed = mixed;
    }
    if (rep > 0) this.applyRepeats(cur, rep, pOff, pLen, pMixed);
    this.stamp = base + n;
    const names = this.ents.podNames;
    for (let a = 0; a < nFirst; a++) {
      const p = first[a];
      const b = podSeen[p] - base + 1;
      result.set(names[p], { blocks: b, weighted: b - podSum[p] });
    }
    return blocks;
  }

  /**
   * Advances the pods still running at stamp `cur` by `rep` more keys whose slots equal the
   * run at `off` (`len` slots, mixed flags `mixed`), adding `rep` times each pod's deficit.
   */
  private applyRepeats(cur: number, rep: number, off: number, len: number, mixed: number): void {
    const { podSeen, podSum, podW } = this;
    const slabPC = this.keys.slabs.podCls;
    const classDeficit = this.ents.classDeficit;
    const to = cur + rep;
    for (let j = off; j < off + len; j++) {
      const v = slabPC[j];
      const p = v >> 8;
      if (podSeen[p] !== cur) continue;
      podSeen[p] = to;
      // a pod twice on the key: the walk left its best weight in podW
      if ((mixed & MIXED_SAME_POD) !== 0) podSum[p] += rep * (1 - podW[p]);
      else if ((v & 0xff) !== 0) podSum[p] += rep * classDeficit[v & 0xff];
    }
  }
}
