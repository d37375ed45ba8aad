// Bounded request work, over real HTTP on loopback with the real Qwen3 tokenizer: request
// limits answer before any rendering or tokenization, a client that goes away stops its
// tokenization, and small requests keep being answered while a large allowed one is worked on.
// Nothing here asserts a wall-clock bound: tokenizer counters and the order of answers do.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Registry } from 'prom-client';
import { startRouter, routerTokenizersFrom, type Router } from '../../src/gateway/router.js';
import { EMBEDDED_CONFIG } from '../../src/gateway/embedded.js';
import { DirectorPicker } from '../../src/k8s/director-picker.js';
import { TokenizerRegistry } from '../../src/tokenize/index.js';
import type { ModelTokenizer } from '../../src/tokenize/model-tokenizer.js';
import { rng as mulberry32 } from '../helpers/rng.js';
import { MODEL, until } from './helpers.js';

const MAX_MODEL_LEN = 40_960;

/** A vLLM stand-in that does no work: /v1/models with max_model_len, /metrics, tiny completions. */
async function fakePod(): Promise<{ server: Server; address: string; completions: () => number }> {
  let completions = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/v1/models') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ object: 'list', data: [{ id: MODEL, object: 'model', parent: null, max_model_len: MAX_MODEL_LEN }] }));
      } else if (req.url === '/metrics') res.end('');
      else {
        completions++;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ id: 'x', object: 'text_completion', choices: [{ index: 0, text: 'ok', finish_reason: 'length' }] }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, completions: () => completions };
}

let pod: Awaited<ReturnType<typeof fakePod>>;
let reg: TokenizerRegistry;
let mt: ModelTokenizer;
let router: Router;

before(async () => {
  pod = await fakePod();
  const registry = new Registry();
  // The router's and the tokenizers' metrics on one /metrics page.
  reg = await TokenizerRegistry.create({ registry });
  mt = await reg.get(MODEL);
  router = await startRouter({
    configPath: EMBEDDED_CONFIG,
    endpoints: [{ address: pod.address, labels: { 'llm-d.ai/role': 'decode' } }],
    port: 0,
    zmqEndpoint: 'tcp://127.0.0.1:0',
    logLevel: 'silent',
    processMetrics: false,
    registry,
    tokenizers: await routerTokenizersFrom(reg, false),
  });
  await router.pool.waitReady(1);
  // Warm: the tokenizer's metrics series exist from here on.
  assert.equal((await post('/v1/completions', JSON.stringify({ model: MODEL, prompt: 'warm up', max_tokens: 1 }))).status, 200);
  assert.ok((await metric('kvrouter_tokenize_tokens_total', '')) > 0);
  await until(() => router.pool.all().every((e) => e.models !== null), 5000, '/v1/models fetched');
});

after(async () => {
  await router?.close();
  await reg?.close();
  pod?.server.closeAllConnections();
  await new Promise((r) => pod?.server.close(r));
});

interface Answer {
  status: number;
  json: { error?: { message: string; type: string; param: string | null; code: string } } & Record<string, unknown>;
}

/** POST over node:http (the body may be tens of MB); resolves with status and parsed JSON. */
function post(path: string, body: string | Buffer): Promise<Answer> {
  const url = new URL(router.url);
  return new Promise((resolve, reject) => {
    const r = request({ host: url.hostname, port: url.port, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        resolve({ status: res.statusCode!, json: text ? (JSON.parse(text) as Answer['json']) : {} });
      });
    });
    r.on('error', reject);
    r.end(body);
  });
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${router.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && line.includes(labels)) sum += Number(line.split(' ').pop());
  return sum;
}

/** Everything that shows tokenizer work: tokens produced, chunks encoded, renders started. */
async function tokenizerWork(): Promise<string> {
  return JSON.stringify({ tokens: await metric('kvrouter_tokenize_tokens_total', ''), chunks: mt.chunksEncoded });
}

function assertOpenAIError(a: Answer, status: number, code: string, param: string): void {
  assert.equal(a.status, status, JSON.stringify(a.json));
  const e = a.json.error!;
  assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(e.code, code);
  assert.equal(e.param, param);
  assert.equal(e.type, status === 413 ? 'request_too_large_error' : 'invalid_request_error');
}

/** Words no tokenizer cache has seen (seeded), `chars` long, cut-able at every space. */
function novelText(chars: number, seed: number): string {
  const rnd = mulberry32(seed);
  const parts: string[] = [];
  let n = 0;
  while (n < chars) {
    let w = '';
    const len = 3 + Math.floor(rnd() * 8);
    for (let i = 0; i < len; i++) w += String.fromCharCode(97 + Math.floor(rnd() * 26));
    parts.push(w);
    n += w.length + 1;
  }
  return parts.join(' ').slice(0, chars);
}

