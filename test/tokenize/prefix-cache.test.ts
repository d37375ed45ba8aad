// The prefix token cache must always give the ids of a full tokenization.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunkText, cutSafety, isCut } from '../../src/tokenize/safe-cuts.js';
import { ChunkTokenCache } from '../../src/tokenize/prefix-cache.js';
import { TokenizerRegistry } from '../../src/tokenize/index.js';
import { QWEN3_DIR, qwen3TokenizerJsonText } from '../helpers/qwen3-tokenizer.js';

const MODEL = 'Qwen/Qwen3-0.6B';
const qwenJson = JSON.parse(qwen3TokenizerJsonText()) as Record<string, unknown>;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}
const POOL = ['the', ' cat', 'Hello', ' WORLD', "'s", "'LL", '12', '3456', ' ', '  ', '   ', '\n', '\n\n', '\t', ' \n', '\r\n', '.', ',', '!?', '...', '->', '{', '}', '"', "'",
  '世界', '東京', '한국', 'ñ', 'e\u0301', '\u0301', '😀', '👍🏽', '\u00a0', '\u3000', '\u0085', '<|im_start|>', '<|im_end|>', '<|im_', 'start|>', '<think>', '</think>',
  '<|endoftext|>', 'def ', 'return', '    ', 'x_1', 'ÆØÅ', 'a', 'b', 'Z'];
function randomText(r: () => number, pieces: number): string {
  let s = '';
  for (let i = 0; i < pieces; i++) s += POOL[Math.floor(r() * POOL.length)];
  return s;
}

test('cut rules: printable ASCII then space, or newline then ASCII letter', () => {
  assert.ok(isCut('ab cd', 2));
  assert.ok(isCut('a. b', 2));
  assert.ok(isCut('x\nyz', 2));
  assert.ok(!isCut('a  b', 2), 'space after space');
  assert.ok(!isCut('é b', 1), 'non-ASCII before space');
  assert.ok(!isCut('\n1', 1), 'newline then digit');
  assert.ok(!isCut('\n\u00e9', 1));
  assert.ok(!isCut('ab', 1));
  assert.ok(!isCut('x\nyz', 2, false), 'newline rule off (GPT-2 regex)');
});

test('chunkText: chunks concatenate to the text, respect the minimum, and end at cuts', () => {
  const r = rng(1);
  for (let k = 0; k < 200; k++) {
    const t = randomText(r, 20 + Math.floor(r() * 400));
    const chunks = chunkText(t, 32);
    assert.equal(chunks.join(''), t);
    let pos = 0;
    for (let i = 0; i < chunks.length - 1; i++) {
      assert.ok(chunks[i].length >= 32);
      pos += chunks[i].length;
      assert.ok(isCut(t, pos), `cut at ${pos}`);
    }
  }
});

test('chunkText: texts sharing a prefix share every chunk that ends inside it', () => {
  const r = rng(2);
  for (let k = 0; k < 100; k++) {
    const prefix = randomText(r, 300);
    const a = chunkText(prefix + randomText(r, 50), 40);
    const b = chunkText(prefix + randomText(r, 50), 40);
    let end = 0;
    for (let i = 0; i < a.length - 1 && end + a[i].length < prefix.length; i++) {
      assert.equal(a[i], b[i]);
      end += a[i].length;
    }
  }
});

test('cutSafety accepts Qwen3 and refuses pipelines the exactness argument does not cover', () => {
  assert.deepEqual(cutSafety(qwenJson), { ok: true, newlineRule: true });
  assert.deepEqual(cutSafety({ ...qwenJson, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true } }), { ok: true, newlineRule: false });
  const metaspace = { ...qwenJson, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false } };
  assert.equal(cutSafety(metaspace).ok, false);
  const lower = { ...qwenJson, normalizer: { type: 'Lowercase' } };
  assert.equal(cutSafety(lower).ok, false);
  const spaced = { ...qwenJson, added_tokens: [...(qwenJson.added_tokens as object[]), { id: 999999, content: 'a b', lstrip: false, rstrip: false, single_word: false, normalized: false, special: false }] };
  assert.match((cutSafety(spaced) as { reason: string }).reason, /space/);
  const stripping = { ...qwenJson, added_tokens: [{ id: 1, content: '<mask>', lstrip: true, rstrip: false, single_word: false, normalized: false, special: true }] };
  assert.equal(cutSafety(stripping).ok, false);
});

