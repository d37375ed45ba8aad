import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { apiForPath, parseOpenAIRequest, promptTokenIds } from '../../src/gateway/parse.js';
import { GatewayError } from '../../src/gateway/errors.js';
import { EndpointPool } from '../../src/endpoints/pool.js';
import { poolMaxModelLen, promptUnits, RequestLimits } from '../../src/gateway/request-limits.js';

test('paths map to the API kind by suffix, as llm-d parses them', () => {
  assert.equal(apiForPath('/v1/chat/completions'), 'chat');
  assert.equal(apiForPath('/v1/completions?x=1'), 'completions');
  assert.equal(apiForPath('/v1/embeddings'), undefined);
});

test('a request keeps model, stream, cache_salt, subset and the client x-request-id', async () => {
  const r = parseOpenAIRequest(
    '/v1/chat/completions',
    { 'X-Request-Id': 'abc', 'x-gateway-destination-endpoint-subset': '10.0.0.1:8000, 10.0.0.2:8000' },
    JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello there' }], stream: true, cache_salt: 's' }),
  );
  assert.equal(r.requestId, 'abc');
  assert.equal(r.api, 'chat');
  assert.equal(r.stream, true);
  assert.equal(r.cacheSalt, 's');
  assert.deepEqual(r.subset, ['10.0.0.1:8000', '10.0.0.2:8000']);
  assert.equal(await r.getTokens(), null, 'no tokenizer given');
  const gen = parseOpenAIRequest('/v1/completions', {}, '{"model":"m","prompt":"x"}');
  assert.match(gen.requestId, /^[0-9a-f-]{36}$/);
  assert.equal(gen.headers['x-request-id'], gen.requestId);
});

test('token-id prompts pass through as tokens; the tokenizer runs at most once', async () => {
  assert.deepEqual(Array.from(promptTokenIds([1, 2, 3])!), [1, 2, 3]);
  assert.deepEqual(Array.from(promptTokenIds([[4, 5], [6]])!), [4, 5]);
  assert.equal(promptTokenIds(['a']), null);
  const r = parseOpenAIRequest('/v1/completions', {}, JSON.stringify({ model: 'm', prompt: [7, 8, 9] }));
  assert.deepEqual(Array.from((await r.getTokens())!), [7, 8, 9]);
  let calls = 0;
  const t = parseOpenAIRequest('/v1/completions', {}, JSON.stringify({ model: 'm', prompt: 'abc' }), {
    tokenize: async () => {
      calls++;
      return Uint32Array.of(1, 2);
    },
  });
  const [x, y] = await Promise.all([t.getTokens(), t.getTokens()]);
  assert.equal(x, y);
  assert.equal(calls, 1);
  assert.equal(t.estimatedTokens, 2);
});

test('LoRA adapters resolve to their base model from /v1/models; unknown models are 404', () => {
  const pool = new EndpointPool([{ address: '127.0.0.1:1' }], { logger: pino({ level: 'silent' }), scrapeIntervalMs: 0 });
  assert.deepEqual(pool.resolveModel('anything'), { baseModel: 'anything' }, 'models unknown: accept');
  pool.get('127.0.0.1:1')!.models = [{ id: 'base' }, { id: 'sql-lora', parent: 'base' }];
  const opts = { resolveModel: (m: string) => pool.resolveModel(m) };
  const r = parseOpenAIRequest('/v1/completions', {}, JSON.stringify({ model: 'sql-lora', prompt: 'x' }), opts);
  assert.equal(r.baseModel, 'base');
  assert.equal(r.lora, 'sql-lora');
  assert.throws(
    () => parseOpenAIRequest('/v1/completions', {}, JSON.stringify({ model: 'nope', prompt: 'x' }), opts),
    (e: unknown) => e instanceof GatewayError && e.status === 404 && e.body().error.code === 'model_not_found',
  );
  void pool.close();
});

