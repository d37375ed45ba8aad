// The token lower bound (src/tokenize/token-bound.ts) and abandonable encoding: the Unicode
// facts the bound relies on, checked over every code point; the bound never exceeds the real
// token count (the native HF engine counts); a text over the cap is refused before any chunk is
// encoded; an aborted signal stops both engines between chunks; a request waiting on a chunk
// that an abandoned request was encoding gets it anyway.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenizerRegistry } from '../../src/tokenize/index.js';
import { ASCII_DECOMPOSING, MAX_CANONICAL_DECOMPOSITION, TokenLowerBound, sliceEnd } from '../../src/tokenize/token-bound.js';
import { ContextLengthError, TokenizeAbortedError } from '../../src/tokenize/types.js';
import { rng } from '../helpers/rng.js';

const MODEL = 'Qwen/Qwen3-0.6B';

const isIdeograph = (c: number) => (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf);

test('Unicode facts of the bound hold for every code point (Node ICU; HF tokenizers has a subset of these characters)', () => {
  let maxLen = 0;
  const asciiOnly: number[] = [];
  const inDecompositions = new Set<number>();
  for (let c = 0x80; c <= 0x10ffff; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    const s = String.fromCodePoint(c);
    const d = [...s.normalize('NFD')].map((x) => x.codePointAt(0)!);
    maxLen = Math.max(maxLen, d.length);
    if (d.length === 1 && d[0] === c) continue;
    if (d.every((x) => x < 0x80)) asciiOnly.push(c);
    // Singletons (CJK compatibility ideographs -> unified ones) compose nothing; only pairs can merge neighbours.
    if (d.length >= 2) for (const x of d) inDecompositions.add(x);
  }
  assert.ok(maxLen <= MAX_CANONICAL_DECOMPOSITION, `a decomposition has ${maxLen} code points`);
  assert.deepEqual(asciiOnly, [...ASCII_DECOMPOSING].sort((a, b) => a - b));
  for (let c = 0x3400; c <= 0x9fff; c++) {
    if (!isIdeograph(c)) continue;
    const s = String.fromCharCode(c);
    assert.ok(s.normalize('NFD') === s && s.normalize('NFC') === s && !inDecompositions.has(c), `U+${c.toString(16)} is not inert under NFC`);
  }
});

/** Hostile and ordinary texts for the soundness check: long tokens, NFC compositions, CJK, emoji, lone surrogates. */
function samples(): string[] {
  const r = rng(7);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const atoms = [
    ' '.repeat(200),
    '—'.repeat(40),
    '='.repeat(90),
    'the quick brown fox ',
    '\u1100\u1161\u11a8', // Hangul jamo L V T: NFC makes one syllable
    'e\u0301',
    '\u03b1\u0313\u0300\u0345', // NFC: U+1F82
    '\u212a'.repeat(30), // Kelvin sign: NFC makes ASCII K
    '中文分词测试',
    '一二三四五六七八九十',
    '😀🎉',
    '\ud800',
    '<|im_start|>',
    '\n\n\n',
    '1234567890',
  ];
  const out: string[] = [...atoms, atoms.join('')];
  for (let i = 0; i < 200; i++) {
    let s = '';
    const n = 1 + Math.floor(r() * 40);
    for (let k = 0; k < n; k++) s += pick(atoms).repeat(1 + Math.floor(r() * 5));
    out.push(s);
  }
  return out;
}

test('the lower bound never exceeds the real token count (native engine), for Qwen3', async () => {
  const reg = await TokenizerRegistry.create({ engine: 'native' });
  const mt = await reg.get(MODEL);
  assert.ok(mt.bound);
  // The maxima stated in token-bound.ts's header.
  assert.equal(mt.bound.maxBytes, 128);
  assert.equal(mt.bound.maxNonAsciiBytes, 48);
  assert.ok(mt.bound.nfc);
  let tight = 0;
  for (const text of samples()) {
    const lb = new TokenLowerBound(mt.bound);
    for (let start = 0; start < text.length; ) {
      const end = sliceEnd(text, start);
      lb.add(text, start, end);
      start = end;
    }
    const real = (await mt.engine.encode(text, false)).length;
    assert.ok(lb.value() <= real, `bound ${lb.value()} > ${real} tokens for ${JSON.stringify(text.slice(0, 60))}`);
    if (lb.value() * 2 >= real) tight++;
  }
  assert.ok(tight > 0, 'the bound is not vacuous');
  await reg.close();
});

test('a text provably over the cap is refused before any chunk is encoded; at the real count it is not refused', async () => {
  const reg = await TokenizerRegistry.create({});
  const mt = await reg.get(MODEL);
  const cjk = Array.from({ length: 300_000 }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919) % 20_000))).join('');
  const before = mt.chunksEncoded;
  await assert.rejects(mt.encodeIds(cjk, false, undefined, { maxTokens: 4096 }), (e: unknown) => e instanceof ContextLengthError && e.atLeast > 4096);
  assert.equal(mt.chunksEncoded, before);
  const text = 'Summarise the report. '.repeat(2000) + '中文分词测试'.repeat(500);
  const ids = await mt.encodeIds(text, false);
  const again = await mt.encodeIds(text, false, undefined, { maxTokens: ids.length });
  assert.deepEqual(again, ids);
  await reg.close();
});

function novel(chars: number, seed: number): string {
  const r = rng(seed);
  let s = '';
  while (s.length < chars) {
    const len = 3 + Math.floor(r() * 8);
    for (let i = 0; i < len; i++) s += String.fromCharCode(97 + Math.floor(r() * 26));
    s += ' ';
  }
  return s.slice(0, chars);
}

for (const engine of ['auto', 'native'] as const) {
  test(`an aborted signal stops the ${engine} engine between chunks, and no work starts for an aborted request`, async () => {
    const reg = await TokenizerRegistry.create({ engine });
    const mt = await reg.get(MODEL);
    const text = novel(3_000_000, engine === 'auto' ? 11 : 12);
    const total = Math.ceil(text.length / 1024);
    const done = new AbortController();
    done.abort();
    const before = mt.chunksEncoded;
    await assert.rejects(mt.encodeIds(text, false, undefined, { signal: done.signal }), TokenizeAbortedError);
    assert.equal(mt.chunksEncoded, before, 'nothing encoded for an already aborted request');

    const ac = new AbortController();
    const p = mt.encodeIds(text, false, undefined, { signal: ac.signal });
    while (mt.chunksEncoded === before) await new Promise((r) => setImmediate(r));
    ac.abort();
    const atAbort = mt.chunksEncoded;
    await assert.rejects(p, TokenizeAbortedError);
    // At most the group or slice in progress finishes (native: <= 64 KiB of chunks).
    assert.ok(mt.chunksEncoded - atAbort <= 80, `${mt.chunksEncoded - atAbort} chunks after the abort`);
    assert.ok(mt.chunksEncoded - before < total / 2, `${mt.chunksEncoded - before} of ${total} chunks`);
    await reg.close();
  });
}

test('a request waiting on chunks that an abandoned request was encoding encodes them itself', async () => {
  const reg = await TokenizerRegistry.create({});
  const mt = await reg.get(MODEL);
  const text = novel(400_000, 21);
  const ac = new AbortController();
  const a = mt.encodeIds(text, false, undefined, { signal: ac.signal });
  await new Promise((r) => setImmediate(r)); // a has registered its chunks as in flight
  const b = mt.encodeIds(text, false);
  ac.abort();
  await assert.rejects(a, TokenizeAbortedError);
  const ids = await b;
  assert.deepEqual(Array.from(ids), await mt.engine.encode(text, false));
  await reg.close();
});
