import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TenantRadixTree, charSeq } from '../../src/bench/peers/radix-tree.js';
import { SglangCacheAwarePolicy, sglangParamsSchema } from '../../src/bench/peers/sglang-cache-aware.js';
import { ActiveBlocks, chooseByCost, dynamoCosts, dynamoParamsSchema } from '../../src/bench/peers/dynamo-kv.js';
import type { Endpoint } from '../../src/scheduler/types.js';
import { registerBenchPlugins } from '../../src/bench/peers/index.js';
import { buildSchedulerConfig, parseEndpointPickerConfig } from '../../src/scheduler/config.js';
import { STRATEGIES, strategyYaml } from '../../src/bench/strategies.js';
import { pluginContext } from '../helpers/plugin-context.js';

const u32 = (xs: number[]) => Uint32Array.from(xs);
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

function ep(address: string, inflight = 0, kvUsage = 0): Endpoint {
  return {
    name: address, address, labels: {}, inflightRequests: inflight, inflightTokens: 0, ready: true,
    metrics: { waiting: 0, running: 0, kvUsage, runningLoras: [], waitingLoras: [], maxLora: 0, updatedAt: 1 },
  };
}

test('radix tree: per-tenant longest prefix, splits, sizes', () => {
  const t = new TenantRadixTree();
  t.insert(u32(range(0, 100)), 'a', 1);
  t.insert(u32([...range(0, 50), ...range(500, 530)]), 'b', 2);
  let m = t.match(u32(range(0, 100)));
  assert.equal(m.perTenant.get('a'), 100);
  assert.equal(m.perTenant.get('b'), 50);
  assert.equal(m.tenant, 'a');
  assert.equal(m.matched, 100);
  m = t.match(u32([...range(0, 50), ...range(500, 510), 9]));
  assert.equal(m.perTenant.get('b'), 60);
  assert.equal(m.perTenant.get('a'), 50);
  m = t.match(u32(range(0, 100)), new Set(['b']));
  assert.equal(m.tenant, 'b');
  assert.equal(m.matched, 50);
  assert.equal(t.tenantSize('a'), 100);
  assert.equal(t.tenantSize('b'), 80);
  assert.equal(t.match(u32([7, 7])).matched, 0);
  assert.equal(t.match(charSeq('')).matched, 0);
});

test('radix tree: LRU leaf eviction per tenant down to the budget', () => {
  const t = new TenantRadixTree();
  t.insert(u32([1, ...range(100, 140)]), 'a', 1); // old branch
  t.insert(u32([2, ...range(200, 240)]), 'a', 5); // recent branch
  t.insert(u32([1, ...range(100, 140)]), 'b', 3);
  assert.equal(t.tenantSize('a'), 82);
  t.evict(50);
  assert.ok(t.tenantSize('a') <= 50);
  assert.equal(t.match(u32([1, ...range(100, 140)]), new Set(['a'])).matched, 0, 'old branch evicted for a');
  assert.equal(t.match(u32([2, ...range(200, 240)]), new Set(['a'])).matched, 41, 'recent branch kept');
  assert.equal(t.match(u32([1, ...range(100, 140)]), new Set(['b'])).matched, 41, 'other tenants untouched');
});

test('sglang cache_aware: cache hit above threshold, min load below, shortest queue when imbalanced', () => {
  const pol = new SglangCacheAwarePolicy(sglangParamsSchema.parse({}));
  const a = ep('a:1', 0), b = ep('b:1', 0);
  const prompt = u32(range(0, 100));
  pol.learn('m', prompt, 'a:1');
  // 90 % match (> 0.3) -> a, even though b is less loaded.
  a.inflightRequests = 3;
  let d = pol.decide('m', u32([...range(0, 90), ...range(1000, 1010)]), [a, b]);
  assert.equal(d.endpoint, a);
  assert.equal(d.reason, 'cache-hit');
  // 20 % match (< 0.3) -> least loaded.
  d = pol.decide('m', u32([...range(0, 20), ...range(2000, 2080)]), [a, b]);
  assert.equal(d.endpoint, b);
  assert.equal(d.reason, 'min-load');
  // Imbalanced: max - min > 64 and max > 1.5 x min -> shortest queue despite the hit.
  a.inflightRequests = 100;
  b.inflightRequests = 10;
  d = pol.decide('m', prompt, [a, b]);
  assert.equal(d.endpoint, b);
  assert.equal(d.reason, 'imbalanced');
  // Not imbalanced when the relative threshold is not crossed.
  a.inflightRequests = 200;
  b.inflightRequests = 150;
  assert.equal(pol.decide('m', prompt, [a, b]).reason, 'cache-hit');
  // Models have separate trees.
  assert.equal(pol.decide('other', prompt, [a, b]).reason, 'min-load');
});

