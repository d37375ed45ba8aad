// The shared KvBlockIndex semantics suite (test/index/index-suite.ts, also run against the
// in-memory index) on the Redis backend, directly and through the factory's redisConfig.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { describeKvBlockIndexSuite } from '../index/index-suite.js';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { RedisKvBlockIndex } from '../../src/index/redis-index.js';
import { createKvBlockIndex } from '../../src/index/factory.js';
import { InstrumentedKvBlockIndex } from '../../src/index/instrumented-index.js';
import type { ResyncInfo } from '../../src/index/redis/connection.js';

let redis: RedisServerHandle;
before(async () => { redis = await startRedisServer(); });
after(async () => { await redis?.stop(); });

let n = 0;
const silent = pino({ level: 'silent' });
describeKvBlockIndexSuite('redis', () => RedisKvBlockIndex.connect({ address: redis.url, keyPrefix: `suite${n++}:`, lookupTimeoutMs: 5000 }, { logger: silent }));
describeKvBlockIndexSuite('valkey:// via factory redisConfig', () =>
  createKvBlockIndex({ kvBlockIndexConfig: { redisConfig: { address: redis.url.replace('redis://', 'valkey://'), keyPrefix: `factory${n++}:`, lookupTimeoutMs: 5000 } } }, { logger: silent }));
describeKvBlockIndexSuite('via factory valkeyConfig (llm-d\'s older name)', () =>
  createKvBlockIndex({ kvBlockIndexConfig: { valkeyConfig: { address: redis.url, keyPrefix: `valkey${n++}:`, lookupTimeoutMs: 5000 } } }, { logger: silent }));
describeKvBlockIndexSuite('via factory with enableMetrics (InstrumentedKvBlockIndex)', () =>
  createKvBlockIndex({ kvBlockIndexConfig: { enableMetrics: true, redisConfig: { address: redis.url, keyPrefix: `metrics${n++}:`, lookupTimeoutMs: 5000 } } }, { logger: silent, registry: new Registry() }));

const K = (...xs: number[]): BigUint64Array => BigUint64Array.from(xs.map((x) => BigInt(x)));

test('Redis metrics come from the instrumented wrapper; its removals and events pass through', async () => {
  const registry = new Registry();
  const idx = createKvBlockIndex({ kvBlockIndexConfig: { enableMetrics: true, redisConfig: { address: redis.url, keyPrefix: `wrapped${n++}:`, lookupTimeoutMs: 5000 } } }, { logger: silent, registry });
  assert.ok(idx instanceof InstrumentedKvBlockIndex, 'the factory wraps the Redis backend');
  const backend = idx.backend;
  assert.ok(backend instanceof RedisKvBlockIndex);
  try {
    await idx.add(null, K(1, 2, 3), { pod: 'a', tier: 'gpu' });
    const m = await idx.longestPrefix(K(1, 2, 9));
    assert.deepEqual(m.get('a'), { blocks: 2, weighted: 2 });
    await idx.evict(3n, 'request', { pod: 'a', tier: 'gpu' });
    await backend.flush();
    const text = await registry.metrics();
    assert.match(text, /kvcache_index_admissions_total 3/);
    assert.match(text, /kvcache_index_evictions_total 1/, 'removals Redis reports reach the wrapper');
    assert.match(text, /kvcache_index_lookup_requests_total 1/);
    assert.match(text, /kvcache_index_lookup_hits_total 2/);
    assert.match(text, /kvcache_index_lookup_latency_seconds_count 1/);
    assert.match(text, /kvcache_index_size_entries 2/);

    // the event subscriber listens by duck typing on whatever index it is given
    const seen: ResyncInfo[] = [];
    const fn = (info: ResyncInfo) => seen.push(info);
    idx.on('resync-needed', fn);
    backend.emit('resync-needed', { reason: 'writes-lost', pods: ['a'] });
    idx.off('resync-needed', fn);
    backend.emit('resync-needed', { reason: 'data-lost' });
    assert.deepEqual(seen, [{ reason: 'writes-lost', pods: ['a'] }]);
  } finally {
    await backend.destroyAll();
    await idx.close();
  }
});
