// Redis-specific behaviour of RedisKvBlockIndex on a real redis-server: one round trip per
// lookup, batched ordered writes, prefixes, replicas sharing state and speculative TTLs,
// and outages (server killed, server hung) that never throw and end in 'resync-needed'.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { RedisKvBlockIndex, type RedisIndexConfig } from '../../src/index/redis-index.js';
import { normalizeRedisAddress } from '../../src/index/redis/connection.js';
import { keysToHex, hexToKey } from '../../src/index/redis/layout.js';

let redis: RedisServerHandle;
before(async () => { redis = await startRedisServer(); });
after(async () => { await redis?.stop(); });

const silent = pino({ level: 'silent' });
const keys = (from: number, n: number) => BigUint64Array.from({ length: n }, (_, i) => BigInt(from + i) * 0x9e3779b97f4a7c15n & 0xffffffffffffffffn);
let prefixSeq = 0;
// Semantic tests get a generous lookup budget (CI machines are loaded); outage tests set 50 ms.
const SLOW_OK = { lookupTimeoutMs: 5000 };
const open = (cfg: RedisIndexConfig = {}, logger: Logger = silent, registry?: Registry) =>
  RedisKvBlockIndex.connect({ address: redis.url, keyPrefix: `t${prefixSeq++}:`, ...SLOW_OK, ...cfg }, { logger, registry });

/** Counts the commands the index's client writes to the socket. */
function countCommands(idx: RedisKvBlockIndex): { names: string[]; stop(): void } {
  const client = idx.client as unknown as { sendCommand(cmd: { name: string }, ...rest: unknown[]): unknown };
  const orig = client.sendCommand;
  const names: string[] = [];
  client.sendCommand = function (this: unknown, cmd: { name: string }, ...rest: unknown[]) {
    names.push(cmd.name);
    return orig.call(this, cmd, ...rest);
  };
  return { names, stop: () => { client.sendCommand = orig; } };
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((s, v) => s + v.value, 0);
}

function captureLogs(): { logger: Logger; lines: { level: number; msg: string; reason?: string }[] } {
  const lines: { level: number; msg: string; reason?: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s)); } });
  return { logger, lines };
}

test('addresses: valkey:// and valkeys:// become redis:// and rediss://, host:port gets a scheme', () => {
  assert.equal(normalizeRedisAddress('valkey://10.0.0.5:6379/2'), 'redis://10.0.0.5:6379/2');
  assert.equal(normalizeRedisAddress('valkeys://cache:6380'), 'rediss://cache:6380');
  assert.equal(normalizeRedisAddress('redis://127.0.0.1:6379'), 'redis://127.0.0.1:6379');
  assert.equal(normalizeRedisAddress('127.0.0.1:7000'), 'redis://127.0.0.1:7000');
  assert.equal(normalizeRedisAddress(undefined), 'redis://127.0.0.1:6379');
  assert.throws(() => normalizeRedisAddress('http://x:1'), /unsupported Redis address scheme/);
});

test('key hex encoding round-trips full 64-bit keys', () => {
  const k = BigUint64Array.from([0n, 1n, 0xffffffffffffffffn, 0x0123456789abcdefn]);
  const hex = keysToHex(k);
  assert.equal(hex, '0000000000000000' + '0000000000000001' + 'ffffffffffffffff' + '0123456789abcdef');
  for (let i = 0; i < k.length; i++) assert.equal(hexToKey(hex.slice(16 * i, 16 * i + 16)), k[i]);
});