test('cached ids equal a full tokenization on many prompts sharing prefixes, cut anywhere', async () => {
  // The reference is the native engine on the whole text; the cache runs the in-process encoder.
  const full = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent', engine: 'native', prefixCache: { enabled: false, split: false } });
  const cached = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent', prefixCache: { chunkChars: 64, minChars: 64, maxTokens: 20_000 } });
  const r = rng(3);
  const bases = Array.from({ length: 12 }, () => randomText(r, 200 + Math.floor(r() * 300)));
  let checked = 0;
  for (let k = 0; k < 300; k++) {
    const base = bases[k % bases.length];
    // Cut the shared prefix at an arbitrary character (mid-word, mid-run, mid special token).
    const cut = Math.floor(r() * base.length);
    const text = base.slice(0, cut) + randomText(r, Math.floor(r() * 60));
    assert.deepEqual(await cached.encodeCompletion(MODEL, text, true), await full.encodeCompletion(MODEL, text, true), `prompt ${k}: ${JSON.stringify(text.slice(0, 80))}`);
    checked++;
  }
  const stats = await cached.cacheStats(MODEL);
  assert.ok(stats && stats.hitTokens > 0, 'the cache was used');
  assert.ok(stats!.cachedTokens <= 20_000);
  assert.equal(checked, 300);
});

test('a request sharing a long prefix is served mostly from the cache', async () => {
  const reg = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent' });
  const system = 'You are a careful assistant. Follow the policy below exactly. '.repeat(300);
  const a = await reg.encodeCompletion(MODEL, system + 'Question one: what is a block?', false);
  const before = (await reg.cacheStats(MODEL))!;
  const b = await reg.encodeCompletion(MODEL, system + 'Question two: why route by prefix?', false);
  const after = (await reg.cacheStats(MODEL))!;
  const hit = after.hitTokens - before.hitTokens;
  const miss = after.missTokens - before.missTokens;
  assert.ok(hit > 0.9 * b.length, `hit ${hit} of ${b.length}`);
  assert.ok(miss < 0.1 * b.length, `miss ${miss}`);
  assert.deepEqual(a.slice(0, 100), b.slice(0, 100));
});

test('a burst of requests sharing a prefix tokenizes the prefix once', async () => {
  const full = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent', engine: 'native', prefixCache: { enabled: false, split: false } });
  const reg = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent' });
  const system = 'Policy: answer precisely and cite the block keys you used. '.repeat(400);
  const prompts = Array.from({ length: 5 }, (_, i) => `${system}Question ${i}: which pod holds block ${i * 7}?`);
  const prefixTokens = (await full.encodeCompletion(MODEL, system, false)).length;
  const results = await Promise.all(prompts.map((p) => reg.encodeCompletion(MODEL, p, false)));
  for (let i = 0; i < prompts.length; i++) assert.deepEqual(results[i], await full.encodeCompletion(MODEL, prompts[i], false));
  const stats = (await reg.cacheStats(MODEL))!;
  assert.ok(stats.missTokens < 1.5 * prefixTokens, `tokenized ${stats.missTokens} tokens for a ${prefixTokens}-token shared prefix`);
  assert.ok(stats.hitTokens > 3 * prefixTokens, `reused ${stats.hitTokens}`);
});

