// Typed-array helpers shared by the in-memory index's data structures.

/** "No record / node / entry": every index inside the structures is >= 0. */
export const NONE = -1;

/**
 * A copy of `a` with room for at least `min` elements. Doubling: pages past the copied part
 * stay untouched until used, and on this kind of VM a first touch costs far more than the copy,
 * so fewer, larger steps touch less fresh memory than 1.5x steps.
 */
export function grown<T extends Int32Array | Uint32Array | Uint16Array | Uint8Array | Float64Array>(a: T, min: number, fill?: number): T {
  let cap = Math.max(16, a.length);
  while (cap < min) cap *= 2;
  const C = a.constructor as new (n: number) => T;
  const b = new C(cap);
  b.set(a);
  if (fill !== undefined) b.fill(fill, a.length);
  return b;
}

/** (lo, hi) int32 pairs of the keys; all key halves inside the index are signed int32. */
export function u32view(keys: BigUint64Array): Int32Array {
  return new Int32Array(keys.buffer, keys.byteOffset, keys.length * 2);
}

/** 32-bit hash of a 64-bit key given as (lo, hi); tables use its top bits. */
export function mix(lo: number, hi: number): number {
  return Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b) ^ (hi >>> 7);
}
