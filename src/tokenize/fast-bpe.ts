// The in-process tokenizer for byte-level BPE tokenizer.json files (Qwen2/Qwen3, Llama-3):
// HF tokenizers' pipeline re-done in TypeScript for speed (no libuv round trip, a word cache,
// integer merge table). It accepts only the pipelines it reproduces exactly (see `fromJson`);
// every other tokenizer, and any text holding a character whose NFC it cannot vouch for, is
// left to the native engine. Exactness is tested against the native engine (fast-bpe.test.ts).
import { AddedTokenMatcher, type AddedTokenMatch } from './added-tokens.js';
import { BpeModel } from './bpe.js';
import { CLASS_MASK, NFC_RISK_BIT, charClasses } from './char-classes.js';
import { splitPieces } from './pretokenize.js';
import { NFC_RISK_UNICODE } from './unicode-tables.js';

const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * Default bound on BPE work per encode call, in bytes of uncached pieces (~0.15-0.2 us each
 * on this machine): ~3 ms. Ordinary text costs little here once its words are cached; a text
 * of huge unbroken pieces (a 30 KB word, a long whitespace run) or of thousands of novel
 * words is left to the native engine off the event loop instead.
 */
export const DEFAULT_WORK_BUDGET = 16_000;

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);
const empty = (v: unknown) => v === null || v === undefined || v === '';

export class FastBpeTokenizer {
  private readonly classes = charClasses();
  private kinds = new Uint8Array(1024);
  private ends = new Int32Array(1024);
  private readonly match: AddedTokenMatch = { start: 0, end: 0, id: 0 };

  private constructor(
    private readonly model: BpeModel,
    private readonly nfc: boolean,
    private readonly maxDigits: number,
    private readonly rawAdded: AddedTokenMatcher,
    private readonly normalizedAdded: AddedTokenMatcher,
  ) {}

  /**
   * The tokenizer for a parsed tokenizer.json, or why it is not supported. Supported: normalizer
   * none or NFC; pre-tokenizer Sequence[Split(Qwen2 or Llama-3 regex, Isolated), ByteLevel
   * without prefix space or regex]; BPE without dropout, subword prefix or word suffix; added
   * tokens without lstrip/rstrip/single_word; a post-processor that only adds fixed tokens
   * (those are added by the caller from a probe of the native engine).
   */
  static fromJson(json: Json): FastBpeTokenizer | { unsupported: string } {
    const no = (unsupported: string) => ({ unsupported });
    const norm = obj(json.normalizer);
    if (json.normalizer !== null && json.normalizer !== undefined && norm?.type !== 'NFC') return no(`normalizer ${JSON.stringify(norm?.type ?? json.normalizer)}`);
    const nfc = norm?.type === 'NFC';
    if (nfc && process.versions.unicode !== NFC_RISK_UNICODE)
      return no(`NFC tables were built for Unicode ${NFC_RISK_UNICODE}, Node has ${process.versions.unicode} (regenerate with test/tokenize/gen-unicode-tables.ts)`);

    const pre = obj(json.pre_tokenizer);
    const steps = pre?.type === 'Sequence' && Array.isArray(pre.pretokenizers) ? (pre.pretokenizers as unknown[]).map(obj) : [];
    const [split, bl] = steps;
    const pattern = obj(split?.pattern)?.Regex;
    if (steps.length !== 2 || split?.type !== 'Split' || split.behavior !== 'Isolated' || split.invert !== false || (pattern !== QWEN2_SPLIT && pattern !== LLAMA3_SPLIT))
      return no('pre-tokenizer is not Sequence[Split(Qwen2/Llama-3 regex, Isolated), ByteLevel]');
    if (bl?.type !== 'ByteLevel' || bl.add_prefix_space !== false || bl.use_regex !== false) return no('ByteLevel pre-tokenizer adds a prefix space or its own regex');

    const model = obj(json.model);
    if (!model || model.type !== 'BPE') return no(`model ${JSON.stringify(model?.type)}`);
    if (!empty(model.dropout) && model.dropout !== 0) return no('BPE dropout');
    if (!empty(model.continuing_subword_prefix) || !empty(model.end_of_word_suffix)) return no('BPE subword prefix or word suffix');
    if (model.ignore_merges !== undefined && typeof model.ignore_merges !== 'boolean') return no('ignore_merges is not a boolean');

    const post = obj(json.post_processor);
    const fixedAffixes = (p: Json | undefined): boolean =>
      !p || p.type === 'ByteLevel' || p.type === 'TemplateProcessing' || (p.type === 'Sequence' && Array.isArray(p.processors) && (p.processors as unknown[]).every((x) => fixedAffixes(obj(x))));
    if (json.post_processor !== null && json.post_processor !== undefined && !fixedAffixes(post)) return no(`post-processor ${JSON.stringify(post?.type)}`);

    const raw: { content: string; id: number }[] = [];
    const normalized: { content: string; id: number }[] = [];
    for (const t of (json.added_tokens as Json[] | undefined) ?? []) {
      if (t.lstrip || t.rstrip || t.single_word) return no(`added token ${JSON.stringify(t.content)} uses lstrip/rstrip/single_word`);
      if (typeof t.content !== 'string' || typeof t.id !== 'number') return no('malformed added token');
      // HF matches normalized tokens in normalized text, by their normalized content.
      if (t.normalized) normalized.push({ content: nfc ? t.content.normalize('NFC') : t.content, id: t.id });
      else raw.push({ content: t.content, id: t.id });
    }

    const vocabJson = obj(model.vocab);
    if (!vocabJson || !Array.isArray(model.merges)) return no('BPE without vocab or merges');
    const vocab = new Map<string, number>();
    for (const k in vocabJson) vocab.set(k, vocabJson[k] as number);
    const merges: [string, string][] = [];
    for (const m of model.merges as unknown[]) {
      if (typeof m === 'string') {
        const parts = m.split(' ');
        if (parts.length !== 2) return no(`merge ${JSON.stringify(m)} is not two tokens`);
        merges.push([parts[0], parts[1]]);
      } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') merges.push([m[0], m[1]]);
      else return no('malformed merge');
    }
    let bpe: BpeModel;
    try {
      bpe = new BpeModel(vocab, merges, model.ignore_merges === true);
    } catch (e) {
      return no((e as Error).message);
    }
    return new FastBpeTokenizer(bpe, nfc, pattern === LLAMA3_SPLIT ? 3 : 1, new AddedTokenMatcher(raw), new AddedTokenMatcher(normalized));
  }

