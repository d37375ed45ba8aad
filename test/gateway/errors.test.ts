// Every error path of the gateway returns its status and an OpenAI-style JSON body. The
// upstreams are small real HTTP servers on loopback whose behaviour each test sets.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { startRouter, type Router } from '../../src/gateway/router.js';
import { post, until } from './helpers.js';

type Mode = 'ok' | 'hang' | 'reset' | 'status500' | 'badheader';
interface Upstream {
  server: Server;
  address: string;
  mode: Mode;
  waiting: number;
  close(): Promise<void>;
}

async function upstream(model = 'm'): Promise<Upstream> {
  const u = { mode: 'ok' as Mode, waiting: 0 } as Upstream;
  u.server = createServer((req, res) => {
    if (req.url === '/metrics') {
      res.end(`vllm:num_requests_waiting{engine="0"} ${u.waiting}\nvllm:num_requests_running{engine="0"} 0\nvllm:kv_cache_usage_perc{engine="0"} 0.1\n`);
      return;
    }
    if (req.url === '/v1/models') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ object: 'list', data: [{ id: model, object: 'model' }] }));
      return;
    }
    req.resume();
    req.on('end', () => {
      switch (u.mode) {
        case 'hang':
          return;
        case 'reset':
          req.socket.destroy();
          return;
        case 'badheader':
          // A head node:http would never write: a bare LF inside a value (response splitting).
          req.socket.end('HTTP/1.1 200 OK\r\nx-evil: a\nset-cookie: owned=1\r\ncontent-length: 2\r\n\r\n{}');
          return;
        case 'status500':
          res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'engine dead', type: 'InternalServerError', code: 500 } }));
          return;
        default:
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'x', object: 'text_completion', choices: [{ index: 0, text: 'hi' }] }));
      }
    });
  });
  await new Promise<void>((r) => u.server.listen(0, '127.0.0.1', r));
  u.address = `127.0.0.1:${(u.server.address() as AddressInfo).port}`;
  u.close = () =>
    new Promise<void>((r) => {
      u.server.closeAllConnections();
      u.server.close(() => r());
    });
  return u;
}

let up: Upstream;
let router: Router;

before(async () => {
  up = await upstream();
  router = await startRouter({
    endpoints: [{ address: up.address }],
    port: 0,
    logger: pino({ level: 'silent' }),
    processMetrics: false,
    maxBodyBytes: 1024,
    upstreamHeadersTimeoutMs: 300,
    shedding: true,
    config: { plugins: [{ type: 'queue-scorer' }] },
  });
  await router.pool.waitReady(1);
  await until(() => !!router.pool.get(up.address)!.models, 10_000, 'models');
});
after(async () => {
  await router?.close();
  await up?.close();
});

function assertError(r: { status: number; json: Record<string, unknown> }, status: number, code?: string) {
  assert.equal(r.status, status, JSON.stringify(r.json));
  const err = r.json.error as { message: string; type: string; code: string };
  assert.ok(err && typeof err.message === 'string' && err.message.length > 0, 'has an error.message');
  assert.equal(typeof err.type, 'string');
  if (code) assert.equal(err.code, code);
}