test('a chat of 100k messages is 413 too_many_messages, counted, before any rendering or tokenizing', async () => {
  const work = await tokenizerWork();
  const rejected = await metric('kvrouter_request_limit_rejections_total', 'reason="messages"');
  const messages = Array.from({ length: 100_000 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i}` }));
  const a = await post('/v1/chat/completions', JSON.stringify({ model: MODEL, messages }));
  assertOpenAIError(a, 413, 'too_many_messages', 'messages');
  assert.match(a.json.error!.message, /100000 entries.*at most 4096/);
  assert.equal(await tokenizerWork(), work, 'nothing was rendered or tokenized');
  assert.equal(await metric('kvrouter_request_limit_rejections_total', 'reason="messages"'), rejected + 1);
  assert.equal(await metric('inference_objective_request_error_total', 'error_code="413"') >= 1, true);
});

test("a 5M-token-id prompt is 400 context_length_exceeded against the pods' max_model_len, without copying the ids", async () => {
  const work = await tokenizerWork();
  const rejected = await metric('kvrouter_request_limit_rejections_total', 'reason="prompt_tokens"');
  const ids = new Array<number>(5_000_000).fill(7);
  const a = await post('/v1/completions', JSON.stringify({ model: MODEL, prompt: ids, max_tokens: 1 }));
  assertOpenAIError(a, 400, 'context_length_exceeded', 'prompt');
  assert.match(a.json.error!.message, new RegExp(`maximum context length is ${MAX_MODEL_LEN} tokens.*5000000`));
  assert.equal(await tokenizerWork(), work);
  assert.equal(await metric('kvrouter_request_limit_rejections_total', 'reason="prompt_tokens"'), rejected + 1);
  // A batch of token-id prompts is held to the cap prompt by prompt.
  const b = await post('/v1/completions', JSON.stringify({ model: MODEL, prompt: [[1, 2], new Array<number>(MAX_MODEL_LEN + 1).fill(3)], max_tokens: 1 }));
  assertOpenAIError(b, 400, 'context_length_exceeded', 'prompt');
});

test('8M CJK characters are 413 prompt_too_large; 1M are 400 context_length_exceeded by the token lower bound, before tokenizing', async () => {
  const work = await tokenizerWork();
  const block = Array.from({ length: 20_000 }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919) % 20_000))).join('');
  const cjk = (n: number) => block.repeat(Math.ceil(n / block.length)).slice(0, n);
  const big = await post('/v1/completions', JSON.stringify({ model: MODEL, prompt: cjk(8_000_000), max_tokens: 1 }));
  assertOpenAIError(big, 413, 'prompt_too_large', 'prompt');
  const mid = await post('/v1/completions', JSON.stringify({ model: MODEL, prompt: cjk(1_000_000), max_tokens: 1 }));
  assertOpenAIError(mid, 400, 'context_length_exceeded', 'prompt');
  assert.match(mid.json.error!.message, /at least \d+ tokens/);
  // The same bound on a chat, checked on the rendered text.
  const chat = await post('/v1/chat/completions', JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: cjk(1_000_000) }] }));
  assertOpenAIError(chat, 400, 'context_length_exceeded', 'messages');
  assert.equal(await tokenizerWork(), work, 'no tokens were produced and no chunk was encoded');
  assert.equal(pod.completions() >= 0, true);
});

test('a body over the size limit is 413 before it is parsed', async () => {
  const r2 = await startRouter({ endpoints: [{ address: pod.address }], port: 0, logLevel: 'silent', processMetrics: false, maxBodyBytes: 1024, tokenizers: await routerTokenizersFrom(reg, false) });
  try {
    // Not even JSON: a parser would answer 400; the size limit answers first.
    const a = await new Promise<Answer>((resolve, reject) => {
      const url = new URL(r2.url);
      const body = Buffer.alloc(64 * 1024, '[');
      const r = request({ host: url.hostname, port: url.port, path: '/v1/completions', method: 'POST', headers: { 'content-length': body.length } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) as Answer['json'] }));
      });
      r.on('error', reject);
      r.end(body);
    });
    assert.equal(a.status, 413);
    assert.equal(a.json.error!.code, 'body_too_large');
  } finally {
    await r2.close();
  }
});

test('the ext-proc picker parses with the same limits and answers the same errors', async () => {
  const picker = new DirectorPicker({ director: router.director, pool: router.pool, parse: router.parseOptions });
  const messages = Array.from({ length: 5000 }, () => ({ role: 'user', content: 'x' }));
  const out = await picker.pick({ requestId: 'limits-1', path: '/v1/chat/completions', headers: {}, body: Buffer.from(JSON.stringify({ model: MODEL, messages })), subset: null });
  assert.ok('error' in out && out.error);
  assert.equal(out.error.status, 413);
  assert.equal(out.error.code, 'too_many_messages');
  const ids = await picker.pick({ requestId: 'limits-2', path: '/v1/completions', headers: {}, body: Buffer.from(JSON.stringify({ model: MODEL, prompt: new Array<number>(MAX_MODEL_LEN + 1).fill(1) })), subset: null });
  assert.ok('error' in ids && ids.error);
  assert.equal(ids.error.status, 400);
  assert.equal(ids.error.code, 'context_length_exceeded');
  // A stream Envoy cancelled: its request is not tokenized.
  const cancelled = new AbortController();
  cancelled.abort();
  const before = mt.chunksEncoded;
  const gone = await picker.pick({
    requestId: 'limits-3',
    path: '/v1/completions',
    headers: {},
    body: Buffer.from(JSON.stringify({ model: MODEL, prompt: novelText(100_000, 5) })),
    subset: null,
    signal: cancelled.signal,
  });
  assert.ok('error' in gone && gone.error);
  assert.equal(gone.error.status, 499);
  assert.equal(mt.chunksEncoded, before);
});

test('/tokenize is held to the same limits', async () => {
  const messages = Array.from({ length: 5000 }, () => ({ role: 'user', content: 'x' }));
  assertOpenAIError(await post('/tokenize', JSON.stringify({ model: MODEL, messages })), 413, 'too_many_messages', 'messages');
  assertOpenAIError(await post('/tokenize', JSON.stringify({ model: MODEL, prompt: new Array<number>(MAX_MODEL_LEN + 1).fill(1) })), 400, 'context_length_exceeded', 'prompt');
  const ok = await post('/tokenize', JSON.stringify({ model: MODEL, prompt: 'hello' }));
  assert.equal(ok.status, 200);
  assert.equal(ok.json.count, 1);
});

test('a client that goes away stops its tokenization: chunks encoded after the disconnect stay bounded', async () => {
  const text = novelText(2_000_000, 1301);
  const totalChunks = Math.ceil(text.length / 1024);
  const aborted = await metric('kvrouter_tokenize_requests_total', 'outcome="aborted"');
  const before = mt.chunksEncoded;
  const url = new URL(router.url);
  const body = JSON.stringify({ model: MODEL, prompt: text, max_tokens: 1 });
  const r = request({ host: url.hostname, port: url.port, path: '/v1/completions', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
  let socket: Socket | undefined;
  r.on('socket', (sk) => (socket = sk));
  r.on('error', () => {});
  r.end(body);
  // Tokenization is under way...
  await until(() => mt.chunksEncoded > before, 60_000, 'tokenization to start');
  // ...when the client goes away. A reset, not a FIN: a FIN alone is a half-close, and a
  // half-closed client still gets its answer (the HTTP edge's rule).
  socket!.resetAndDestroy();
  const atAbort = mt.chunksEncoded;
  await until(async () => (await metric('kvrouter_tokenize_requests_total', 'outcome="aborted"')) > aborted, 60_000, 'the tokenization to be abandoned');
  const after = mt.chunksEncoded - atAbort;
  // One 2 ms slice of chunks may finish after the close is seen; the text has ~1,950 chunks.
  assert.ok(after < 300, `${after} chunks encoded after the client left`);
  assert.ok(mt.chunksEncoded - before < totalChunks / 2, `${mt.chunksEncoded - before} of ~${totalChunks} chunks encoded in all`);
  assert.equal(await metric('inference_objective_request_error_total', 'error_code="499"') >= 1, true);
});

test('small requests are answered while a large allowed prompt is tokenized and while a long chat is rendered', async () => {
  // A large completion: ~1M characters of novel words, within every limit, tokenized in slices.
  const before = mt.chunksEncoded;
  let bigDone = false;
  const big = post('/v1/completions', JSON.stringify({ model: MODEL, prompt: novelText(1_000_000, 977), max_tokens: 1 })).then((a) => {
    bigDone = true;
    return a;
  });
  await until(() => mt.chunksEncoded > before, 60_000, 'the large prompt to be tokenized');
  const small = await post('/v1/completions', JSON.stringify({ model: MODEL, prompt: 'a small request', max_tokens: 1 }));
  assert.equal(small.status, 200);
  assert.equal(bigDone, false, 'the small request was answered while the large one was still being tokenized');
  assert.equal((await big).status, 200);

  // A long chat that only jinja can render (it ends with an assistant turn): rendered off the loop.
  let chatDone = false;
  const messages = Array.from({ length: 2000 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i} ${novelText(40, i)}` }));
  const chat = post('/v1/chat/completions', JSON.stringify({ model: MODEL, messages, max_tokens: 1 })).then((a) => {
    chatDone = true;
    return a;
  });
  const small2 = await post('/v1/chat/completions', JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }));
  assert.equal(small2.status, 200);
  assert.equal(chatDone, false, 'the small chat was answered while the long one was being rendered');
  assert.equal((await chat).status, 200);
});
