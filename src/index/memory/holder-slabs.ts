// Holder slabs: every key's holders are one contiguous run of slots, allocated from three
// parallel arrays in power-of-two size classes (free runs are reused per class, linked through
// their first `entry` slot). A slot is (entry id, pod << 8 | weight class, reference count).
// Runs of two or more slots start at an even slot, so scoring can compare two runs' podCls
// two slots at a time through `podClsPairs`.
import * as arrays from './arrays.js';
// Imported bindings are re-read and checked on every use, which costs a hot loop dearly (measured
// ~25x on a record-field loop); module constants copied from them once are not.
const { NONE, grown } = arrays;

/** Reference counts saturate here. */
export const MAX_REF = 0xffff;

export class HolderSlabs {
  /** Entry id of the slot. */
  entry = new Int32Array(4096);
  /** pod << 8 | weight class of the entry: scoring reads one int per slot, no indirection. */
  podCls = new Int32Array(4096);
  /** `podCls` seen as float64s: pair i is slots 2i and 2i + 1 (see sameRun in ./prefix-walk.ts). */
  podClsPairs = new Float64Array(this.podCls.buffer);
  refs = new Uint16Array(4096);
  private top = 0;
  private readonly free = new Int32Array(32).fill(NONE);

  /** A run of 2^cls slots. */
  alloc(cls: number): number {
    const off = this.free[cls];
    if (off !== NONE) {
      this.free[cls] = this.entry[off];
      return off;
    }
    const size = 1 << cls;
    const at = cls === 0 ? this.top : (this.top + 1) & ~1;
    if (at + size > this.entry.length) {
      // lengths stay powers of two, so even: podClsPairs covers every slot
      this.entry = grown(this.entry, at + size);
      this.podCls = grown(this.podCls, at + size);
      this.podClsPairs = new Float64Array(this.podCls.buffer);
      this.refs = grown(this.refs, at + size);
    }
    this.top = at + size;
    return at;
  }

  release(off: number, cls: number): void {
    this.entry[off] = this.free[cls];
    this.free[cls] = off;
  }

  /** Copies `len` slots from `from` to `to` (overlap-safe: a run moving class, or slots shifting within one). */
  copyRun(to: number, from: number, len: number): void {
    this.entry.copyWithin(to, from, from + len);
    this.podCls.copyWithin(to, from, from + len);
    this.refs.copyWithin(to, from, from + len);
  }

  set(at: number, entry: number, podCls: number): void {
    this.entry[at] = entry;
    this.podCls[at] = podCls;
    this.refs[at] = 1;
  }

  byteLength(): number {
    return this.entry.byteLength + this.podCls.byteLength + this.refs.byteLength;
  }
}
