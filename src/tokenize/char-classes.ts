// Per-code-point classes of the split regex (as HF tokenizers' Oniguruma sees them) and the
// NFC-risk flag, expanded once per process from the generated ranges in unicode-tables.ts.
import { LETTER, NFC_RISK, NUMBER, SPACE } from './unicode-tables.js';

export const OTHER = 0;
/** \p{L} */
export const LETTER_C = 1;
/** \p{N} */
export const NUMBER_C = 2;
/** \s other than CR and LF */
export const SPACE_C = 3;
/** \r or \n (also \s) */
export const NEWLINE_C = 4;
export const CLASS_MASK = 7;
/** NFC of this code point differs between Node and HF's normalizer in some context. */
export const NFC_RISK_BIT = 8;

let table: Uint8Array | undefined;

function eachRange(encoded: string, fn: (first: number, last: number) => void): void {
  let prevEnd = -1;
  for (const pair of encoded.split(',')) {
    const dot = pair.indexOf('.');
    const first = prevEnd + 1 + parseInt(pair.slice(0, dot), 36);
    const last = first + parseInt(pair.slice(dot + 1), 36);
    fn(first, last);
    prevEnd = last;
  }
}

/** 0x110000 entries (1.1 MB, built in a few ms on first use). */
export function charClasses(): Uint8Array {
  if (table) return table;
  const t = new Uint8Array(0x110000);
  eachRange(LETTER, (a, b) => t.fill(LETTER_C, a, b + 1));
  eachRange(NUMBER, (a, b) => t.fill(NUMBER_C, a, b + 1));
  eachRange(SPACE, (a, b) => t.fill(SPACE_C, a, b + 1));
  t[10] = NEWLINE_C;
  t[13] = NEWLINE_C;
  eachRange(NFC_RISK, (a, b) => {
    for (let cp = a; cp <= b; cp++) t[cp] |= NFC_RISK_BIT;
  });
  table = t;
  return t;
}