test('on the spot or off the event loop: the same ids; a text over the on-the-spot work budget keeps the chunks encoded before it gave up', async () => {
  const full = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent', engine: 'native', prefixCache: { enabled: false, split: false } });
  const reg = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent' });
  const mt = await reg.get(MODEL);
  // A 1k-token chat's text: encoded on the spot, exactly.
  const chat = mt.renderChat([{ role: 'user', content: 'Route this request by its prefix, please. '.repeat(130) }], { add_generation_prompt: true });
  const quick = mt.encodeIdsSync(chat, false);
  assert.ok(quick, 'encoded on the spot');
  assert.deepEqual(Array.from(quick), await full.encodeCompletion(MODEL, chat, false));
  // ~24k characters of words never seen before: more BPE work than one budget (DEFAULT_WORK_BUDGET).
  const r = rng(11);
  const word = () => Array.from({ length: 5 + Math.floor(r() * 6) }, () => String.fromCharCode(97 + Math.floor(r() * 26))).join('');
  const novel = Array.from({ length: 3000 }, word).join(' ');
  assert.ok(novel.length < 32_768);
  const chunksBefore = mt.cacheStats()!.chunks;
  assert.equal(mt.encodeIdsSync(novel, false), undefined, 'over the budget: left to encodeIds');
  const kept = mt.cacheStats()!.chunks - chunksBefore;
  assert.ok(kept > 0, 'the chunks encoded before giving up are cached');
  const stats = { hitTokens: 0, missTokens: 0 };
  const ids = await mt.encodeIds(novel, false, stats);
  assert.deepEqual(Array.from(ids), await full.encodeCompletion(MODEL, novel, false));
  assert.ok(stats.hitTokens > 0, `the off-loop encode reused them (${kept} chunks, ${stats.hitTokens} tokens)`);
});

test('LRU keeps the cache within its token bound and evicts the oldest chunks', async () => {
  let calls = 0;
  const encodeMany = async (texts: string[]) => {
    calls += texts.length;
    return texts.map((t) => Array.from(t, (c) => c.charCodeAt(0)));
  };
  const cache = new ChunkTokenCache({ chunkChars: 64, minChars: 64, maxTokens: 300 });
  const t1 = 'alpha beta gamma delta '.repeat(10);
  await cache.encode(t1, encodeMany);
  const first = calls;
  await cache.encode(t1, encodeMany);
  assert.equal(calls, first, 'second pass fully cached');
  await cache.encode('omega sigma kappa tau '.repeat(20), encodeMany);
  assert.ok(cache.stats().cachedTokens <= 300);
  const c0 = calls;
  await cache.encode(t1, encodeMany);
  assert.ok(calls > c0, 'the oldest text was evicted');
});

test('chunks that differ only between sampled characters are cached apart, exactly, in LRU order', async () => {
  let calls = 0;
  // ids = the chunk's character codes, so a wrong hit shows up as wrong ids
  const encodeMany = async (texts: string[]) => {
    calls += texts.length;
    return texts.map((t) => Array.from(t, (c) => c.charCodeAt(0)));
  };
  const cache = new ChunkTokenCache({ chunkChars: 64, minChars: 64, maxTokens: 100 * 40 });
  // one 100-char chunk each (no cut points), differing only at index 17 (between sampled units)
  const base = 'x'.repeat(100);
  const texts = Array.from({ length: 30 }, (_, i) => base.slice(0, 17) + String.fromCharCode(65 + i) + base.slice(18));
  for (const t of texts) assert.deepEqual([...(await cache.encode(t, encodeMany)).ids], Array.from(t, (c) => c.charCodeAt(0)));
  assert.equal(calls, 30);
  assert.equal(cache.stats().chunks, 30);
  for (const t of texts) assert.deepEqual([...(await cache.encode(t, encodeMany)).ids], Array.from(t, (c) => c.charCodeAt(0)));
  assert.equal(calls, 30, 'every variant was a hit');
  // 15 more variants: the bound (40 chunks) evicts the 5 least recently used (texts 0-4)
  await cache.encode(texts[5], encodeMany);
  for (let i = 0; i < 15; i++) await cache.encode(base.slice(0, 17) + String.fromCharCode(97 + i) + base.slice(18), encodeMany);
  assert.equal(cache.stats().chunks, 40);
  const c0 = calls;
  await cache.encode(texts[5], encodeMany);
  await cache.encode(texts[29], encodeMany);
  assert.equal(calls, c0, 'recently used variants stayed');
  await cache.encode(texts[0], encodeMany);
  assert.equal(calls, c0 + 1, 'the least recently used variant was evicted');
});

