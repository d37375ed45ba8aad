// The shared KvBlockIndex semantics suite (test/index/index-suite.ts, also run against the
// in-memory index) on the Redis backend, directly and through the factory's redisConfig.
import { before, after } from 'node:test';
import { pino } from 'pino';
import { describeKvBlockIndexSuite } from '../index/index-suite.js';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { RedisKvBlockIndex } from '../../src/index/redis-index.js';
import { createKvBlockIndex } from '../../src/index/factory.js';

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