test('a valkey:// address works, and a lookup is one command whatever the prompt length', async () => {
  const idx = await RedisKvBlockIndex.connect({ address: redis.url.replace('redis://', 'valkey://'), keyPrefix: 'rt:', sweepIntervalMs: 60_000, ...SLOW_OK }, { logger: silent });
  try {
    const chain = keys(1, 512);
    for (let p = 0; p < 8; p++) idx.add(null, chain.subarray(0, 64 * (p + 1)), { pod: `10.0.0.${p}:8000`, tier: p % 2 ? 'cpu' : 'gpu' });
    await idx.flush();
    for (const n of [1, 16, 512]) {
      const spy = countCommands(idx);
      const res = await idx.longestPrefix(chain.subarray(0, n));
      spy.stop();
      assert.deepEqual(spy.names, ['evalsha'], `prompt of ${n} blocks`);
      assert.equal(res.size, 8);
      let w = 0;
      for (let i = 0; i < n; i++) w += 0.8; // summed block by block, as the in-memory index does
      assert.deepEqual(res.get('10.0.0.7:8000'), { blocks: n, weighted: w });
      assert.deepEqual(res.get('10.0.0.0:8000'), { blocks: Math.min(n, 64), weighted: Math.min(n, 64) });
    }
  } finally {
    await idx.destroyAll();
    await idx.close();
  }
});

test('writes made in one tick go out as one ordered batch; lookups and getRequestKey see pending writes', async () => {
  const idx = await open({ sweepIntervalMs: 60_000 }); // no sweep calls among the counted commands
  try {
    const spy = countCommands(idx);
    const entry = { pod: 'a:1', tier: 'gpu' };
    for (let i = 0; i < 1000; i++) idx.add(BigUint64Array.of(BigInt(50_000 + i)), keys(i, 1), entry);
    // order matters: add, evict, add leaves one reference; the final evict removes it
    const k = keys(5000, 1);
    idx.add(null, k, { pod: 'b:1', tier: 'gpu' });
    idx.evict(k[0], 'request', { pod: 'b:1', tier: 'gpu' });
    idx.add(null, k, { pod: 'b:1', tier: 'gpu' });
    // no pod: not answered from the local cache, so this read goes to Redis behind the batch
    assert.equal(await idx.getRequestKey(50_999n), keys(999, 1)[0]);
    assert.deepEqual(await idx.longestPrefix(k), new Map([['b:1', { blocks: 1, weighted: 1 }]]));
    spy.stop();
    assert.equal(spy.names.filter((n) => n === 'evalsha').length, 3, `commands: ${spy.names.join(',')}`);
    assert.equal(spy.names[0], 'evalsha');
    idx.evict(k[0], 'request', { pod: 'b:1', tier: 'gpu' });
    assert.deepEqual(await idx.longestPrefix(k), new Map());
    assert.deepEqual(await idx.stats(), { keys: 1000, entries: 1000, engineKeys: 1000, capacity: Infinity });
  } finally {
    await idx.destroyAll();
    await idx.close();
  }
});

test('a large burst is split into bounded batches and all of it lands', async () => {
  const idx = await open({ maxBatchBlocks: 256, sweepIntervalMs: 60_000 });
  try {
    const spy = countCommands(idx);
    for (let i = 0; i < 4000; i++) idx.add(null, keys(i * 4, 4), { pod: `p${i % 4}:1`, tier: 'gpu' });
    await idx.flush();
    spy.stop();
    const batches = spy.names.filter((n) => n === 'evalsha').length;
    assert.ok(batches >= 16000 / 256 && batches <= 16000 / 256 + 2, `batches: ${batches}`);
    assert.equal((await idx.stats()).entries, 16000);
  } finally {
    await idx.destroyAll();
    await idx.close();
  }
});

test('key prefixes keep indexes on one server apart', async () => {
  const a = await open();
  const b = await open();
  try {
    a.add(BigUint64Array.of(7n), keys(1, 3), { pod: 'a:1', tier: 'gpu' });
    await a.flush();
    assert.equal((await a.longestPrefix(keys(1, 3))).get('a:1')?.blocks, 3);
    assert.equal((await b.longestPrefix(keys(1, 3))).size, 0);
    assert.equal(await b.getRequestKey(7n), undefined);
    b.clear('a:1');
    await b.flush();
    assert.equal((await a.longestPrefix(keys(1, 3))).get('a:1')?.blocks, 3);
    await b.destroyAll();
    assert.equal((await a.stats()).entries, 3);
  } finally {
    await a.destroyAll();
    await a.close();
    await b.close();
  }
});

