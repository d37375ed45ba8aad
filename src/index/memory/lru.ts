// Least-recently-used order over key records: a doubly linked list threaded through the
// records' R_PREV / R_NEXT fields (new keys at the head), with second-chance (CLOCK) victim
// selection: a record whose R_USED bit is set moves to the head once, bit cleared.
import * as arrays from './arrays.js';
import * as layout from './record-layout.js';
// Imported bindings are re-read and checked on every use, which costs a hot loop dearly (measured
// ~25x on a record-field loop); module constants copied from them once are not.
const { NONE } = arrays;
const { RS, R_NEXT, R_PREV, R_USED } = layout;

export class Lru {
  head = NONE;
  tail = NONE;

  pushHead(rec: Int32Array, r: number): void {
    rec[r * RS + R_PREV] = NONE;
    rec[r * RS + R_NEXT] = this.head;
    if (this.head !== NONE) rec[this.head * RS + R_PREV] = r;
    this.head = r;
    if (this.tail === NONE) this.tail = r;
  }

  unlink(rec: Int32Array, r: number): void {
    const prev = rec[r * RS + R_PREV];
    const next = rec[r * RS + R_NEXT];
    if (prev !== NONE) rec[prev * RS + R_NEXT] = next;
    else this.head = next;
    if (next !== NONE) rec[next * RS + R_PREV] = prev;
    else this.tail = prev;
  }

  moveToHead(rec: Int32Array, r: number): void {
    if (this.head === r) return;
    this.unlink(rec, r);
    this.pushHead(rec, r);
  }

  /** The record to evict: the tail, after giving at most `records` referenced ones a second chance. */
  victim(rec: Int32Array, records: number): number {
    let r = this.tail;
    let spins = 0;
    while (rec[r * RS + R_USED] !== 0 && spins++ < records) {
      rec[r * RS + R_USED] = 0;
      this.moveToHead(rec, r);
      r = this.tail;
    }
    return r;
  }
}
