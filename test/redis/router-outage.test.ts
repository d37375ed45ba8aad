// A router on the Redis index keeps serving while Redis is down (prefix scores drop to 0,
// routing falls back to load, failures are counted), and says 'resync-needed' when Redis
// comes back with an empty dataset; fresh KV events then restore prefix hits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { pino } from 'pino';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { startRouter, routerTokenizersFrom, type Router } from '../../src/gateway/router.js';
import { startSimPod, type SimPod } from '../../src/sim/index.js';
import { TokenizerRegistry } from '../../src/tokenize/index.js';
import { RedisKvBlockIndex } from '../../src/index/redis-index.js';

const MODEL = 'Qwen/Qwen3-0.6B';
const silent = pino({ level: 'silent' });

let redis: RedisServerHandle;
let tokReg: Awaited<ReturnType<typeof TokenizerRegistry.create>>;
let router: Router;
const pods: SimPod[] = [];

before(async () => {
  redis = await startRedisServer();
  tokReg = await TokenizerRegistry.create({});
  const config = {
    plugins: [
      { type: 'tokenizer', parameters: { modelName: MODEL } },
      { type: 'single-profile-handler' },
      { type: 'decode-filter' },
      {
        type: 'precise-prefix-cache-scorer',
        parameters: {
          tokenProcessorConfig: { blockSize: 16, hashSeed: '42' },
          indexerConfig: { kvBlockIndexConfig: { redisConfig: { address: redis.url, keyPrefix: 'outage:', lookupTimeoutMs: 1000, probeIntervalMs: 50 } } },
          kvEventsConfig: { discoverPods: false, zmqEndpoint: 'tcp://127.0.0.1:0' },
          speculativeIndexing: false,
        },
      },
      { type: 'queue-scorer' },
      { type: 'max-score-picker' },
    ],
    schedulingProfiles: [{ name: 'default', plugins: [{ pluginRef: 'decode-filter' }, { pluginRef: 'tokenizer' }, { pluginRef: 'precise-prefix-cache-scorer', weight: 2 }, { pluginRef: 'queue-scorer', weight: 1 }, { pluginRef: 'max-score-picker' }] }],
  };
  router = await startRouter({ config: JSON.stringify(config), endpoints: [], port: 0, logger: silent, processMetrics: false, tokenizers: await routerTokenizersFrom(tokReg, false) });
  const zmq = router.kvIndex!.eventsEndpoint!.replace('0.0.0.0', '127.0.0.1');
  for (let i = 0; i < 2; i++) {
    pods.push(await startSimPod({
      port: 0, host: '127.0.0.1', model: MODEL, blockSize: 16, timeScale: 0.02, pythonHashSeed: '42', llmdTopic: true,
      kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint: zmq }, tokenizers: tokReg, logger: silent,
    }));
    router.pool.add({ address: pods[i].podId, name: `pod-${i}`, labels: {} });
  }
  await router.pool.waitReady(2, 15_000);
});

after(async () => {
  await router?.close();
  await Promise.all(pods.map((p) => p.close()));
  await tokReg?.close();
  await redis?.stop();
});

/** 162 token ids (10 full blocks of 16), distinct per variant from the first block on. */
function prompt(variant: string): number[] {
  let seed = 7;
  for (const ch of variant) seed = (seed * 31 + ch.charCodeAt(0)) % 100_003;
  return Array.from({ length: 162 }, (_, i) => 1000 + ((seed * 7919 + i * 104_729) % 50_000));
}

async function complete(tokens: number[]): Promise<{ status: number; pod: string | null }> {
  const res = await fetch(`${router.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, prompt: tokens, max_tokens: 2 }) });
  await res.arrayBuffer();
  return { status: res.status, pod: res.headers.get('x-kvrouter-endpoint') };
}

async function matched(tokens: number[], pod: string): Promise<number> {
  const res = await fetch(`${router.url}/score_completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, prompt: tokens }) });
  const body = (await res.json()) as { endpoints: { address: string; matchedBlocks: number }[] };
  return body.endpoints.find((e) => e.address === pod)?.matchedBlocks ?? 0;
}

async function until(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function metric(name: string): Promise<number> {
  const m = router.registry.getSingleMetric(name);
  return m ? (await m.get()).values.reduce((s, v) => s + v.value, 0) : 0;
}

test('requests keep flowing while Redis is down, and the index resyncs when it returns', async () => {
  const index = router.kvIndex!.index;
  assert.ok(index instanceof RedisKvBlockIndex, 'redisConfig selects the Redis backend');
  const a = prompt('first');
  const first = await complete(a);
  assert.equal(first.status, 200);
  await until(async () => (await matched(a, first.pod!)) === 10, 5000, 'KV events for the first prompt in Redis');

  await redis.kill();
  const resync = once(index, 'resync-needed');
  for (let i = 0; i < 6; i++) {
    const r = await complete(prompt(`down-${i}`));
    assert.equal(r.status, 200, 'no request fails because of the index');
    assert.ok(r.pod);
  }
  assert.equal(await matched(a, first.pod!), 0, 'no prefix scores without Redis');
  assert.ok((await metric('kvrouter_index_redis_lookup_failures_total')) >= 6);
  assert.equal(await metric('kvrouter_index_redis_up'), 0);

  await redis.start();
  const [info] = (await Promise.race([resync, new Promise((_, rej) => setTimeout(() => rej(new Error('no resync-needed within 5 s')), 5000))])) as [{ reason: string }];
  assert.equal(info.reason, 'restarted');
  // new traffic re-populates the (empty) Redis through KV events
  const b = prompt('after');
  const again = await complete(b);
  assert.equal(again.status, 200);
  await until(async () => (await matched(b, again.pod!)) === 10, 5000, 'KV events reaching the restarted Redis');
});