test('replicas on one prefix see each other\'s writes and share speculative entries and their TTL', async () => {
  const prefix = `shared${prefixSeq++}:`;
  const a = await RedisKvBlockIndex.connect({ address: redis.url, keyPrefix: prefix, sweepIntervalMs: 5000, ...SLOW_OK }, { logger: silent });
  const b = await RedisKvBlockIndex.connect({ address: redis.url, keyPrefix: prefix, sweepIntervalMs: 5000, ...SLOW_OK }, { logger: silent });
  try {
    const chain = keys(100, 8);
    a.add(BigUint64Array.of(11n, 12n), chain.subarray(0, 2), { pod: 'x:1', tier: 'gpu' });
    await a.flush();
    assert.deepEqual(await b.longestPrefix(chain), new Map([['x:1', { blocks: 2, weighted: 2 }]]));
    assert.equal(await b.getRequestKey(12n, 'x:1'), chain[1]);
    // a burst routed by replica a reserves pod y:1; replica b scores it before any event
    a.addSpeculative(chain, 'y:1', 300);
    await a.flush();
    assert.deepEqual((await b.longestPrefix(chain)).get('y:1'), { blocks: 8, weighted: 8 });
    // b's engine evict of x's block is seen by a
    b.evict(11n, 'engine', { pod: 'x:1', tier: 'gpu' });
    await b.flush();
    assert.equal((await a.longestPrefix(chain)).has('x:1'), false);
    await new Promise((r) => setTimeout(r, 400));
    // expired on the server clock: neither replica sees it (b never swept; its lookup expires it)
    assert.equal((await b.longestPrefix(chain)).has('y:1'), false);
    assert.equal((await a.longestPrefix(chain)).has('y:1'), false);
    assert.deepEqual(await a.stats(), { keys: 1, entries: 1, engineKeys: 1, capacity: Infinity });
  } finally {
    await a.destroyAll();
    await a.close();
    await b.close();
  }
});

test('speculative entries expire at their deadlines without lookups, and clear() voids pending expiries', async () => {
  const idx = await open({ sweepIntervalMs: 60_000 }); // only the per-deadline timer runs
  try {
    // Deadlines run on the Redis server's clock, so the test waits in real time: the short TTL
    // is polled for (no fixed pause a loaded machine could outrun) and the long one is far
    // enough away (5 s) that "it stays" holds however slow the poll.
    idx.addSpeculative(keys(1, 4), 's:1', 100);
    idx.addSpeculative(keys(101, 2), 't:1', 5000);
    await idx.flush();
    assert.equal((await idx.stats()).entries, 6);
    for (let i = 0; i < 500 && (await idx.stats()).entries !== 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await idx.stats()).entries, 2, 'the 100 ms reservation is gone, the 5 s one stays');
    for (let i = 0; i < 1000 && (await idx.stats()).entries !== 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await idx.stats()).entries, 0);
    // clear then re-reserve: the first reservation's expiry must not remove the second one
    idx.addSpeculative(keys(1, 2), 's:1', 100);
    idx.clear('s:1');
    idx.addSpeculative(keys(1, 2), 's:1', 60_000);
    await new Promise((r) => setTimeout(r, 250));
    assert.deepEqual(await idx.longestPrefix(keys(1, 4)), new Map([['s:1', { blocks: 2, weighted: 2 }]]));
  } finally {
    await idx.destroyAll();
    await idx.close();
  }
});

test('bad pod ids and tiers are dropped and counted, never thrown', async () => {
  const registry = new Registry();
  const idx = await open({}, silent, registry);
  try {
    idx.add(null, keys(1, 2), { pod: 'tab\tpod', tier: 'gpu' });
    idx.add(null, keys(1, 2), { pod: 'ok:1', tier: 'a,b' });
    idx.addSpeculative(keys(1, 2), 'bad\npod', 1000);
    await idx.flush();
    assert.equal((await idx.stats()).entries, 0);
    assert.equal(await metricValue(registry, 'kvrouter_index_redis_writes_dropped_total', { reason: 'invalid' }), 3);
  } finally {
    await idx.close();
  }
});

