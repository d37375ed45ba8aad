// The in-process BPE encoder must give exactly the ids of HF tokenizers (the native engine, the
// code vLLM runs) on a seeded corpus of hostile text, for Qwen3 and for Llama-3-style variants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer } from '@anush008/tokenizers';
import { FastBpeTokenizer } from '../../src/tokenize/fast-bpe.js';
import { charClasses, NFC_RISK_BIT } from '../../src/tokenize/char-classes.js';
import { byteToUnicode } from '../../src/tokenize/bpe.js';
import { preTokenize } from '../../src/tokenize/pretokenize.js';
import { TokenizerRegistry } from '../../src/tokenize/index.js';
import { rng } from '../helpers/rng.js';
import { qwen3TokenizerJsonText } from '../helpers/qwen3-tokenizer.js';

const jsonText = qwen3TokenizerJsonText();
const qwen = JSON.parse(jsonText) as Record<string, unknown>;

const FRAGMENTS = [
  'the', ' cat', 'Hello', ' WORLD', 'x', ' ', '  ', '   ', '        ', '\t', '\n', '\n\n', '\r\n', ' \n', '\n ', '\u000b', '\f', '\u0085', '\u00a0', '\u2009', '\u3000', '\u2028', '\ufeff',
  "'s", "'S", "'t", "'re", "'RE", "'Ve", "'m", "'ll", "'LL", "'d", "'D", "'x", "'", "''", "\u2019s", "'\u017f", "'\u017fa", 'don\'t', "I'M", "we'Re", "they'll've",
  '0', '7', '12', '123', '4567', '3.14', '1,000', '\u0661\u0662', '\u00bd', '\u2460', '\u{1d7d8}', 'x1', '1x',
  '.', ',', '!', '?!', '...', '->', '=>', '{', '}', '()', '[]', '"', '#', '@', '$', '%', '^&*', '//', '/*', '*/', '<', '>', '</', '|', '~', '`', '\\', '_', '-', '--', '+',
  '世界', '東京タワー', '한국어', '中文，标点。', 'Ελληνικά', 'русский', 'العربية', 'עברית', 'हिन्दी', 'ไทย', 'ñ', 'ÆØÅ', 'ß', 'İ', 'ı',
  'e\u0301', 'a\u0308', '\u0301', '\u0301\u0301', 'A\u030a', '\u212b', '\u2126', '\u1100\u1161\u11a8', '\uac00', '\u0915\u093c', '\u0958', 'fi', '\ufb01',
  '😀', '👍🏽', '👨‍👩‍👧', '🇯🇵', '\u{1f600}a', 'a\u{1f600}', '\u{10400}', '\u{1d400}', '\u{20000}', '\u{e0001}', '\ufffd', '\ud800', '\udc00x',
  '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<|im_', 'start|>', '<think>', '</think>', '<tool_call>', '<|im_start|><|im_end|>', '<<|im_end|>>', '<|fim_prefix|>',
  'def f(x):\n    return x', 'for (let i = 0; i < n; i++) {', '    ', '\t\t', 'SELECT * FROM t;', '0x1F', 'snake_case', 'camelCase', 'https://example.com/a?b=c', 'aaaaaaaaaaaaaaaaaaaaaaaa',
];

function randomCodePoint(r: () => number): string {
  const ranges = [[0x20, 0x7e], [0xa0, 0x2ff], [0x300, 0x36f], [0x370, 0x1fff], [0x2000, 0x2bff], [0x3000, 0x9fff], [0xac00, 0xd7a3], [0xe000, 0xfffd], [0x10000, 0x1ffff], [0x20000, 0x323af], [0xe0000, 0xe01ef]];
  const [a, b] = ranges[Math.floor(r() * ranges.length)];
  const cp = a + Math.floor(r() * (b - a + 1));
  return String.fromCodePoint(cp);
}

function randomText(r: () => number): string {
  const parts = 1 + Math.floor(r() * 40);
  let s = '';
  for (let i = 0; i < parts; i++) {
    const x = r();
    if (x < 0.7) s += FRAGMENTS[Math.floor(r() * FRAGMENTS.length)];
    else if (x < 0.9) s += randomCodePoint(r);
    else if (x < 0.95) s += ' '.repeat(1 + Math.floor(r() * 70));
    else s += (r() < 0.5 ? 'ab' : 'Z9').repeat(10 + Math.floor(r() * 60)); // long pieces (heap merge path)
  }
  return s;
}

// Loading a tokenizer.json costs ~0.5 s per engine: the Qwen3 ones are loaded once for all tests.
let qwenEngines: { fast: FastBpeTokenizer; native: Tokenizer } | undefined;
function qwenPair(): { fast: FastBpeTokenizer; native: Tokenizer } {
  qwenEngines ??= { fast: load(qwen), native: Tokenizer.fromString(jsonText) };
  return qwenEngines;
}

