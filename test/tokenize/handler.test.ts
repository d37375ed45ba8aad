// /tokenize over real HTTP: vLLM's request and response shapes, OpenAI-style errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TokenizerRegistry, handleTokenize } from '../../src/tokenize/index.js';

const MODEL = 'Qwen/Qwen3-0.6B';
let server: Server;
let url = '';
let registry: TokenizerRegistry;

before(async () => {
  registry = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent', defaultModel: MODEL });
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const out = await handleTokenize(registry, Buffer.concat(chunks));
      res.writeHead(out.status, { 'content-type': 'application/json' }).end(JSON.stringify(out.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tokenize`;
});
after(async () => {
  await new Promise((r) => server.close(r));
  await registry.close();
});

async function post(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

test('prompt -> {count, max_model_len, tokens}', async () => {
  const r = await post({ model: MODEL, prompt: 'Hello world!' });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { count: 3, max_model_len: 40960, tokens: [9707, 1879, 0] });
});

test('return_token_strs adds the vocabulary strings', async () => {
  const r = await post({ model: MODEL, prompt: 'Hello world!', return_token_strs: true });
  assert.deepEqual(r.json.token_strs, ['Hello', 'Ġworld', '!']);
});

test('model defaults to the registry default model', async () => {
  const r = await post({ prompt: 'Hello world!' });
  assert.equal(r.status, 200);
  assert.equal(r.json.count, 3);
});

test('messages use the chat template, generation prompt on by default, no extra special tokens', async () => {
  const messages = [{ role: 'user', content: 'hi' }];
  const r = await post({ model: MODEL, messages, chat_template_kwargs: { enable_thinking: false } });
  assert.equal(r.status, 200);
  // <|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n
  assert.deepEqual(r.json.tokens, [151644, 872, 198, 6023, 151645, 198, 151644, 77091, 198, 151667, 271, 151668, 271]);
  const noGen = await post({ model: MODEL, messages, add_generation_prompt: false });
  assert.deepEqual(noGen.json.tokens, [151644, 872, 198, 6023, 151645, 198]);
});

test('tools are rendered into the system turn', async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
  const withTools = await post({ model: MODEL, messages: [{ role: 'user', content: 'Weather?' }], tools });
  const without = await post({ model: MODEL, messages: [{ role: 'user', content: 'Weather?' }] });
  assert.equal(withTools.status, 200);
  assert.ok((withTools.json.count as number) > (without.json.count as number) + 50);
  const text = await registry.renderChat(MODEL, [{ role: 'user', content: 'Weather?' }], { tools });
  assert.ok(text.includes('{"type": "function", "function": {"name": "get_weather", "description": null, "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}'), text);
});

test('token ids pass through', async () => {
  const r = await post({ model: MODEL, prompt: [1, 2, 3, 151645] });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.tokens, [1, 2, 3, 151645]);
});

const BAD: [string, unknown, RegExp][] = [
  ['malformed JSON', '{"model": ', /not valid JSON/],
  ['array body', [1, 2], /JSON object/],
  ['no prompt or messages', { model: MODEL }, /exactly one of/],
  ['both prompt and messages', { model: MODEL, prompt: 'a', messages: [{ role: 'user', content: 'a' }] }, /exactly one of/],
  ['prompt of wrong type', { model: MODEL, prompt: 42 }, /"prompt" must be/],
  ['non-boolean add_special_tokens', { model: MODEL, prompt: 'a', add_special_tokens: 'yes' }, /add_special_tokens/],
  ['messages not an array', { model: MODEL, messages: 'hi' }, /"messages" must be an array/],
  ['empty messages', { model: MODEL, messages: [] }, /non-empty/],
  ['message without role', { model: MODEL, messages: [{ content: 'x' }] }, /role/],
  ['image part', { model: MODEL, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, /image_url.*not supported/],
  ['generation prompt + continue', { model: MODEL, messages: [{ role: 'user', content: 'a' }], continue_final_message: true }, /Cannot set both/],
  ['tools not an array', { model: MODEL, messages: [{ role: 'user', content: 'a' }], tools: {} }, /"tools" must be an array/],
  ['tool without name', { model: MODEL, messages: [{ role: 'user', content: 'a' }], tools: [{ type: 'function', function: {} }] }, /name/],
  ['tool call that is not a function', { model: MODEL, messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: null, tool_calls: [{ type: 'custom', custom: {} }] }] }, /type "function"/],
  ['tool call that is not an object', { model: MODEL, messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: null, tool_calls: ['f()'] }] }, /must be an object/],
  ['kwargs not an object', { model: MODEL, messages: [{ role: 'user', content: 'a' }], chat_template_kwargs: [1] }, /chat_template_kwargs/],
  ['reserved chat_template_kwargs', { model: MODEL, messages: [{ role: 'user', content: 'a' }], chat_template_kwargs: { tokenize: true } }, /unexpected chat template kwargs/],
  ['negative token id', { model: MODEL, prompt: [5, -1] }, /prompt\[1\]/],
];
for (const [name, body, re] of BAD) {
  test(`400 with an OpenAI-style error: ${name}`, async () => {
    const r = await post(body);
    assert.equal(r.status, 400);
    const err = r.json.error as Record<string, unknown>;
    assert.equal(err.code, 400);
    assert.equal(err.type, 'BadRequestError');
    assert.match(String(err.message), re);
  });
}

test('404 for an unknown model, naming it', async () => {
  const r = await post({ model: 'nobody/nothing', prompt: 'x' });
  assert.equal(r.status, 404);
  const err = r.json.error as Record<string, unknown>;
  assert.equal(err.type, 'NotFoundError');
  assert.match(String(err.message), /nobody\/nothing/);
});

test('handleTokenize accepts an already-parsed body and reports no model as 400', async () => {
  const reg = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent' });
  assert.equal((await handleTokenize(reg, { prompt: 'x' })).status, 400);
  assert.equal((await handleTokenize(reg, { model: MODEL, prompt: 'x' })).status, 200);
});

test('continue_final_message ends the text right after the partial assistant turn', async () => {
  const messages = [{ role: 'user', content: 'Count' }, { role: 'assistant', content: 'one, two,' }];
  const text = await registry.renderChat(MODEL, messages, { add_generation_prompt: false, continue_final_message: true });
  assert.ok(text.endsWith('one, two,'), JSON.stringify(text));
  const r = await post({ model: MODEL, messages, add_generation_prompt: false, continue_final_message: true });
  assert.equal(r.status, 200);
});