test('Redis killed: lookups return empty at once, writes are dropped and counted, one log line, resync-needed on restart', async () => {
  const own = await startRedisServer();
  const registry = new Registry();
  const { logger, lines } = captureLogs();
  const idx = await RedisKvBlockIndex.connect({ address: own.url, lookupTimeoutMs: 50, probeIntervalMs: 50 }, { logger, registry });
  try {
    const chain = keys(1, 16);
    idx.add(null, chain, { pod: 'a:1', tier: 'gpu' });
    assert.equal((await idx.longestPrefix(chain)).get('a:1')?.blocks, 16);
    const resync = once(idx, 'resync-needed');
    await own.kill();
    for (let i = 0; i < 20; i++) {
      const res = await idx.longestPrefix(chain);
      assert.equal(res.size, 0);
      // "At once" causally: no lookup waited out its 50 ms budget (none is counted as a timeout).
      assert.equal(await metricValue(registry, 'kvrouter_index_redis_lookup_failures_total', { reason: 'timeout' }), 0, `lookup ${i} waited for its budget`);
      idx.add(null, chain, { pod: 'b:1', tier: 'gpu' });
      assert.equal(await idx.getRequestKey(5n), undefined);
      await new Promise((r) => setTimeout(r, 5));
    }
    await idx.flush();
    assert.equal(idx.available, false);
    assert.ok((await metricValue(registry, 'kvrouter_index_redis_lookup_failures_total')) >= 20);
    assert.ok((await metricValue(registry, 'kvrouter_index_redis_writes_dropped_total')) >= 16 * 20);
    assert.equal(await metricValue(registry, 'kvrouter_index_redis_up'), 0);
    assert.equal(lines.filter((l) => /redis index unavailable/.test(l.msg)).length, 1, JSON.stringify(lines));
    await own.start();
    const [info] = (await Promise.race([resync, new Promise((_, rej) => setTimeout(() => rej(new Error('no resync-needed within 5 s')), 5000))])) as [{ reason: string }];
    assert.equal(info.reason, 'restarted');
    assert.equal(idx.available, true);
    assert.equal(await metricValue(registry, 'kvrouter_index_redis_up'), 1);
    assert.equal(await metricValue(registry, 'kvrouter_index_redis_resyncs_total'), 1);
    // the event layer replays into the fresh server
    idx.add(null, chain, { pod: 'a:1', tier: 'gpu' });
    assert.equal((await idx.longestPrefix(chain)).get('a:1')?.blocks, 16);
  } finally {
    await idx.close();
    await own.stop();
  }
});

test('Redis hung: a lookup gives up at its budget, later ones short-circuit, and resync-needed follows lost writes', async () => {
  const own = await startRedisServer();
  const registry = new Registry();
  const idx = await RedisKvBlockIndex.connect({ address: own.url, lookupTimeoutMs: 50, writeTimeoutMs: 150, probeIntervalMs: 50 }, { logger: silent, registry });
  try {
    const chain = keys(1, 8);
    idx.add(null, chain, { pod: 'a:1', tier: 'gpu' });
    await idx.flush();
    const resync = once(idx, 'resync-needed');
    own.pause();
    const t0 = performance.now();
    assert.equal((await idx.longestPrefix(chain)).size, 0);
    const first = performance.now() - t0;
    // A lower bound only (a timer never fires early); the cause is checked by the counters.
    assert.ok(first >= 45, `first lookup gave up after ${first} ms, before its 50 ms budget`);
    assert.equal(await metricValue(registry, 'kvrouter_index_redis_lookup_failures_total', { reason: 'timeout' }), 1, 'the first lookup ran out of its budget');
    assert.equal((await idx.longestPrefix(chain)).size, 0);
    // The second one short-circuits instead of waiting: counted as unavailable, not as a second timeout.
    assert.equal(await metricValue(registry, 'kvrouter_index_redis_lookup_failures_total', { reason: 'timeout' }), 1, 'second lookup should not wait');
    assert.equal(await metricValue(registry, 'kvrouter_index_redis_lookup_failures_total', { reason: 'unavailable' }), 1, 'second lookup short-circuits');
    // writes are still tried; this one times out (150 ms) and marks Redis down
    idx.add(null, chain, { pod: 'b:1', tier: 'gpu' });
    await idx.flush();
    assert.equal(idx.available, false);
    idx.add(null, chain, { pod: 'c:1', tier: 'gpu' }); // dropped at once now
    await idx.flush();
    assert.equal(await metricValue(registry, 'kvrouter_index_redis_lookup_failures_total', { reason: 'timeout' }), 1);
    assert.equal(await metricValue(registry, 'kvrouter_index_redis_writes_dropped_total', { reason: 'timeout' }), 8);
    assert.equal(await metricValue(registry, 'kvrouter_index_redis_writes_dropped_total', { reason: 'unavailable' }), 8);
    own.resume();
    const [info] = (await Promise.race([resync, new Promise((_, rej) => setTimeout(() => rej(new Error('no resync-needed within 5 s')), 5000))])) as [{ reason: string }];
    assert.equal(info.reason, 'writes-lost');
    assert.equal((await idx.longestPrefix(chain)).get('a:1')?.blocks, 8, 'data written before the stall is still there');
  } finally {
    await idx.close();
    await own.stop();
  }
});