test('long prompts leave the event loop free while they are tokenized', async () => {
  const reg = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent' });
  await reg.encodeCompletion(MODEL, 'warm', false);
  // ~300 KB of distinct random words (nothing cached anywhere): tens of ms of encoding work.
  const r = rng(11);
  let text = '';
  while (text.length < 300_000) {
    text += ' ';
    const n = 2 + Math.floor(r() * 9);
    for (let i = 0; i < n; i++) text += String.fromCharCode(97 + Math.floor(r() * 26));
  }
  let ticks = 0;
  let done = false;
  const tick = () => {
    ticks++;
    if (!done) setImmediate(tick);
  };
  setImmediate(tick);
  const ids = await reg.encodeCompletion(MODEL, text, false);
  done = true;
  assert.ok(ids.length > 30_000);
  assert.ok(ticks >= 3, `event loop turned ${ticks} times during tokenization`);
});

test('GPT-2 regex tokenizers: cached ids still equal a full tokenization, including " \\nX" runs', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kvr-gpt2-'));
  try {
    const bundled = QWEN3_DIR;
    writeFileSync(join(root, 'tokenizer.json'), JSON.stringify({ ...qwenJson, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true } }));
    copyFileSync(join(bundled, 'tokenizer_config.json'), join(root, 'tokenizer_config.json'));
    const full = await TokenizerRegistry.create({ modelDirs: { g: root }, hfCacheDir: '/nonexistent', prefixCache: { enabled: false, split: false } });
    const cached = await TokenizerRegistry.create({ modelDirs: { g: root }, hfCacheDir: '/nonexistent', prefixCache: { chunkChars: 64, minChars: 64 } });
    const r = rng(4);
    for (let k = 0; k < 60; k++) {
      let text = '';
      while (text.length < 600) text += randomText(r, 5) + (r() < 0.5 ? ' \nWord' : '\t\n\nnext ');
      assert.deepEqual(await cached.encodeCompletion('g', text, false), await full.encodeCompletion('g', text, false), `text ${k}`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('every cut the rules allow splits the ids exactly (dense random texts, Qwen and GPT-2 regexes)', async () => {
  const { HfTokenizerEngine } = await import('../../src/tokenize/engine.js');
  const qwen = HfTokenizerEngine.fromString(JSON.stringify(qwenJson));
  const gpt2 = HfTokenizerEngine.fromString(JSON.stringify({ ...qwenJson, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true } }));
  const pre = qwenJson.pre_tokenizer as { pretokenizers: Record<string, unknown>[] };
  const llama3Split = { ...pre.pretokenizers[0], pattern: { Regex: ((pre.pretokenizers[0].pattern as { Regex: string }).Regex).replace('\\p{N}|', '\\p{N}{1,3}|') } };
  const llama3Json = { ...qwenJson, pre_tokenizer: { ...pre, pretokenizers: [llama3Split, pre.pretokenizers[1]] } };
  assert.deepEqual(cutSafety(llama3Json), { ok: true, newlineRule: true }, 'Llama-3 regex recognised');
  const llama3 = HfTokenizerEngine.fromString(JSON.stringify(llama3Json));
  const ALPHA = ['a', 'Z', 'é', '1', '9', '12345', ' ', '  ', '\n', '\t', '\r', '\r\n', "'", 's', 'LL', '.', '!', '"', '(', '世', '\u0301', '\u00a0', '😀', '<|im_end|>', '<think>', '\u0085', '\u3000', 'x '];
  const r = rng(5);
  let cuts = 0;
  for (const [engine, newlineRule] of [[qwen, true], [llama3, true], [gpt2, false]] as const) {
    for (let k = 0; k < 150; k++) {
      let text = '';
      const n = 5 + Math.floor(r() * 25);
      for (let i = 0; i < n; i++) text += ALPHA[Math.floor(r() * ALPHA.length)];
      const whole = JSON.stringify(await engine.encode(text, false));
      for (let c = 1; c < text.length; c++) {
        if (!isCut(text, c, newlineRule)) continue;
        const [left, right] = await engine.encodeMany([text.slice(0, c), text.slice(c)], false);
        assert.equal(JSON.stringify([...left, ...right]), whole, `${newlineRule ? 'qwen' : 'gpt2'} cut ${c} of ${JSON.stringify(text)}`);
        cuts++;
      }
    }
  }
  assert.ok(cuts > 300, `checked ${cuts} cuts`);
});