test('dynamo cost: overlap credit against prefill + decode load, argmin', () => {
  const p = dynamoParamsSchema.parse({});
  const active = new ActiveBlocks();
  const [a, b] = [ep('a:1'), ep('b:1')];
  // 10-block request; a holds 8 of them -> a: 2 + 10 = 12, b: 10 + 10 = 20.
  let costs = dynamoCosts(p, 10, (x) => (x === 'a:1' ? 8 : 0), active, [a, b]);
  assert.deepEqual(costs, [12, 20]);
  assert.equal(chooseByCost(costs, 0), 0);
  // Load on a: 30 blocks decoding, 5 of them still prefilling.
  const keys = (from: number, n: number) => Array.from({ length: n }, (_, i) => BigInt(from + i));
  active.add('a:1', 'r1', { prefillBlocks: 5, keys: keys(1000, 29), partial: 1, prefillDone: false });
  costs = dynamoCosts(p, 10, (x) => (x === 'a:1' ? 8 : 0), active, [a, b]);
  assert.deepEqual(costs, [7 + 40, 20]);
  assert.equal(chooseByCost(costs, 0), 1);
  active.prefillCompleted('a:1', 'r1');
  assert.equal(active.prefill('a:1'), 0);
  assert.equal(active.decode('a:1'), 30);
  // As in Dynamo's ActiveSequences, blocks shared by active requests count once per endpoint,
  // and an incoming request adds only the blocks that endpoint is not already holding.
  const shared = keys(0, 8);
  active.add('a:1', 'r2', { prefillBlocks: 0, keys: [...shared, 50n, 51n], partial: 0, prefillDone: true });
  assert.equal(active.decode('a:1'), 30 + 10);
  active.add('a:1', 'r3', { prefillBlocks: 0, keys: [...shared, 60n, 61n], partial: 0, prefillDone: true });
  assert.equal(active.decode('a:1'), 30 + 10 + 2);
  assert.equal(active.newBlocks('a:1', [...shared, 70n], 1), 2);
  assert.equal(active.newBlocks('b:1', [...shared, 70n], 1), 10);
  costs = dynamoCosts(p, 10, (x) => (x === 'a:1' ? 8 : 0), active, [a, b], { keys: [...shared, 70n, 71n], partial: 0 });
  assert.deepEqual(costs, [2 + 42 + 2, 10 + 0 + 10]);
  active.free('a:1', 'r2');
  assert.equal(active.decode('a:1'), 30 + 10, 'shared blocks stay while r3 holds them');
  active.free('a:1', 'r3');
  active.free('a:1', 'r1');
  assert.equal(active.decode('a:1'), 0);
  assert.equal(active.newBlocks('a:1', shared, 0), 8);
  // Ties are broken at random; temperature > 0 samples, favouring low cost.
  const picks = new Set<number>();
  for (let i = 0; i < 200; i++) picks.add(chooseByCost([5, 5, 9], 0));
  assert.deepEqual([...picks].sort(), [0, 1]);
  let low = 0;
  for (let i = 0; i < 2000; i++) if (chooseByCost([0, 100], 0.5) === 0) low++;
  assert.ok(low > 1500 && low < 2000, `softmax picks the cheaper one more often (${low})`);
});

test('the bench registers its peer strategies itself: unknown before registerBenchPlugins, loaded after', async () => {
  const ctx = () => pluginContext();
  const sglang = STRATEGIES.find((s) => s.name === 'sglang-cache-aware')!;
  const yaml = strategyYaml(sglang, { model: 'm', blockSize: 16, zmqEndpoint: 'tcp://127.0.0.1:0' });
  assert.throws(() => buildSchedulerConfig(parseEndpointPickerConfig(yaml), ctx()), /unknown plugin type "sglang-cache-aware-scorer"/);
  registerBenchPlugins();
  const cfg = buildSchedulerConfig(parseEndpointPickerConfig(yaml), ctx());
  assert.deepEqual(cfg.profiles.get('default')!.scorers.map((s) => s.scorer.type), ['sglang-cache-aware-scorer']);
  for (const p of cfg.plugins.values()) await p.close?.();
});
