// Streams pass through chunk by chunk (never buffered), and a client that goes away cancels
// the upstream request and releases the endpoint's in-flight count.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { startRouter, type Router } from '../../src/gateway/router.js';
import { until } from './helpers.js';

let upstream: Server;
let address: string;
let router: Router;
let upstreamClosed = 0;
const GAP_MS = 150;
/** Lockstep streams: the upstream writes event i+1 only once the client has read event i. */
const clientSaw = new Map<number, () => void>();
const sawEvent = (i: number) => new Promise<void>((resolve) => clientSaw.set(i, resolve));

before(async () => {
  upstream = createServer((req, res) => {
    if (req.url === '/metrics') return void res.end('vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n');
    if (req.url === '/v1/models') return void res.end(JSON.stringify({ object: 'list', data: [{ id: 'm' }] }));
    req.resume();
    if (req.headers['x-test-silent'] === '1') {
      // Never answers: the router is still waiting for the response headers.
      res.on('close', () => {
        if (!res.writableFinished) upstreamClosed++;
      });
      return;
    }
    const forever = req.headers['x-test-forever'] === '1';
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (req.headers['x-test-lockstep'] === '1') {
      void (async () => {
        for (let i = 0; i < 4; i++) {
          const seen = sawEvent(i);
          res.write(`data: {"i":${i}}\n\n`);
          await seen;
        }
        res.end('data: [DONE]\n\n');
      })();
      return;
    }
    let i = 0;
    const timer = setInterval(() => {
      if (!forever && i === 4) {
        res.end('data: [DONE]\n\n');
        clearInterval(timer);
        return;
      }
      res.write(`data: {"i":${i++}}\n\n`);
    }, GAP_MS);
    res.on('close', () => {
      clearInterval(timer);
      if (!res.writableFinished) upstreamClosed++;
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  address = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  router = await startRouter({ endpoints: [{ address }], port: 0, logger: pino({ level: 'silent' }), processMetrics: false, config: { plugins: [{ type: 'queue-scorer' }] } });
  await router.pool.waitReady(1);
});
after(async () => {
  await router?.close();
  upstream?.closeAllConnections();
  upstream?.close();
});

test('SSE chunks reach the client as the upstream sends them', async () => {
  // Causal, not timed: the upstream sends each event only after the client has read the one
  // before, so the stream completes only if the router passes every chunk on as it arrives
  // (a router that buffered would stall it; the liveness bound below is far beyond any load).
  const res = await fetch(`${router.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-test-lockstep': '1' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true }),
  });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  assert.equal(res.headers.get('x-kvrouter-endpoint'), address);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  const seen: number[] = [];
  let text = '';
  const stalled = new Promise<never>((_, reject) => {
    const t = setTimeout(() => reject(new Error(`stream stalled after events ${JSON.stringify(seen)}: chunks are held back`)), 30_000);
    t.unref();
  });
  while (true) {
    const { done, value } = await Promise.race([reader.read(), stalled]);
    if (done) break;
    const chunk = dec.decode(value);
    text += chunk;
    for (const m of chunk.matchAll(/"i":(\d+)/g)) {
      seen.push(Number(m[1]));
      clientSaw.get(Number(m[1]))?.();
    }
  }
  assert.deepEqual(seen, [0, 1, 2, 3]);
  assert.ok(text.endsWith('data: [DONE]\n\n'));
});

test('a client disconnect cancels the upstream stream and releases the in-flight count', async () => {
  const before = upstreamClosed;
  await new Promise<void>((resolve, reject) => {
    const req = request(`${router.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-test-forever': '1' } }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => {});
    req.once('error', reject);
    req.end(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true }));
  });
  await until(() => upstreamClosed > before, 10_000, 'the upstream request to be cancelled');
  await until(() => router.pool.get(address)!.inflightRequests === 0, 10_000, 'in-flight count back to 0');
});

test('a client disconnect before the upstream answered cancels the upstream request too', async () => {
  const before = upstreamClosed;
  const req = request(`${router.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-test-silent': '1' } });
  req.on('error', () => {});
  req.end(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }));
  await until(() => router.pool.get(address)!.inflightRequests === 1, 10_000, 'the request to be in flight');
  req.destroy();
  await until(() => upstreamClosed > before, 10_000, 'the upstream request to be cancelled');
  await until(() => router.pool.get(address)!.inflightRequests === 0, 10_000, 'in-flight count back to 0');
});

test('shutdown drains: a stream in flight finishes, new connections are refused', async () => {
  const r2 = await startRouter({ endpoints: [{ address }], port: 0, logger: pino({ level: 'silent' }), processMetrics: false, config: { plugins: [{ type: 'queue-scorer' }] } });
  await r2.pool.waitReady(1);
  const res = await fetch(`${r2.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true }),
  });
  const closing = r2.close(3000);
  await new Promise((r) => setTimeout(r, 50));
  await assert.rejects(fetch(`${r2.url}/health`), 'no new connections while draining');
  const text = await res.text();
  assert.ok(text.endsWith('data: [DONE]\n\n'), 'the stream in flight completed');
  await closing;
});
