// Token ids and chat renders must equal the reference fixtures (scripts/gen-tokenize-fixtures.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TokenizerRegistry, type ChatMessage } from '../../src/tokenize/index.js';

interface Fixture {
  model: string;
  prompts: { name: string; prompt: string; ids: number[] }[];
  chats: {
    name: string;
    request: { messages: ChatMessage[]; tools?: unknown[]; chat_template_kwargs?: Record<string, unknown>; add_generation_prompt?: boolean; continue_final_message?: boolean };
    rendered: string;
    ids: number[];
  }[];
}

const fx = JSON.parse(readFileSync(new URL('../fixtures/tokenize/qwen3-0.6b.json', import.meta.url), 'utf8')) as Fixture;
const NOWHERE = '/nonexistent-hf-cache';

test('fixture corpus covers what the issue asks for', () => {
  const names = new Set([...fx.prompts.map((p) => p.name), ...fx.chats.map((c) => c.name)]);
  for (const n of ['emoji', 'cjk-zh', 'code-python', 'whitespace-runs', 'special-in-text', 'system-multiturn', 'tools', 'thinking-off', 'thinking-on'])
    assert.ok(names.has(n), n);
  assert.ok(fx.prompts.length >= 80);
});

for (const engine of ['auto', 'native'] as const) {
  test(`engine '${engine}' loads the bundled Qwen3 tokenizer with the expected encoder`, async () => {
    const reg = await TokenizerRegistry.create({ hfCacheDir: NOWHERE, engine });
    const mt = await reg.get(fx.model);
    assert.equal(mt.engineName, engine === 'auto' ? 'fast-bpe' : 'native', mt.fastUnsupported);
    await reg.close();
  });

  for (const cache of [false, true]) {
    const label = `${engine} engine, prefix cache ${cache ? 'on, tiny chunks' : 'off'}`;
    const opts = { hfCacheDir: NOWHERE, engine, prefixCache: cache ? { chunkChars: 64, minChars: 64 } : { enabled: false } };

    test(`completion ids equal the reference on every fixture prompt (${label})`, async () => {
      const reg = await TokenizerRegistry.create(opts);
      for (const p of fx.prompts) {
        assert.deepEqual(await reg.encodeCompletion(fx.model, p.prompt, true), p.ids, `prompt ${p.name}`);
        assert.deepEqual(await reg.encodeCompletion(fx.model, p.prompt, false), p.ids, `prompt ${p.name} (no special tokens)`);
      }
      await reg.close();
    });

    test(`chat renders and ids equal the reference on every fixture chat (${label})`, async () => {
      const reg = await TokenizerRegistry.create(opts);
      for (const c of fx.chats) {
        const { messages, ...rest } = c.request;
        assert.equal(await reg.renderChat(fx.model, messages, rest), c.rendered, `render ${c.name}`);
        assert.deepEqual(await reg.encodeChat(fx.model, messages, rest), c.ids, `ids ${c.name}`);
        const res = await reg.tokenize({ model: fx.model, messages, ...rest });
        assert.deepEqual(res.tokens, c.ids, `/tokenize ${c.name}`);
        assert.equal(res.count, c.ids.length);
      }
      await reg.close();
    });
  }
}
