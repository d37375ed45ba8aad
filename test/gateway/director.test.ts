// The Director's critical section: a decision's pre-request hooks (speculative indexing) run
// off the request's path, yet every later decision sees them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startRouter, type Router } from '../../src/gateway/router.js';
import { EMBEDDED_CONFIG } from '../../src/gateway/embedded.js';
import { parseOpenAIRequest } from '../../src/gateway/parse.js';
import { MODEL } from './helpers.js';

let router: Router;
const servers: Server[] = [];

before(async () => {
  const addresses: string[] = [];
  for (let i = 0; i < 2; i++) {
    const s = createServer((req, res) => {
      if (req.url === '/metrics') return void res.end('vllm:num_requests_waiting{engine="0"} 0\nvllm:num_requests_running{engine="0"} 0\nvllm:kv_cache_usage_perc{engine="0"} 0.1\n');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ object: 'list', data: [{ id: MODEL, object: 'model' }] }));
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    servers.push(s);
    addresses.push(`127.0.0.1:${(s.address() as AddressInfo).port}`);
  }
  router = await startRouter({ configPath: EMBEDDED_CONFIG, endpoints: addresses.map((address) => ({ address, labels: { 'llm-d.ai/role': 'decode' } })), port: 0, zmqEndpoint: 'tcp://127.0.0.1:0', logLevel: 'silent', processMetrics: false });
  await router.pool.waitReady(2);
});

after(async () => {
  await router.close();
  for (const s of servers) await new Promise((r) => s.close(r));
});

/** A token-id prompt of 8 blocks of 16 whose first 120 tokens (7 full blocks) depend only on `seed`. */
function request(seed: number, tail: number) {
  const ids = Array.from({ length: 128 }, (_, i) => (i < 120 ? seed * 1000 + i : tail * 10 + i));
  return parseOpenAIRequest('/v1/completions', {}, JSON.stringify({ model: MODEL, prompt: ids }), router.parseOptions);
}

async function matchedOn(seed: number, pod: string): Promise<number> {
  const m = await router.kvIndex!.match(request(seed, 99), router.pool.ready());
  return m.matches.get(pod)?.blocks ?? 0;
}

test('a burst sharing a new prefix follows the first decision (the next decision runs its pre-request hooks first)', async () => {
  for (let round = 0; round < 5; round++) {
    const seed = 10 + round;
    const results = await Promise.all([0, 1, 2].map((t) => router.director.schedule(request(seed, t))));
    const pods = new Set(results.map((r) => r.targets[0].address));
    assert.equal(pods.size, 1, `round ${round}: ${[...pods].join(', ')}`);
  }
});

test('pre-request hooks run off the request path, within two event-loop turns when no decision follows', async () => {
  const r = await router.director.schedule(request(42, 0));
  const pod = r.targets[0].address;
  // The request was not held for its speculative entries...
  assert.equal(await matchedOn(42, pod), 0);
  // ...which land once the proxy has had its turn to write the request upstream.
  await new Promise((done) => setImmediate(() => setImmediate(() => setImmediate(done))));
  assert.equal(await matchedOn(42, pod), 7);
});