function load(json: Record<string, unknown>): FastBpeTokenizer {
  const f = FastBpeTokenizer.fromJson(json);
  if (!(f instanceof FastBpeTokenizer)) throw new Error(f.unsupported);
  return f;
}

/** Differential run: every text either matches the native ids or is refused for an NFC-risk character. */
async function differential(json: Record<string, unknown>, seed: number, count: number): Promise<{ compared: number; refused: number }> {
  const { fast, native } = json === qwen ? qwenPair() : { fast: load(json), native: Tokenizer.fromString(JSON.stringify(json)) };
  const r = rng(seed);
  const texts: string[] = [];
  for (let i = 0; i < count; i++) texts.push(randomText(r));
  const encs = await native.encodeBatch(texts, { addSpecialTokens: false });
  let refused = 0;
  const table = charClasses();
  for (let i = 0; i < texts.length; i++) {
    const got = fast.encode(texts[i]);
    if (got === null) {
      refused++;
      assert.ok([...texts[i]].some((ch) => table[ch.codePointAt(0)!] & NFC_RISK_BIT), `refused without an NFC-risk character: ${JSON.stringify(texts[i])}`);
      continue;
    }
    assert.deepEqual(got, encs[i].getIds(), `text #${i}: ${JSON.stringify(texts[i])}`);
  }
  return { compared: texts.length - refused, refused };
}

test('Qwen3: identical ids to the native engine on 3,000 seeded hostile texts', async () => {
  const { compared, refused } = await differential(qwen, 1, 3000);
  assert.ok(compared > 2850, `compared ${compared}, refused ${refused}`);
});

test('pre-tokenizer pieces equal the native Split regex (Oniguruma) on 2,000 seeded texts', () => {
  const native = qwenPair().native.getPreTokenizer()!;
  const byteChars = byteToUnicode();
  const toByteLevel = (piece: string) => [...Buffer.from(piece, 'utf8')].map((b) => byteChars[b]).join('');
  const table = charClasses();
  const r = rng(4);
  for (let i = 0; i < 2000; i++) {
    // Well-formed text: N-API turns lone surrogates into U+FFFD before Rust sees them.
    const text = randomText(r).replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
    const want = native.preTokenizeString(text).map(([p]) => p);
    assert.deepEqual(preTokenize(text, table).map(toByteLevel), want, JSON.stringify(text));
  }
  // Case-folded contractions: U+017F (long s) folds to s in Oniguruma.
  for (const t of ["x'\u017fa", "x'S", "x'Re", "x'lL", "x'vE", "x'\u017f\u017f"]) assert.deepEqual(preTokenize(t, table).map(toByteLevel), native.preTokenizeString(t).map(([p]) => p), t);
});

test('Llama-3 style (\\p{N}{1,3}, ignore_merges, no normalizer, a normalized added token): identical ids', async () => {
  const model = qwen.model as Record<string, unknown>;
  const pre = qwen.pre_tokenizer as { pretokenizers: Record<string, unknown>[] };
  const llama3Regex = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const variant = {
    ...qwen,
    normalizer: null,
    pre_tokenizer: { ...pre, pretokenizers: [{ ...pre.pretokenizers[0], pattern: { Regex: llama3Regex } }, pre.pretokenizers[1]] },
    model: { ...model, ignore_merges: true },
  };
  await differential(variant, 2, 1000);
  // NFC with a normalized added token whose content is not NFC (U+2126 OHM becomes U+03A9).
  const added = [...(qwen.added_tokens as object[]), { id: 151669, content: '\u2126mega', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false }];
  const withNormalized = { ...qwen, added_tokens: added };
  const fast = load(withNormalized);
  const native = Tokenizer.fromString(JSON.stringify(withNormalized));
  for (const t of ['\u2126mega', 'x \u03a9mega y', 'a\u2126megab<|im_end|>\u2126meg', '\u2126\u2126mega']) {
    const want = (await native.encode(t, null, { addSpecialTokens: false })).getIds();
    assert.deepEqual(fast.encode(t), want, JSON.stringify(t));
  }
  assert.ok(fast.encode('\u03a9mega')!.includes(151669));
});

test('Qwen3: long inputs (multi-KB whitespace, one 20 KB word, dense digits) match the native engine', async () => {
  const { fast, native } = qwenPair();
  const r = rng(3);
  let word = '';
  for (let i = 0; i < 20000; i++) word += String.fromCharCode(97 + Math.floor(r() * 26));
  const texts = [' '.repeat(5000) + 'x', '\n'.repeat(3000), 'a' + ' \t'.repeat(2000) + '\n', word, '9'.repeat(5000), 'é'.repeat(3000), '😀'.repeat(2000), 'ab'.repeat(10000)];
  const encs = await native.encodeBatch(texts, { addSpecialTokens: false });
  texts.forEach((t, i) => assert.deepEqual(fast.encode(t, Infinity), encs[i].getIds(), `long text #${i}`));
  // With the default work budget, huge unbroken pieces are refused (the caller uses the native
  // engine off the event loop) while ordinary text of the same length is not.
  assert.equal(fast.encode(word), null);
  assert.equal(fast.encode(' '.repeat(20000)), null);
  assert.notEqual(fast.encode('a few words, '.repeat(1500)), null);
});