test('request limits: message count and prompt size are 413, token ids over the cap 400, with OpenAI error bodies', () => {
  const limits = new RequestLimits({ maxMessages: 3, maxPromptChars: 100, maxPromptTokens: 8 });
  const parse = (path: string, body: unknown) => parseOpenAIRequest(path, {}, JSON.stringify(body), { limits });
  const fails = (path: string, body: unknown, status: number, code: string, param: string) =>
    assert.throws(
      () => parse(path, body),
      (e: unknown) => e instanceof GatewayError && e.status === status && e.code === code && e.param === param,
      `${code} for ${JSON.stringify(body).slice(0, 80)}`,
    );
  const msg = (content: unknown) => ({ role: 'user', content });
  parse('/v1/chat/completions', { model: 'm', messages: [msg('a'), msg('b'), msg('c')] });
  fails('/v1/chat/completions', { model: 'm', messages: [msg('a'), msg('b'), msg('c'), msg('d')] }, 413, 'too_many_messages', 'messages');
  fails('/v1/chat/completions', { model: 'm', messages: [msg('x'.repeat(100))] }, 413, 'prompt_too_large', 'messages');
  // Part lists, tools and template arguments count too; so does every JSON value.
  fails('/v1/chat/completions', { model: 'm', messages: [msg(Array.from({ length: 60 }, () => ({ type: 'text', text: '' })))] }, 413, 'prompt_too_large', 'messages');
  fails('/v1/chat/completions', { model: 'm', messages: [msg('hi')], tools: [{ type: 'function', function: { name: 'f', description: 'd'.repeat(90) } }] }, 413, 'prompt_too_large', 'messages');
  fails('/v1/completions', { model: 'm', prompt: 'x'.repeat(101) }, 413, 'prompt_too_large', 'prompt');
  fails('/v1/completions', { model: 'm', prompt: ['x'.repeat(60), 'y'.repeat(60)] }, 413, 'prompt_too_large', 'prompt');
  parse('/v1/completions', { model: 'm', prompt: [1, 2, 3, 4, 5, 6, 7, 8] });
  fails('/v1/completions', { model: 'm', prompt: [1, 2, 3, 4, 5, 6, 7, 8, 9] }, 400, 'context_length_exceeded', 'prompt');
  fails('/v1/completions', { model: 'm', prompt: [[1], [1, 2, 3, 4, 5, 6, 7, 8, 9]] }, 400, 'context_length_exceeded', 'prompt');
  fails('/v1/completions', { model: 'm', prompt: [['x']] }, 400, 'invalid_prompt', 'prompt');
  fails('/v1/completions', { model: 'm', prompt: ['x', 1] }, 400, 'invalid_prompt', 'prompt');
  assert.throws(() => new RequestLimits({ maxMessages: 0 }), /maxMessages must be a positive integer/);
});

test('prompt units: any nesting depth without recursion, and the walk stops once over the cap', () => {
  let deep: unknown = 'leaf';
  for (let i = 0; i < 200_000; i++) deep = [deep];
  assert.equal(promptUnits(deep, 1e9), 200_000 + 5);
  const wide = new Array(1_000_000).fill('');
  assert.ok(promptUnits(wide, 1000) > 1000);
  assert.equal(promptUnits({ ab: 'cd' }, 100), 1 + 2 + 3);
});

test("the token cap is the pods' max_model_len (an adapter inherits its base model's), else the configured one", () => {
  const pool = new EndpointPool([{ address: '127.0.0.1:1' }, { address: '127.0.0.1:2' }], { logger: pino({ level: 'silent' }), scrapeIntervalMs: 0 });
  const limits = new RequestLimits({ maxPromptTokens: 1000 }, (m) => poolMaxModelLen(pool, m));
  assert.equal(limits.maxTokens('base'), 1000, 'models unknown: the configured cap');
  pool.get('127.0.0.1:1')!.models = [{ id: 'base', maxModelLen: 4096 }, { id: 'sql-lora', parent: 'base' }];
  pool.get('127.0.0.1:2')!.models = [{ id: 'base', maxModelLen: 8192 }, { id: 'other' }];
  assert.equal(limits.maxTokens('base'), 8192, 'the largest any endpoint serves');
  assert.equal(limits.maxTokens('sql-lora'), 4096);
  assert.equal(limits.maxTokens('other'), 1000);
  assert.equal(new RequestLimits({ maxPromptTokens: 1000, useModelMaxLen: false }, (m) => poolMaxModelLen(pool, m)).maxTokens('base'), 1000);
  void pool.close();
});

test('token ids are checked as the body is parsed (400 invalid_prompt naming the index); an aborted request is 499 and tokenizes nothing', async () => {
  const ids = new Array<number>(100_000).fill(5);
  ids[70_000] = -1;
  assert.throws(
    () => parseOpenAIRequest('/v1/completions', {}, JSON.stringify({ model: 'm', prompt: ids })),
    (e: unknown) => e instanceof GatewayError && e.status === 400 && e.code === 'invalid_prompt' && /token 70000 /.test(e.message),
  );
  const ok = parseOpenAIRequest('/v1/completions', {}, JSON.stringify({ model: 'm', prompt: new Array<number>(100_000).fill(5) }));
  const t = (await ok.getTokens())!;
  assert.equal(t.length, 100_000);
  assert.equal(t[99_999], 5);

  const ac = new AbortController();
  let calls = 0;
  const gone = parseOpenAIRequest('/v1/completions', {}, JSON.stringify({ model: 'm', prompt: 'abc' }), { tokenize: async () => (calls++, null) }, ac.signal);
  ac.abort();
  await assert.rejects(gone.getTokens(), (e: unknown) => e instanceof GatewayError && e.status === 499 && e.code === 'client_closed_request');
  assert.equal(calls, 0);
});