test('an index created before Redis answers buffers its first writes instead of dropping them', async () => {
  const idx = new RedisKvBlockIndex({ address: redis.url, keyPrefix: `early${prefixSeq++}:`, ...SLOW_OK }, { logger: silent });
  try {
    idx.add(null, keys(1, 3), { pod: 'a:1', tier: 'gpu' });
    assert.equal((await idx.longestPrefix(keys(1, 3))).get('a:1')?.blocks, 3);
  } finally {
    await idx.destroyAll();
    await idx.close();
  }
});

test('an index whose Redis never answers degrades instead of failing', async () => {
  const own = await startRedisServer();
  const url = own.url;
  await own.stop();
  const idx = await RedisKvBlockIndex.connect({ address: url, connectTimeoutMs: 200 }, { logger: silent }, 300);
  try {
    assert.equal(idx.available, false);
    idx.add(null, keys(1, 3), { pod: 'a:1', tier: 'gpu' });
    assert.equal((await idx.longestPrefix(keys(1, 3))).size, 0);
    assert.deepEqual(await idx.stats(), { keys: 0, entries: 0, engineKeys: 0, capacity: Infinity });
  } finally {
    await idx.close();
  }
});

test('Redis at maxmemory (noeviction): refused writes are dropped and counted, Redis is not treated as down', async () => {
  const own = await startRedisServer({ args: ['--maxmemory', '3mb', '--maxmemory-policy', 'noeviction'] });
  const registry = new Registry();
  const { logger, lines } = captureLogs();
  const idx = await RedisKvBlockIndex.connect({ address: own.url, ...SLOW_OK }, { logger, registry });
  try {
    const first = keys(1, 8);
    idx.add(null, first, { pod: 'a:1', tier: 'gpu' });
    await idx.flush();
    // fill memory until Redis refuses
    for (let i = 0; i < 200 && (await metricValue(registry, 'kvrouter_index_redis_writes_dropped_total', { reason: 'rejected' })) === 0; i++) {
      for (let j = 0; j < 20; j++) idx.add(null, keys(10_000 + (i * 20 + j) * 64, 64), { pod: 'b:1', tier: 'gpu' });
      await idx.flush();
    }
    assert.ok((await metricValue(registry, 'kvrouter_index_redis_writes_dropped_total', { reason: 'rejected' })) > 0, 'Redis never refused a write');
    assert.equal(idx.available, true);
    assert.equal((await idx.longestPrefix(first)).get('a:1')?.blocks, 8, 'lookups still answer');
    assert.equal(lines.filter((l) => /refused a call/.test(l.msg)).length, 1);
    assert.equal(lines.filter((l) => /unavailable/.test(l.msg)).length, 0);
  } finally {
    await idx.close();
    await own.stop();
  }
});
