// The split regexes of Qwen2/Qwen3 and Llama-3 as a hand-written scanner over per-unit
// character classes (char-classes.ts). The regex, alternatives tried in order at each point:
//   A1 (?i:'s|'t|'re|'ve|'m|'ll|'d)   A2 [^\r\n\p{L}\p{N}]?\p{L}+   A3 \p{N} (Llama-3: \p{N}{1,3})
//   A4 ` ?[^\s\p{L}\p{N}]+[\r\n]*`    A5 \s*[\r\n]+   A6 \s+(?!\S)   A7 \s+
// Every character is matched by some alternative, so pieces tile the text (behavior
// "Isolated" then yields exactly the matches). Backtracking outcomes, worked out:
//   A5 on a whitespace run ends right after the run's last CR/LF; A6 takes the whole run at
//   the end of the text, else the run minus its last character when that leaves >= 1;
//   A7 is then a single whitespace character before a non-space.
// Case-insensitive A1 also matches U+017F (long s, folds to s), as Oniguruma does.
import { LETTER_C, NEWLINE_C, NUMBER_C, OTHER, SPACE_C } from './char-classes.js';

/**
 * Writes the end offset (exclusive, in UTF-16 units of `s`) of every piece of s[start, end)
 * into `ends` and returns how many. `k[i - start]` is the class of the code point covering
 * unit i (both units of a surrogate pair carry it). `ends` must hold end - start entries.
 */
export function splitPieces(s: string, start: number, end: number, k: Uint8Array, maxDigits: number, ends: Int32Array): number {
  let n = 0;
  let i = start;
  const base = start;
  while (i < end) {
    const c = s.charCodeAt(i);
    const ki = k[i - base];
    let j: number;
    // A1: contractions (ASCII letters, any case; U+017F folds to s).
    if (c === 39 && i + 1 < end) {
      const c1 = s.charCodeAt(i + 1);
      const l1 = c1 | 32; // lower case for ASCII letters; no other unit maps onto one
      if (l1 === 115 || l1 === 116 || l1 === 109 || l1 === 100 || c1 === 0x17f) {
        ends[n++] = i + 2;
        i += 2;
        continue;
      }
      if (i + 2 < end) {
        const l2 = s.charCodeAt(i + 2) | 32;
        if (((l1 === 114 || l1 === 118) && l2 === 101) || (l1 === 108 && l2 === 108)) {
          ends[n++] = i + 3;
          i += 3;
          continue;
        }
      }
    }
    // A2: a letter run, optionally led by one character that is not CR/LF, letter or number.
    if (ki === LETTER_C) {
      j = i + 1;
      while (j < end && k[j - base] === LETTER_C) j++;
      ends[n++] = j;
      i = j;
      continue;
    }
    const w = c >= 0xd800 && c <= 0xdbff ? 2 : 1;
    if (ki !== NEWLINE_C && ki !== NUMBER_C && i + w < end && k[i + w - base] === LETTER_C) {
      j = i + w + 1;
      while (j < end && k[j - base] === LETTER_C) j++;
      ends[n++] = j;
      i = j;
      continue;
    }
    // A3: one number (up to maxDigits).
    if (ki === NUMBER_C) {
      j = i + w;
      for (let d = 1; d < maxDigits && j < end && k[j - base] === NUMBER_C; d++) {
        const cj = s.charCodeAt(j);
        j += cj >= 0xd800 && cj <= 0xdbff ? 2 : 1;
      }
      ends[n++] = j;
      i = j;
      continue;
    }
    // A4: optional space, a run of "other", then CR/LF.
    if (ki === OTHER || (c === 32 && i + 1 < end && k[i + 1 - base] === OTHER)) {
      j = ki === OTHER ? i + w : i + 1;
      while (j < end && k[j - base] === OTHER) j++;
      while (j < end && k[j - base] === NEWLINE_C) j++;
      ends[n++] = j;
      i = j;
      continue;
    }
    // A5-A7: whitespace (every whitespace code point is in the BMP).
    j = i;
    let lastNl = -1;
    while (j < end) {
      const kj = k[j - base];
      if (kj === NEWLINE_C) lastNl = j;
      else if (kj !== SPACE_C) break;
      j++;
    }
    if (lastNl >= 0) j = lastNl + 1;
    else if (j < end && j - i >= 2) j = j - 1;
    ends[n++] = j;
    i = j;
  }
  return n;
}

/** The pieces of a (well-formed) string, for tests and debugging; the encoder uses splitPieces. */
export function preTokenize(s: string, table: Uint8Array, maxDigits = 1): string[] {
  const k = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const cp = s.codePointAt(i)!;
    k[i] = table[cp] & 7;
    if (cp > 0xffff) k[++i] = table[cp] & 7;
  }
  const ends = new Int32Array(s.length);
  const n = splitPieces(s, 0, s.length, k, maxDigits, ends);
  const out: string[] = [];
  for (let p = 0, a = 0; p < n; a = ends[p++]) out.push(s.slice(a, ends[p]));
  return out;
}
