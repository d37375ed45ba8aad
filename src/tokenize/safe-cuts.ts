// Where a text can be cut so that tokenizing the pieces separately and concatenating the
// ids gives exactly the ids of the whole text. This is what makes the prefix token cache
// exact, and it only holds for tokenizers whose pipeline we have checked (see below).
//
// Pipeline of the supported family (GPT-2 / Llama-3 / Qwen2-3 byte-level BPE):
//   added-token split -> NFC (or none) -> regex Split (Isolated) -> ByteLevel -> BPE per piece.
// BPE never crosses a regex piece, so the ids of a text are the concatenation of the ids of
// its pieces. A cut c is exact when (a) c is a piece boundary of the whole text, (b) the
// regex never reads past c while matching the pieces before it, (c) matching from c does
// not depend on the text before it (none of the regexes has a look-behind or an anchor),
// (d) NFC does not compose across c, and (e) no added token straddles c.
//
// Two cut rules satisfy all of that for every supported regex:
//   rule 1: text[c] == ' ' and text[c-1] is printable ASCII (not a space). The piece holding
//     text[c-1] is a letter run, a digit, a punctuation run or a contraction; none of these
//     can absorb a following space (only a *leading* optional char exists), and each stops
//     at the space, so no match before c reads beyond text[c].
//   rule 2 (Qwen2 / Llama-3 regexes only): text[c-1] == '\n' and text[c] is an ASCII letter.
//     The whitespace run ends at c; `\s*[\r\n]+` (tried before `\s+(?!\S)`) and the
//     punctuation alternative's `[\r\n]*` both end a piece exactly at c, in the whole text and
//     in the chunk alike, and a letter piece cannot start with '\n' (`[^\r\n\p{L}\p{N}]?`).
//     Not for GPT-2's regex: there " \nX" splits as " ", "\n" but a chunk ending in " \n"
//     keeps it whole (`\s+(?!\S)` succeeds at end of text).
// Both text[c-1] and text[c] are ASCII starters, so NFC is concatenation-safe at c, and
// (e) holds because we refuse tokenizers with an added token containing ' ' or '\n'.

const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const KNOWN_SPLITS = new Set([QWEN2_SPLIT, LLAMA3_SPLIT]);

type Json = Record<string, unknown> | null | undefined;

const isByteLevel = (p: Json, useRegex: boolean): boolean =>
  !!p && p.type === 'ByteLevel' && p.add_prefix_space === false && (p.use_regex ?? true) === useRegex;

/** Whether the exact-cut argument above applies to this tokenizer.json; if not, why. */
export type CutSafety = { ok: true; newlineRule: boolean } | { ok: false; reason: string };

export function cutSafety(tokenizerJson: Record<string, unknown>): CutSafety {
  const norm = tokenizerJson.normalizer as Json;
  if (norm && norm.type !== 'NFC') return { ok: false, reason: `normalizer ${String(norm.type)} is not NFC or none` };
  const pre = tokenizerJson.pre_tokenizer as Json;
  let preOk = false;
  let newlineRule = true;
  if (isByteLevel(pre, true)) {
    preOk = true; // GPT-2 regex built into ByteLevel
    newlineRule = false;
  }
  if (pre && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) && pre.pretokenizers.length === 2) {
    const [split, bl] = pre.pretokenizers as Record<string, unknown>[];
    const pattern = (split.pattern as Record<string, unknown> | undefined)?.Regex;
    preOk =
      split.type === 'Split' &&
      typeof pattern === 'string' &&
      KNOWN_SPLITS.has(pattern) &&
      split.behavior === 'Isolated' &&
      split.invert === false &&
      isByteLevel(bl, false);
  }
  if (!preOk) return { ok: false, reason: 'pre-tokenizer is not a known byte-level regex split' };
  const model = tokenizerJson.model as Json;
  if (!model || model.type !== 'BPE') return { ok: false, reason: 'model is not BPE' };
  if (model.dropout !== null && model.dropout !== undefined) return { ok: false, reason: 'BPE dropout is set' };
  for (const t of (tokenizerJson.added_tokens as Record<string, unknown>[] | undefined) ?? []) {
    const content = String(t.content);
    if (t.lstrip || t.rstrip || t.single_word) return { ok: false, reason: `added token ${JSON.stringify(content)} strips or is single-word` };
    if (content.includes(' ') || content.includes('\n')) return { ok: false, reason: `added token ${JSON.stringify(content)} contains a space or newline` };
  }
  return { ok: true, newlineRule };
}

/** True when `text` may be cut before index c (0 < c < text.length). */
export function isCut(text: string, c: number, newlineRule = true): boolean {
  const a = text.charCodeAt(c - 1);
  const b = text.charCodeAt(c);
  if (b === 32) return a > 32 && a < 127;
  if (newlineRule && a === 10) {
    const l = b | 32;
    return l >= 97 && l <= 122;
  }
  return false;
}

/**
 * Split text into chunks at exact cuts, each at least `minChars` long (except the last).
 * Boundaries depend only on the text from the previous boundary on, so two texts sharing a
 * prefix get the same chunks up to the last cut inside the shared part.
 */
export function chunkText(text: string, minChars: number, newlineRule = true): string[] {
  const out: string[] = [];
  let start = 0;
  const n = text.length;
  while (n - start > minChars) {
    let c = start + minChars;
    while (c < n && !isCut(text, c, newlineRule)) c++;
    if (c >= n) break;
    out.push(text.slice(start, c));
    start = c;
  }
  out.push(text.slice(start));
  return out;
}
