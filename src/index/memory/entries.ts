// Pods and entries interned to small ints. An entry is (pod, tier, speculative) with its
// weight precomputed; distinct weights get a 1-byte weight class so holder slots can carry
// `pod << 8 | class` and scoring reads one int per holder.
import type { PodEntry, PodId } from '../types.js';
import * as arrays from './arrays.js';
// Imported bindings are re-read and checked on every use, which costs a hot loop dearly (measured
// ~25x on a record-field loop); module constants copied from them once are not.
const { NONE, grown } = arrays;

export class EntryTable {
  readonly podIds = new Map<string, number>();
  readonly podNames: string[] = [];
  /** Bumped when a pod is cleared, so pending speculative expiries for it are dropped. */
  podGen = new Int32Array(16);
  private readonly entryIds = new Map<string, number>();
  pod = new Int32Array(16);
  weight = new Float64Array(16);
  speculative = new Uint8Array(16);
  /** Weight class of the entry (class 0: weight 1, no deficit). */
  cls = new Uint8Array(16);
  private count = 0;
  private readonly classOf = new Map<number, number>([[1, 0]]);
  /** Weight deficit (1 - weight) by class. */
  readonly classDeficit = new Float64Array(256);

  // the last entry resolved: events of one pod usually arrive back to back
  private lastPod = '';
  private lastTier = '';
  private lastSpec = -1;
  private lastEntry = NONE;

  constructor(private readonly weights: Record<string, number>) {}

  get podCount(): number {
    return this.podNames.length;
  }

  podIndex(pod: PodId, create: boolean): number {
    let p = this.podIds.get(pod);
    if (p !== undefined) return p;
    if (!create) return NONE;
    p = this.podNames.length;
    if (p >= 1 << 23) throw new RangeError('more than 2^23 distinct pods'); // slots pack pod << 8 | class
    this.podIds.set(pod, p);
    this.podNames.push(pod);
    if (p >= this.podGen.length) this.podGen = grown(this.podGen, p + 1);
    return p;
  }

  /** The speculative (gpu) entry of each pod, NONE until first used: routing alternates pods, which defeats the last-entry cache. */
  private specOf = new Int32Array(16).fill(NONE);

  /** The id of `pod`'s speculative entry (created on first use). */
  speculativeEntry(pod: PodId): number {
    const p = this.podIds.get(pod);
    if (p !== undefined && p < this.specOf.length && this.specOf[p] !== NONE) return this.specOf[p];
    const e = this.entryIndex({ pod, tier: 'gpu', speculative: true }, true);
    const q = this.pod[e];
    if (q >= this.specOf.length) this.specOf = grown(this.specOf, q + 1, NONE);
    this.specOf[q] = e;
    return e;
  }

  /** The entry's id; NONE when unknown and `create` is false. */
  entryIndex(entry: PodEntry, create: boolean): number {
    const spec = entry.speculative ? 1 : 0;
    if (entry.pod === this.lastPod && entry.tier === this.lastTier && spec === this.lastSpec) return this.lastEntry;
    const e = this.resolve(entry, spec, create);
    if (e !== NONE) {
      this.lastPod = entry.pod;
      this.lastTier = entry.tier;
      this.lastSpec = spec;
      this.lastEntry = e;
    }
    return e;
  }

  private resolve(entry: PodEntry, spec: number, create: boolean): number {
    const tier = (entry.tier || 'gpu').toLowerCase();
    const name = `${spec}\u0000${tier}\u0000${entry.pod}`;
    let e = this.entryIds.get(name);
    if (e !== undefined) return e;
    if (!create) return NONE;
    const p = this.podIndex(entry.pod, true);
    e = this.count++;
    if (e >= this.pod.length) {
      this.pod = grown(this.pod, e + 1);
      this.weight = grown(this.weight, e + 1);
      this.speculative = grown(this.speculative, e + 1);
      this.cls = grown(this.cls, e + 1);
    }
    this.pod[e] = p;
    // Speculative entries stand for blocks about to land in GPU memory.
    const w = spec ? (this.weights.gpu ?? 1) : this.weights[tier];
    this.weight[e] = w === undefined ? 1 : w;
    let c = this.classOf.get(this.weight[e]);
    if (c === undefined) {
      if (this.classOf.size >= 256) throw new RangeError('more than 256 distinct tier weights');
      c = this.classOf.size;
      this.classOf.set(this.weight[e], c);
      this.classDeficit[c] = 1 - this.weight[e];
    }
    this.cls[e] = c;
    this.speculative[e] = spec;
    this.entryIds.set(name, e);
    return e;
  }
}
