// Layout of a key record: 8 int32 per request key (one cache line holds two), in one
// Int32Array, so a record is `rec[r * RS + FIELD]`.

export const RS = 8;
/** Low and high halves of the 64-bit request key. */
export const R_LO = 0;
export const R_HI = 1;
/** Offset of the key's holder run in the slabs. */
export const R_RUN = 2;
/** Holder slots in the run; -1 marks a free record. */
export const R_LEN = 3;
/** LRU neighbours (toward the head / toward the tail). R_NEXT also links free records. */
export const R_PREV = 4;
export const R_NEXT = 5;
/** The run's slab size class (low bits) | its unit-weight slot count << UNIT_SHIFT. */
export const R_CLS = 6;
/** Reference bit for second-chance eviction: set by adds and lookups. */
export const R_USED = 7;

export const UNIT_SHIFT = 5;
export const CLS_MASK = (1 << UNIT_SHIFT) - 1;
/** The unit-weight slots come first in a run; their count is R_CLS >> UNIT_SHIFT. */
export const UNIT_ONE = 1 << UNIT_SHIFT;
