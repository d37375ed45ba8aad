import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { describeKvBlockIndexSuite } from './index-suite.js';
import { InMemoryKvBlockIndex } from '../../src/index/memory-index.js';
import { ManualClock } from '../../src/util/clock.js';
import { InstrumentedKvBlockIndex } from '../../src/index/instrumented-index.js';
import { IndexMetrics, startMetricsBeat } from '../../src/index/metrics.js';
import { createKvBlockIndex, parseIntervalMs } from '../../src/index/factory.js';

const K = (...xs: (number | bigint)[]): BigUint64Array => BigUint64Array.from(xs.map((x) => BigInt(x)));

describeKvBlockIndexSuite('in-memory', () => new InMemoryKvBlockIndex());
describeKvBlockIndexSuite('in-memory via factory (tiny capacity pressure off)', () => createKvBlockIndex({ kvBlockIndexConfig: { inMemoryConfig: { size: 10_000 } } }));

describe('InMemoryKvBlockIndex specifics', () => {
  it('speculative reservations spread over many key-copy chunks expire exactly, with mixed TTLs', () => {
    const clock = new ManualClock(0);
    const x = new InMemoryKvBlockIndex({ clock });
    const keysOf = (i: number) => K(...Array.from({ length: 16 }, (_, j) => 1 + i * 16 + j));
    for (let i = 0; i < 2000; i++) x.addSpeculative(keysOf(i), i % 2 ? 'a' : 'b', i % 7 === 0 ? 10_000 : 100);
    assert.equal(x.stats().entries, 2000 * 16);
    clock.advance(200);
    const long = Array.from({ length: 2000 }, (_, i) => i).filter((i) => i % 7 === 0);
    assert.equal(x.stats().entries, long.length * 16);
    for (const i of [0, 7, 1001, 1995]) {
      const m = x.longestPrefix(keysOf(i));
      assert.deepEqual([...m].map(([p, v]) => [p, v.blocks]), i % 7 === 0 ? [[i % 2 ? 'a' : 'b', 16]] : []);
    }
    clock.advance(10_000);
    assert.equal(x.stats().entries, 0);
  });

  it('speculative entries of alternating pods are the same entries add() names, and survive clear()', () => {
    const clock = new ManualClock(0);
    const x = new InMemoryKvBlockIndex({ clock });
    // an explicit speculative add and the TTL-driven ones share one entry: one reference each
    x.add(null, K(1, 2), { pod: 'a', tier: 'GPU', speculative: true });
    for (let i = 0; i < 4; i++) {
      x.addSpeculative(K(1, 2), 'a', 100);
      x.addSpeculative(K(1), 'b', 100);
    }
    assert.equal(x.stats().entries, 3, 'a/spec on keys 1 and 2, b/spec on key 1');
    clock.advance(200);
    assert.deepEqual([...x.longestPrefix(K(1, 2))].map(([p, m]) => [p, m.blocks]), [['a', 2]], 'only the explicit reference is left');
    x.clear('a');
    x.clear('b');
    x.addSpeculative(K(3), 'b', 100);
    x.addSpeculative(K(3), 'a', 100);
    assert.deepEqual([...x.longestPrefix(K(3))].map(([p, m]) => [p, m.blocks]).sort(), [['a', 1], ['b', 1]]);
    clock.advance(200);
    assert.equal(x.stats().entries, 0);
  });

  it('stays within capacity, evicting least recently used keys first (second chance for used ones)', () => {
    const x = new InMemoryKvBlockIndex({ capacity: 100 });
    x.add(null, K(...Array.from({ length: 50 }, (_, i) => 1000 + i)), { pod: 'hot', tier: 'gpu' });
    for (let i = 0; i < 200; i++) {
      // keep the hot prefix in use while cold keys stream in
      if (i % 10 === 0) assert.equal(x.longestPrefix(K(...Array.from({ length: 50 }, (_, j) => 1000 + j))).get('hot')?.blocks, 50);
      x.add(null, K(5000 + i), { pod: 'cold', tier: 'gpu' });
      assert.ok(x.stats().entries <= 100, `entries ${x.stats().entries} > capacity`);
    }
    assert.equal(x.longestPrefix(K(...Array.from({ length: 50 }, (_, j) => 1000 + j))).get('hot')?.blocks, 50, 'hot prefix survived');
    assert.equal(x.longestPrefix(K(5000)).size, 0, 'oldest cold key evicted');
    assert.equal(x.longestPrefix(K(5199)).get('cold')?.blocks, 1, 'newest cold key kept');
    assert.ok(x.removals.capacityEvictions >= 100);
  });

  it('keeps engine mappings bounded when capacity evicts their request keys', () => {
    const x = new InMemoryKvBlockIndex({ capacity: 64 });
    for (let i = 0; i < 5000; i++) x.add(K(1_000_000 + i), K(i + 1), { pod: 'a', tier: 'gpu' });
    const st = x.stats();
    assert.ok(st.entries <= 64);
    assert.ok(st.engineKeys <= 4 * 64 + 1024 + 1, `engine map grew to ${st.engineKeys}`);
    assert.equal(x.getRequestKey(1_000_000n + 4999n, 'a'), 5000n);
  });

  it('agrees with a naive model under random operations', () => {
    const x = new InMemoryKvBlockIndex();
    // naive: key -> pod -> refcount (single tier)
    const naive = new Map<number, Map<string, number>>();
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const pods = ['a', 'b', 'c', 'd', 'e'];
    for (let step = 0; step < 20000; step++) {
      const pod = pods[rnd(pods.length)];
      const key = 1 + rnd(64);
      const op = rnd(10);
      if (op < 6) {
        x.add(null, K(key), { pod, tier: 'gpu' });
        const m = naive.get(key) ?? new Map();
        m.set(pod, (m.get(pod) ?? 0) + 1);
        naive.set(key, m);
      } else if (op < 9) {
        x.evict(BigInt(key), 'request', { pod, tier: 'gpu' });
        const m = naive.get(key);
        const n = m?.get(pod) ?? 0;
        if (n > 1) m!.set(pod, n - 1);
        else if (n === 1) m!.delete(pod);
      } else if (rnd(50) === 0) {
        x.clear(pod);
        for (const m of naive.values()) m.delete(pod);
      }
      if (step % 97 === 0) {
        const chain = Array.from({ length: 8 }, () => 1 + rnd(64));
        const got = x.longestPrefix(K(...chain));
        for (const p of pods) {
          let n = 0;
          while (n < chain.length && (naive.get(chain[n])?.get(p) ?? 0) > 0) n++;
          assert.equal(got.get(p)?.blocks ?? 0, n, `step ${step} pod ${p}`);
        }
      }
    }
    let entries = 0;
    for (const m of naive.values()) entries += m.size;
    assert.equal(x.stats().entries, entries);
  });

  it('speculative entries expire in due order across mixed TTLs, large and small expiry batches', () => {
    const x = new InMemoryKvBlockIndex();
    const held = (k: number) => x.longestPrefix(K(k), null).get('p')?.blocks === 1;
    // 1500 long-lived items interleaved with 1500 already-due ones (inserted before them in the queue)
    for (let i = 0; i < 3000; i++) x.addSpeculative(K(i + 1), 'p', i % 2 ? 0 : 3_600_000);
    for (let i = 0; i < 3000; i++) assert.equal(held(i + 1), i % 2 === 0, `key ${i + 1} after a 1500-item expiry`);
    // a small batch (the queue's head moves) then a large one (the queue is compacted)
    for (let i = 0; i < 100; i++) x.addSpeculative(K(10_000 + i), 'p', 0);
    assert.equal(held(10_000), false);
    for (let i = 0; i < 1200; i++) x.addSpeculative(K(20_000 + i), 'p', 0);
    assert.equal(held(20_000), false);
    x.addSpeculative(K(30_000), 'p', 3_600_000);
    x.addSpeculative(K(30_001), 'p', 0);
    assert.equal(held(30_001), false);
    for (let i = 0; i < 3000; i += 2) assert.ok(held(i + 1), `long-lived key ${i + 1} still held`);
    assert.ok(held(30_000));
    assert.equal(x.stats().keys, 1501);
    x.close();
  });

  it('exports Prometheus metrics and logs the metrics beat', async () => {
    const reg = new Registry();
    const metrics = new IndexMetrics(reg);
    const x = new InstrumentedKvBlockIndex(new InMemoryKvBlockIndex(), metrics);
    x.add(null, K(1, 2, 3), { pod: 'a', tier: 'gpu' });
    x.longestPrefix(K(1, 2, 9));
    x.evict(3n, 'request', { pod: 'a', tier: 'gpu' });
    const text = await reg.metrics();
    assert.match(text, /kvcache_index_admissions_total 3/);
    assert.match(text, /kvcache_index_evictions_total 1/);
    assert.match(text, /kvcache_index_lookup_requests_total 1/);
    assert.match(text, /kvcache_index_lookup_hits_total 2/);
    assert.match(text, /kvcache_index_lookup_latency_seconds_count 1/);
    assert.match(text, /kvcache_index_size_entries 2/);
    const lines: string[] = [];
    const logger = pino({}, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
    const stop = startMetricsBeat(logger, 20, metrics);
    await new Promise((r) => setTimeout(r, 70));
    stop();
    const beat = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'metrics beat');
    assert.ok(beat, 'metrics beat logged');
    assert.equal(beat.logger, 'metrics');
    assert.equal(beat.admissions, 3);
    assert.equal(beat.evictions, 1);
    assert.equal(beat.lookups, 1);
    assert.equal(beat.hits, 2);
    assert.equal(beat.latency_count, 1);
    assert.ok(beat.latency_sum > 0 && beat.latency_avg > 0);
  });

  it('factory: tier weights from kvCacheBackendConfigs, clear errors for bad config', async () => {
    const x = createKvBlockIndex({ kvCacheBackendConfigs: [{ name: 'GPU', weight: 1 }, { name: 'cpu', weight: 0.5 }] });
    await x.add(null, K(1, 2), { pod: 'a', tier: 'cpu' });
    assert.deepEqual((await x.longestPrefix(K(1, 2))).get('a'), { blocks: 2, weighted: 1 });
    assert.throws(() => createKvBlockIndex({ kvCacheBackendConfigs: [{ name: 'gpu', weight: -1 }] }), /kvCacheBackendConfigs/);
    assert.throws(() => createKvBlockIndex({ kvBlockIndexConfig: { inMemoryConfig: { size: 0 } } }), /capacity/);
    assert.equal(parseIntervalMs(60_000_000_000), 60_000);
    assert.equal(parseIntervalMs('1m0s'), 60_000);
    assert.equal(parseIntervalMs('500ms'), 500);
    assert.equal(parseIntervalMs(undefined), 60_000);
    assert.throws(() => parseIntervalMs('soon'), /metricsLoggingInterval: invalid duration/);
  });
});
