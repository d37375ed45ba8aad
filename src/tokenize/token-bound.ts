// A provable lower bound on how many tokens a text becomes, computed from the text's characters
// without tokenizing, so a prompt that cannot fit the model's context is refused before any
// tokenizer work (vLLM would refuse it too, after tokenizing it).
//
// For byte-level BPE (the family safe-cuts.ts checks) every token is a string of UTF-8 bytes of
// the normalized text (an added token: its content's bytes), so for any property P counted per
// token, tokens >= P(text) / max over the vocabulary of P(token). Three properties:
//   bytes          tokens >= bytes / (longest token in bytes)             (128 for Qwen3)
//   non-ASCII      tokens >= non-ASCII bytes / (most non-ASCII bytes in a token) (48 for Qwen3)
//   ideographs     tokens >= CJK ideographs / (most ideograph lead bytes in a token, +1 when it
//                  starts inside a character)                             (11 for Qwen3)
// With an NFC normalizer the normalized text can be shorter: NFC composes at most
// MAX_CANONICAL_DECOMPOSITION code points into one, so bytes >= code points / 4; non-ASCII
// bytes >= 2 x (non-ASCII code points whose decomposition is not all ASCII) / 4; CJK
// ideographs never decompose and are in no multi-character decomposition, so NFC keeps each. Those Unicode facts are checked
// over every code point in test/tokenize/token-bound.test.ts.
import { byteToUnicode } from './bpe.js';

/** Most code points in any character's full canonical decomposition (Unicode 17: 4, e.g. U+1F82). */
export const MAX_CANONICAL_DECOMPOSITION = 4;
/** Non-ASCII characters whose canonical decomposition is all ASCII (U+037E ';', U+1FEF '`', U+212A 'K'). */
export const ASCII_DECOMPOSING = new Set([0x37e, 0x1fef, 0x212a]);

/** Per-tokenizer maxima of the counted properties. */
export interface TokenBound {
  nfc: boolean;
  maxBytes: number;
  maxNonAsciiBytes: number;
  maxIdeographs: number;
}

/** CJK Unified Ideographs (and Extension A) in the BMP; their UTF-8 lead bytes are 0xE3..0xE9. */
function isIdeograph(c: number): boolean {
  return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf);
}

/** Counts of one token's bytes (sound over-counts for ideographs: see the header). */
function countBytes(bytes: ArrayLike<number>, into: { bytes: number; nonAscii: number; ideographs: number }): void {
  let nonAscii = 0;
  let ideographs = bytes.length > 0 && (bytes[0] & 0xc0) === 0x80 ? 1 : 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b >= 0x80) nonAscii++;
    if (b >= 0xe3 && b <= 0xe9) ideographs++;
  }
  if (bytes.length > into.bytes) into.bytes = bytes.length;
  if (nonAscii > into.nonAscii) into.nonAscii = nonAscii;
  if (ideographs > into.ideographs) into.ideographs = ideographs;
}

/**
 * The bound's maxima for a byte-level BPE tokenizer.json (vocabulary in GPT-2's byte alphabet),
 * or undefined when the vocabulary is not byte-level (no bound: only the character cap applies).
 */
export function tokenBoundOf(json: Record<string, unknown>): TokenBound | undefined {
  const model = json.model as Record<string, unknown> | undefined;
  const vocab = model?.vocab as Record<string, unknown> | undefined;
  if (!model || model.type !== 'BPE' || !vocab || typeof vocab !== 'object') return undefined;
  const byteOf = new Map<number, number>();
  byteToUnicode().forEach((ch, b) => byteOf.set(ch.charCodeAt(0), b));
  const max = { bytes: 1, nonAscii: 1, ideographs: 1 };
  const buf: number[] = [];
  for (const token in vocab) {
    buf.length = 0;
    for (let i = 0; i < token.length; i++) {
      const b = byteOf.get(token.charCodeAt(i));
      if (b === undefined) return undefined; // not a byte-level vocabulary
      buf.push(b);
    }
    countBytes(buf, max);
  }
  for (const t of (json.added_tokens as { content?: unknown }[] | undefined) ?? []) {
    if (typeof t.content === 'string') countBytes(Buffer.from(t.content, 'utf8'), max);
  }
  const norm = json.normalizer as Record<string, unknown> | null | undefined;
  return { nfc: norm?.type === 'NFC', maxBytes: max.bytes, maxNonAsciiBytes: max.nonAscii, maxIdeographs: max.ideographs };
}

/** Characters examined between checks of the caller's deadline (~1 ms of work). */
export const BOUND_SLICE = 1 << 18;

/** Running counts of a text, fed in slices. */
export class TokenLowerBound {
  private bytes = 0;
  private codePoints = 0;
  private nonAscii = 0;
  private nonAsciiCp = 0;
  private ideographs = 0;

  constructor(private readonly b: TokenBound) {}

  /** Adds text[start, end); `end` must not split a surrogate pair (see sliceEnd). */
  add(text: string, start: number, end: number): void {
    let bytes = 0;
    let cps = 0;
    let nonAscii = 0;
    let nonAsciiCp = 0;
    let ideographs = 0;
    for (let i = start; i < end; i++) {
      const c = text.charCodeAt(i);
      cps++;
      if (c < 0x80) {
        bytes++;
        continue;
      }
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < end) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          // An astral character: 4 bytes (no astral character decomposes to ASCII).
          i++;
          bytes += 4;
          nonAscii += 4;
          nonAsciiCp++;
          continue;
        }
      }
      // BMP (a lone surrogate becomes U+FFFD, 3 bytes, like this).
      const n = c < 0x800 ? 2 : 3;
      bytes += n;
      nonAscii += n;
      if (!ASCII_DECOMPOSING.has(c)) nonAsciiCp++;
      if (isIdeograph(c)) ideographs++;
    }
    this.bytes += bytes;
    this.codePoints += cps;
    this.nonAscii += nonAscii;
    this.nonAsciiCp += nonAsciiCp;
    this.ideographs += ideographs;
  }

  /** The least number of tokens the text added so far can become (without special tokens). */
  value(): number {
    const b = this.b;
    const D = MAX_CANONICAL_DECOMPOSITION;
    const bytes = b.nfc ? this.codePoints / D : this.bytes;
    const nonAscii = b.nfc ? (2 * this.nonAsciiCp) / D : this.nonAscii;
    return Math.max(Math.ceil(bytes / b.maxBytes), Math.ceil(nonAscii / b.maxNonAsciiBytes), Math.ceil(this.ideographs / b.maxIdeographs));
  }
}

/** The end of a slice from `start`: about BOUND_SLICE units, never between a surrogate pair's halves. */
export function sliceEnd(text: string, start: number): number {
  let end = Math.min(text.length, start + BOUND_SLICE);
  if (end < text.length) {
    const c = text.charCodeAt(end - 1);
    if (c >= 0xd800 && c <= 0xdbff) end++;
  }
  return end;
}