test('success passes through with x-request-id and the endpoint header', async () => {
  up.mode = 'ok';
  const r = await post(`${router.url}/v1/completions`, { model: 'm', prompt: 'hello' });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-kvrouter-endpoint'), up.address);
  assert.match(r.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
});

test('400: bad JSON, missing model, bad prompt, bad messages, bad stream', async () => {
  assertError(await post(`${router.url}/v1/completions`, '{"model": "m", '), 400, 'invalid_json');
  assertError(await post(`${router.url}/v1/completions`, '[1,2]'), 400, 'invalid_json');
  assertError(await post(`${router.url}/v1/completions`, { prompt: 'x' }), 400, 'missing_model');
  assertError(await post(`${router.url}/v1/completions`, { model: 'm', prompt: 42 }), 400, 'invalid_prompt');
  assertError(await post(`${router.url}/v1/chat/completions`, { model: 'm', messages: [] }), 400, 'invalid_messages');
  assertError(await post(`${router.url}/v1/chat/completions`, { model: 'm', messages: [{ content: 'no role' }] }), 400, 'invalid_messages');
  assertError(await post(`${router.url}/v1/completions`, { model: 'm', prompt: 'x', stream: 'yes' }), 400, 'invalid_stream');
});

test('404: unknown model and unknown path; 405 wrong method', async () => {
  assertError(await post(`${router.url}/v1/completions`, { model: 'no-such-model', prompt: 'x' }), 404, 'model_not_found');
  assertError(await post(`${router.url}/v1/nothing`, { model: 'm' }), 404, 'unknown_path');
  const r = await fetch(`${router.url}/v1/completions`);
  assert.equal(r.status, 405);
  assert.ok(((await r.json()) as { error: unknown }).error);
});

test('413: a body over the size limit is refused', async () => {
  assertError(await post(`${router.url}/v1/completions`, { model: 'm', prompt: 'x'.repeat(2000) }), 413, 'body_too_large');
});

test('429: every endpoint saturated with shedding on', async () => {
  up.waiting = 50;
  await until(() => router.pool.get(up.address)!.metrics.waiting === 50, 10_000, 'scrape');
  const r = await post(`${router.url}/v1/completions`, { model: 'm', prompt: 'x' });
  assertError(r, 429, 'saturated');
  assert.equal(r.headers.get('x-llm-d-request-dropped-reason'), 'saturated');
  up.waiting = 0;
  await until(() => router.pool.get(up.address)!.metrics.waiting === 0, 10_000, 'scrape');
});

test('502: the upstream drops the connection; upstream 5xx bodies pass through unchanged', async () => {
  up.mode = 'reset';
  assertError(await post(`${router.url}/v1/completions`, { model: 'm', prompt: 'x' }), 502, 'upstream_error');
  up.mode = 'status500';
  const r = await post(`${router.url}/v1/completions`, { model: 'm', prompt: 'x' });
  assert.equal(r.status, 500);
  assert.equal((r.json.error as { message: string }).message, 'engine dead');
  // A malformed head from the upstream is a 502, never relayed, and the router carries on.
  up.mode = 'badheader';
  const bad = await post(`${router.url}/v1/completions`, { model: 'm', prompt: 'x' });
  assertError(bad, 502, 'upstream_error');
  assert.equal(bad.headers.get('set-cookie'), null);
  up.mode = 'ok';
  assert.equal((await post(`${router.url}/v1/completions`, { model: 'm', prompt: 'x' })).status, 200);
});

test('504: the upstream does not answer in time', async () => {
  up.mode = 'hang';
  const r = await post(`${router.url}/v1/completions`, { model: 'm', prompt: 'x' });
  assertError(r, 504, 'upstream_timeout');
  up.mode = 'ok';
});

test('503: the subset hint excludes every endpoint; no endpoint ready', async () => {
  assertError(await post(`${router.url}/v1/completions`, { model: 'm', prompt: 'x' }, { 'x-gateway-destination-endpoint-subset': '10.9.9.9:80' }), 503, 'no_endpoints_in_subset');
  const lonely = await startRouter({ endpoints: [{ address: '127.0.0.1:1' }], port: 0, logger: pino({ level: 'silent' }), processMetrics: false });
  try {
    const r = await post(`${lonely.url}/v1/completions`, { model: 'm', prompt: 'x' });
    assertError(r, 503, 'no_ready_endpoint');
    const ready = await fetch(`${lonely.url}/ready`);
    assert.equal(ready.status, 503);
  } finally {
    await lonely.close();
  }
});

test('errors are counted in /metrics by status code', async () => {
  const text = await (await fetch(`${router.url}/metrics`)).text();
  for (const code of ['400', '404', '413', '429', '502', '504']) assert.match(text, new RegExp(`inference_objective_request_error_total\\{[^}]*error_code="${code}"`), code);
});
