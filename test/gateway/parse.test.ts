import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { apiForPath, parseOpenAIRequest, promptTokenIds } from '../../src/gateway/parse.js';
import { GatewayError } from '../../src/gateway/errors.js';
import { EndpointPool } from '../../src/endpoints/pool.js';

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