  /**
   * Ids of `text` without post-processor tokens (add_special_tokens=false), or null when the
   * text holds a character whose normalization only the native engine knows, or when its
   * uncached BPE work would exceed `budget` (see DEFAULT_WORK_BUDGET).
   */
  encode(text: string, budget = DEFAULT_WORK_BUDGET): number[] | null {
    let high = false;
    let surrogate = false;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x300) {
        high = true;
        if (c >= 0xd800 && c <= 0xdfff) surrogate = true;
      }
    }
    // N-API hands lone surrogates to Rust as U+FFFD.
    if (surrogate) text = wellFormed(text);
    if (high && this.nfc && this.hasNfcRisk(text)) return null;
    const out: number[] = [];
    const m = this.match;
    this.model.work = 0;
    this.model.limit = budget;
    let pos = 0;
    while (this.rawAdded.next(text, pos, text.length, m)) {
      if (m.start > pos && !this.encodeSegment(text, pos, m.start, high, out)) return null;
      out.push(m.id);
      pos = m.end;
    }
    if (pos < text.length && !this.encodeSegment(text, pos, text.length, high, out)) return null;
    return out;
  }

  /** BPE work of the last encode call, in bytes of uncached pieces (what `budget` bounds). */
  get work(): number {
    return this.model.work;
  }

  /** Forget cached piece encodings (benchmarks measure the cold case with it). */
  clearWordCache(): void {
    this.model.clearCache();
  }

  private hasNfcRisk(text: string): boolean {
    const t = this.classes;
    for (let i = 0; i < text.length; i++) {
      let c = text.charCodeAt(i);
      if (c < 0x300) continue;
      if (c >= 0xd800 && c <= 0xdbff) c = 0x10000 + ((c - 0xd800) << 10) + (text.charCodeAt(++i) - 0xdc00);
      if (t[c] & NFC_RISK_BIT) return true;
    }
    return false;
  }

  /** Normalize a segment between raw added tokens, then split out normalized added tokens. False: over budget. */
  private encodeSegment(text: string, start: number, end: number, high: boolean, out: number[]): boolean {
    let s = text;
    if (high && this.nfc) {
      s = text.slice(start, end).normalize('NFC');
      start = 0;
      end = s.length;
    }
    if (this.normalizedAdded.size === 0) return this.encodeNormalized(s, start, end, out);
    const m: AddedTokenMatch = { start: 0, end: 0, id: 0 };
    let pos = start;
    while (this.normalizedAdded.next(s, pos, end, m)) {
      if (m.start > pos && !this.encodeNormalized(s, pos, m.start, out)) return false;
      out.push(m.id);
      pos = m.end;
    }
    return pos >= end || this.encodeNormalized(s, pos, end, out);
  }

  /** Pre-tokenize s[start, end) and BPE each piece. False: over budget. */
  private encodeNormalized(s: string, start: number, end: number, out: number[]): boolean {
    const len = end - start;
    if (this.kinds.length < len) {
      this.kinds = new Uint8Array(len * 2);
      this.ends = new Int32Array(len * 2);
    }
    const k = this.kinds;
    const t = this.classes;
    for (let i = start; i < end; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff) {
        const cls = t[0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(i + 1) - 0xdc00)] & CLASS_MASK;
        k[i - start] = cls;
        k[i + 1 - start] = cls;
        i++;
      } else k[i - start] = t[c] & CLASS_MASK;
    }
    const ends = this.ends;
    const n = splitPieces(s, start, end, k, this.maxDigits, ends);
    const model = this.model;
    let a = start;
    for (let p = 0; p < n; p++) {
      const b = ends[p];
      const c = s.charCodeAt(a);
      if (b - a === 1 && c < 0x80) out.push(model.byteId(c));
      else if (!model.encodePiece(s, a, b, out)) return false;
      a = b;
    }
    return true;
  }
}

/** Lone surrogates replaced by U+FFFD (what Rust receives through N-API). */
function wellFormed(s: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    }
    out += s.slice(from, i) + '\ufffd';
    from = i + 1;
  }
  return from === 0 ? s : out + s.slice(from);
}