test('unsupported pipelines are refused with a reason (the native engine handles them)', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...qwen, normalizer: { type: 'NFKC' } }, /normalizer/],
    [{ ...qwen, pre_tokenizer: { type: 'Metaspace', replacement: '\u2581' } }, /pre-tokenizer/],
    [{ ...qwen, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, use_regex: true } }, /pre-tokenizer/],
    [{ ...qwen, model: { ...(qwen.model as object), dropout: 0.1 } }, /dropout/],
    [{ ...qwen, model: { ...(qwen.model as object), type: 'Unigram' } }, /model/],
    [{ ...qwen, post_processor: { type: 'RobertaProcessing' } }, /post-processor/],
    [{ ...qwen, added_tokens: [{ id: 1, content: 'x', lstrip: true, rstrip: false, single_word: false, normalized: false }] }, /lstrip/],
  ];
  for (const [json, reason] of cases) {
    const f = FastBpeTokenizer.fromJson(json);
    assert.ok(!(f instanceof FastBpeTokenizer));
    assert.match(f.unsupported, reason);
  }
});

test('generated character classes agree with the native regex on every BMP code point', () => {
  // Guards unicode-tables.ts against a native engine upgrade (regenerate with gen-unicode-tables.ts).
  const native = qwenPair().native.getPreTokenizer()!;
  const pieces = (s: string) => native.preTokenizeString(s).length;
  const table = charClasses();
  const bad: string[] = [];
  for (let cp = 0; cp < 0x10000 && bad.length < 5; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const c = String.fromCharCode(cp);
    const want = cp === 10 || cp === 13 ? 4 : pieces('a' + c) === 1 ? 1 : pieces(c + 'a') === 2 ? 2 : pieces('!' + c) === 2 ? 3 : 0;
    if ((table[cp] & 7) !== want) bad.push(`U+${cp.toString(16)}: table ${table[cp] & 7}, native ${want}`);
  }
  assert.deepEqual(bad, []);
});

test('through the registry: chunked + cached in-process ids equal the native engine on whole texts, incl. fallbacks', async () => {
  const MODEL = 'Qwen/Qwen3-0.6B';
  const native = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent', engine: 'native', prefixCache: { enabled: false, split: false } });
  const fast = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent', prefixCache: { chunkChars: 64, minChars: 64 } });
  const whole = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent', prefixCache: { enabled: false, split: false } });
  assert.equal((await fast.get(MODEL)).engineName, 'fast-bpe');
  const r = rng(6);
  const texts: string[] = [];
  for (let i = 0; i < 200; i++) texts.push(randomText(r) + randomText(r) + randomText(r));
  // Fallbacks: a character only the native normalizer handles (U+1ABF, an NFC-risk mark), and a
  // 40 KB unbroken word (beyond the synchronous limit: the native engine encodes it off-thread).
  texts.push('e\u1abf\u0301 then some words ' + 'x '.repeat(100), 'q'.repeat(40_000), 'lead ' + 'k'.repeat(40_000) + ' tail');
  for (const [i, t] of texts.entries()) {
    const want = await native.encodeCompletion(MODEL, t, true);
    assert.deepEqual(await fast.encodeCompletion(MODEL, t, true), want, `chunked #${i}: ${JSON.stringify(t.slice(0, 120))}`);
    assert.deepEqual(await whole.encodeCompletion(MODEL, t, true), want, `whole #${i}: ${JSON.stringify(t.slice(0, 120))}`);
  }
  await Promise.all([native.close(), fast.close(), whole.close()]);
});

test('pre-tokenizer: worked examples of the regex backtracking rules (as the native engine splits them)', () => {
  const t = charClasses();
  const cases: [string, string[], number?][] = [
    ["Hello  world's", ['Hello', ' ', ' world', "'s"]],
    ["'sa 'Re 'x", ["'s", 'a', " '", 'Re', " '", 'x']],
    ['x  \n  y', ['x', '  \n', ' ', ' y']],
    ['a \t!b', ['a', ' ', '\t', '!b']],
    ['a\t\t', ['a', '\t\t']],
    ['(hello) !!x', ['(hello', ')', ' !!', 'x']],
    ['1234 x', ['1', '2', '3', '4', ' x']],
    ['1234 x', ['123', '4', ' x'], 3],
    ['end.\r\n\r\nNext', ['end', '.\r\n\r\n', 'Next']],
    ['😀a b😀', ['😀a', ' b', '😀']],
  ];
  for (const [text, want, digits] of cases) assert.deepEqual(preTokenize(text, t, digits ?? 1), want, JSON.stringify(text));
});
