import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChainKeySet, PrefixOracle, cacheableTokens, chainKey, oracleHitRate } from '../../src/bench/oracle.js';
import { imbalance, percentile, summarize } from '../../src/bench/stats.js';
import { arrivals } from '../../src/bench/load.js';
import { sharedPrefixWorkload } from '../../src/bench/workloads/shared-prefix.js';

const seq = (n: number, base = 0) => Array.from({ length: n }, (_, i) => base + i);

test('oracle: vLLM hit rule floor((N-1)/B)*B and full blocks only', () => {
  assert.equal(cacheableTokens(32, 2, 16), 16); // N-1 cap: a fully cached 32-token prompt serves 16
  assert.equal(cacheableTokens(33, 2, 16), 32);
  assert.equal(cacheableTokens(100, 1, 16), 16);
  const o = new PrefixOracle(16);
  assert.equal(o.observe(seq(40)), 0);
  assert.equal(o.observe(seq(40)), 32); // 2 full blocks seen, cap floor(39/16)*16 = 32
  assert.equal(o.observe(seq(33)), 32);
  assert.equal(o.observe(seq(32)), 16);
  assert.equal(o.observe(seq(15)), 0); // no full block
  // Diverging inside block 1: only block 0 hits.
  const x = seq(40);
  x[20] = 999_999;
  assert.equal(o.observe(x), 16);
  // Different first block: nothing, even if later tokens match (chained keys).
  const y = seq(40);
  y[0] = 777_777;
  assert.equal(o.observe(y), 0);
  assert.equal(o.promptTokens, 40 * 4 + 33 + 32 + 15);
  assert.ok(Math.abs(o.hitRate - (32 + 32 + 16 + 16) / o.promptTokens) < 1e-12);
});

test('oracle: shared_prefix hit rate matches the closed form', () => {
  // 2 groups x 2 prompts, system 64 + question 16 tokens, block 16: each distinct prompt's first
  // request misses its question; every later request hits 64 (system) or 64 (repeat, capped at
  // floor(79/16)*16 = 64).
  const w = sharedPrefixWorkload({ numGroups: 2, promptsPerGroup: 2, systemPromptLen: 64, questionLen: 16, outputLen: 1, seed: 1 });
  const reqs = w.take(40);
  const r = oracleHitRate(reqs, 16);
  const firstOfGroup = new Set<string>();
  let expected = 0;
  for (const q of reqs) {
    if (!firstOfGroup.has(q.group)) firstOfGroup.add(q.group);
    else expected += 64;
  }
  assert.equal(r.cachedTokens, expected);
  assert.equal(r.promptTokens, 40 * 80);
});

test('stats: percentiles interpolate like numpy, summary ignores NaN', () => {
  const v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  assert.equal(percentile(v, 50), 5.5);
  assert.ok(Math.abs(percentile(v, 90) - 9.1) < 1e-12);
  assert.ok(Math.abs(percentile(v, 99) - 9.91) < 1e-12);
  const s = summarize([10, NaN, 1, 5]);
  assert.equal(s.count, 3);
  assert.equal(s.p50, 5);
  assert.equal(s.max, 10);
  assert.ok(Number.isNaN(summarize([]).p90));
  assert.equal(imbalance([10, 10, 10, 10]), 1);
  assert.equal(imbalance([40, 0, 0, 0]), 4);
});

test('load: Poisson arrivals have the right rate and exponential gaps; constant is even', () => {
  const a = arrivals({ type: 'poisson', stages: [{ rate: 50, duration: 200 }] }, 3);
  assert.ok(Math.abs(a.length / 200 - 50) < 50 * 0.05, `rate ${a.length / 200}`);
  const gaps = a.slice(1).map((x, i) => x.t - a[i].t);
  const mean = gaps.reduce((x, y) => x + y, 0) / gaps.length;
  const variance = gaps.reduce((x, y) => x + (y - mean) ** 2, 0) / gaps.length;
  assert.ok(Math.abs(mean - 0.02) < 0.002);
  assert.ok(Math.abs(Math.sqrt(variance) / mean - 1) < 0.1, 'coefficient of variation ~1 for exponential gaps');
  assert.deepEqual(arrivals({ type: 'poisson', stages: [{ rate: 5, duration: 10 }] }, 3), arrivals({ type: 'poisson', stages: [{ rate: 5, duration: 10 }] }, 3));
  const c = arrivals({ type: 'constant', stages: [{ rate: 2, duration: 3 }, { rate: 4, duration: 1 }] }, 0);
  assert.deepEqual(c.map((x) => [x.t, x.stage]), [[0, 0], [0.5, 0], [1, 0], [1.5, 0], [2, 0], [2.5, 0], [3, 1], [3.25, 1], [3.5, 1], [3.75, 1]]);
  assert.throws(() => arrivals({ type: 'constant', stages: [{ rate: 0, duration: 1 }] }, 0), /rate/);
});

test('ChainKeySet: membership and size as a Set of the same keys, through growth and colliding low words', () => {
  const keys = new ChainKeySet();
  const ref = new Set<number>();
  // Keys that share their low 32 bits probe the same slots; chainKey-like keys fill the table past several growths.
  const many = [1, 2 ** 32 + 1, 2 * 2 ** 32 + 1, 2 ** 52 + 7, ...Array.from({ length: 20_000 }, (_, i) => chainKey(i, [i, i + 1], 0, 2))];
  for (const k of many) {
    assert.equal(keys.has(k), ref.has(k));
    keys.add(k);
    ref.add(k);
    keys.add(k);
  }
  assert.equal(keys.size, ref.size);
  for (const k of many) assert.ok(keys.has(k));
  assert.equal(keys.has(3), false);
  assert.equal(keys.has(2 ** 32 + 2), false);
  assert.throws(() => keys.add(0), RangeError);
});
