// Request-body JSON off the event loop (src/gateway/json-body.ts): token ids packed, the value
// cap, the worker thread for large bodies, and a router that answers a small request while a
// large body is still being parsed. Order and worker state are asserted, never elapsed time.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJsonBody, INLINE_JSON_BYTES, jsonBodyWorker, parseJsonBody } from '../../src/gateway/json-body.js';
import { GatewayError } from '../../src/gateway/errors.js';
import { COMPLETION, startPod, startRouterFor, type FakePod } from './fake-pods.js';
import { until } from './helpers.js';

const caps = { maxValues: 1000, maxMessages: 10, maxPromptChars: 10_000_000 };
const bytes = (v: unknown) => Buffer.from(JSON.stringify(v));
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('token-id prompts are packed into Uint32Arrays; other shapes stay as sent', () => {
  const job = (v: unknown) => decodeJsonBody({ bytes: bytes(v), ...caps, packPrompt: true }).result as Record<string, unknown>;
  const one = job({ model: 'm', prompt: [1, 2, 3] });
  assert.ok(one.prompt instanceof Uint32Array);
  assert.deepEqual(Array.from(one.prompt), [1, 2, 3]);
  const batch = job({ model: 'm', prompt: [[4, 5], [6]] });
  assert.deepEqual((batch.prompt as Uint32Array[]).map((x) => Array.from(x)), [[4, 5], [6]]);
  assert.deepEqual(job({ model: 'm', prompt: ['a', 'b'] }).prompt, ['a', 'b']);
  assert.deepEqual(job({ model: 'm', prompt: [[1], 'x'] }).prompt, [[1], 'x'], 'a bad shape is parse.ts business');
  assert.throws(() => job({ model: 'm', prompt: [1, 2, 1.5] }), (e: unknown) => e instanceof GatewayError && e.status === 400 && e.code === 'invalid_prompt' && /token 2 /.test(e.message));
  assert.throws(() => job({ model: 'm', prompt: [[1], [2, -1]] }), (e: unknown) => e instanceof GatewayError && e.code === 'invalid_prompt');
  assert.throws(() => decodeJsonBody({ bytes: '{"model":', ...caps, packPrompt: true }), (e: unknown) => e instanceof GatewayError && e.status === 400 && e.code === 'invalid_json');
});

test('more JSON values than the cap is 413 too_many_values (token ids count once); a long chat gets its own error first', () => {
  const decode = (v: unknown) => decodeJsonBody({ bytes: bytes(v), ...caps, packPrompt: true });
  decode({ model: 'm', prompt: new Array(50_000).fill(1) }); // 50k ids: one value
  assert.throws(() => decode({ model: 'm', prompt: 'x', tools: new Array(2000).fill(null) }), (e: unknown) => e instanceof GatewayError && e.status === 413 && e.code === 'too_many_values');
  assert.throws(() => decode({ model: 'm', prompt: 'x', deep: Array.from({ length: 600 }, () => ({ a: 1 })) }), (e: unknown) => e instanceof GatewayError && e.code === 'too_many_values');
  assert.throws(() => decode({ model: 'm', messages: new Array(11).fill({ role: 'user', content: 'x' }) }), (e: unknown) => e instanceof GatewayError && e.code === 'too_many_messages');
  const small = (v: unknown) => decodeJsonBody({ bytes: bytes(v), ...caps, maxPromptChars: 100, packPrompt: true });
  assert.throws(() => small({ model: 'm', prompt: 'x'.repeat(101) }), (e: unknown) => e instanceof GatewayError && e.status === 413 && e.code === 'prompt_too_large' && e.param === 'prompt');
  assert.throws(() => small({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(101) }] }), (e: unknown) => e instanceof GatewayError && e.code === 'prompt_too_large' && e.param === 'messages');
  small({ model: 'm', prompt: new Array(1000).fill(1) }); // token ids: held to the token cap, on the main thread
});

test('a body over the inline size is parsed in the worker thread, with the same result and errors', async () => {
  const body = { model: 'm', prompt: Array.from({ length: 40_000 }, (_, i) => i), text: 'é'.repeat(10) };
  const b = bytes(body);
  assert.ok(b.length > INLINE_JSON_BYTES);
  const w = jsonBodyWorker();
  const pending = parseJsonBody(b, { ...caps, maxValues: 100 }, true);
  assert.equal(w.pending, 1, 'handed to the worker');
  const got = (await pending) as Record<string, unknown>;
  assert.ok(got.prompt instanceof Uint32Array);
  assert.equal((got.prompt as Uint32Array)[39_999], 39_999);
  assert.equal(got.text, body.text);
  assert.equal(b.length, bytes(body).length, "the caller's bytes are left intact (they are forwarded upstream)");
  const tooMany = bytes({ model: 'm', prompt: 'x', tools: new Array(40_000).fill(0).map(() => 'a') });
  await assert.rejects(parseJsonBody(tooMany, { ...caps, maxValues: 100 }, true), (e: unknown) => e instanceof GatewayError && e.status === 413 && e.code === 'too_many_values');
  await assert.rejects(parseJsonBody(Buffer.concat([b, Buffer.from('}')]), caps, true), (e: unknown) => e instanceof GatewayError && e.status === 400 && e.code === 'invalid_json');
});

test('an abandoned parse is dropped: 499, and a running one stops its thread', async () => {
  const w = jsonBodyWorker();
  const big = bytes({ model: 'm', prompt: new Array(2_000_000).fill(3) });
  const first = new AbortController();
  const second = new AbortController();
  const running = parseJsonBody(big, caps, true, first.signal);
  const queued = parseJsonBody(big, caps, true, second.signal);
  assert.equal(w.pending, 2);
  second.abort();
  await assert.rejects(queued, (e: unknown) => e instanceof GatewayError && e.status === 499);
  const terminated = w.terminated;
  first.abort();
  await assert.rejects(running, (e: unknown) => e instanceof GatewayError && e.status === 499);
  assert.equal(w.terminated, terminated + 1);
  assert.equal(w.pending, 0);
  // The next parse starts a fresh thread.
  assert.deepEqual(await parseJsonBody(bytes({ model: 'm', prompt: 'y'.repeat(INLINE_JSON_BYTES) }), caps, true).then((v) => (v as { model: string }).model), 'm');
});

test('a router answers a small request while a large body sent before it is still being parsed', async () => {
  const pod: FakePod = await startPod();
  cleanups.push(() => pod.close());
  const router = await startRouterFor([pod]);
  cleanups.push(() => router.close());
  const w = jsonBodyWorker();
  // ~28 MB of token ids (under the 32 MiB body limit): inline, JSON.parse held the loop 1-2 s.
  const big = JSON.stringify({ model: 'm', prompt: new Array<number>(4_000_000).fill(151_000), max_tokens: 1 });
  const bigAnswer = fetch(`${router.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big }).then(async (r) => ({ status: r.status, json: (await r.json()) as { error?: { code?: string } } }));
  await until(() => w.pending === 1, 30_000, 'the large body in the parse thread');
  const small = await fetch(`${router.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: COMPLETION });
  assert.equal(small.status, 200);
  await small.text();
  assert.equal(w.pending, 1, 'the small request was answered while the large body was still being parsed');
  const a = await bigAnswer;
  // 4M ids is over the default 1,048,576-token cap: refused after the parse, never sent to the pod.
  assert.equal(a.status, 400);
  assert.equal(a.json.error?.code, 'context_length_exceeded');
  assert.equal(pod.received, 1);
});
