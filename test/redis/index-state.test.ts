// Redis blips must wipe nothing that was not lost (issue 13): a paused Redis, or one restarted
// with its data, keeps every pod's blocks; writes that were really lost are rebuilt for their
// pods only, by vLLM replay; a Redis that lost its dataset gets every pod replayed.
// Real redis-server, real ZeroMQ (central mode: the pods connect to the router's SUB).
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { RedisKvBlockIndex } from '../../src/index/redis-index.js';
import { BlockKeyer } from '../../src/index/keys.js';
import { KvEventSubscriber } from '../../src/events/subscriber.js';
import type { ResyncInfo } from '../../src/index/redis/connection.js';
import { FakeVllm, until } from '../events/fake-vllm.js';
import { blockStored, encodeEventBatch, seqFrame } from '../events/msgspec-encoder.js';

const silent = pino({ level: 'silent' });
const MODEL = 'm';
const toks = (n: number, base: number) => Array.from({ length: n }, (_, i) => base + i);

let redis: RedisServerHandle;
before(async () => {
  redis = await startRedisServer();
});
after(async () => {
  await redis?.stop();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  redis.resume();
  while (cleanups.length) await cleanups.pop()!();
});

let prefixSeq = 0;

async function setup() {
  const registry = new Registry();
  const index = await RedisKvBlockIndex.connect(
    { address: redis.url, keyPrefix: `state${prefixSeq++}:`, lookupTimeoutMs: 100, writeTimeoutMs: 300, probeIntervalMs: 50 },
    { logger: silent, registry },
  );
  const keyer = new BlockKeyer({ blockSize: 16, hashSeed: '', algorithm: 'cbor-fnv' });
  const sub = new KvEventSubscriber({ index, keyer, logger: silent, registry, bindEndpoint: 'tcp://127.0.0.1:0', replay: { idleTimeoutMs: 1000, cooldownMs: 0 } });
  await sub.start();
  cleanups.push(async () => {
    await sub.close();
    await index.destroyAll().catch(() => {});
    await index.close();
  });
  const resyncs: ResyncInfo[] = [];
  index.on('resync-needed', (i) => resyncs.push(i));
  const pods: Record<string, { f: FakeVllm; t: number[]; n: number }> = {};
  const addPod = async (name: string, base: number) => {
    const f = new FakeVllm(`kv@${name}@${MODEL}`);
    cleanups.push(() => f.close());
    sub.knowPod(name, await f.startReplay());
    f.connect(sub.boundEndpoint!);
    pods[name] = { f, t: toks(16 * 10, base), n: 0 };
    // slow joiner: publish empty batches until one arrives
    const before = sub.metrics.totals.messages;
    for (let i = 0; i < 500 && sub.metrics.totals.messages === before; i++) {
      await f.pub.send([`kv@${name}@warmup`, seqFrame(0), encodeEventBatch(1.5, [], 0)]);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  /** Publishes the pod's next block (seq = block index). */
  const store = async (name: string) => {
    const p = pods[name];
    const i = p.n++;
    await p.f.publish(encodeEventBatch(1.5, [blockStored({ blockHashes: [BigInt(i + 1)], parentBlockHash: i ? BigInt(i) : null, tokenIds: p.t.slice(16 * i, 16 * i + 16), blockSize: 16 })], 0));
  };
  const matched = async (name: string) => (await index.longestPrefix(keyer.keys(pods[name].t, { model: MODEL }))).get(name)?.blocks ?? 0;
  const settled = async (name: string, n: number, what: string) => until(async () => (await sub.flush(), await index.flush(), (await matched(name)) === n), what, 10_000);
  return { index, sub, resyncs, addPod, store, matched, settled };
}

describe('index state across Redis blips', () => {
  it('a Redis paused for 4 s wipes nothing; a write lost meanwhile is rebuilt for its pod only, by replay', async () => {
    const { index, resyncs, addPod, store, matched, settled } = await setup();
    await addPod('10.0.0.1:8000', 1000);
    await addPod('10.0.0.2:8000', 5000);
    for (let i = 0; i < 6; i++) {
      await store('10.0.0.1:8000');
      await store('10.0.0.2:8000');
    }
    await settled('10.0.0.1:8000', 6, 'pod 1 indexed');
    await settled('10.0.0.2:8000', 6, 'pod 2 indexed');

    redis.pause();
    const pausedAt = Date.now();
    assert.equal(await matched('10.0.0.1:8000'), 0, 'a paused Redis answers no lookups');
    // pod 1 stores a block: the write times out (Redis may still apply it), later ones are dropped
    await store('10.0.0.1:8000');
    await until(() => !index.available, 'write timeout marks Redis down');
    await store('10.0.0.1:8000');
    await new Promise((r) => setTimeout(r, Math.max(0, 4000 - (Date.now() - pausedAt))));
    redis.resume();

    await until(() => index.available, 'Redis back', 10_000);
    await settled('10.0.0.1:8000', 8, 'pod 1 rebuilt with the blocks stored during the pause');
    assert.equal(await matched('10.0.0.2:8000'), 6, 'pod 2 kept its blocks');
    assert.deepEqual(resyncs.map((r) => [r.reason, r.pods]), [['writes-lost', ['10.0.0.1:8000']]], 'only the pod whose writes were lost');
  });

  it('a Redis paused with nothing written meanwhile announces nothing and keeps every block', async () => {
    const { index, resyncs, addPod, store, matched, settled } = await setup();
    await addPod('10.0.0.3:8000', 9000);
    for (let i = 0; i < 6; i++) await store('10.0.0.3:8000');
    await settled('10.0.0.3:8000', 6, 'indexed');
    redis.pause();
    // a lookup that times out, then a sweep that does: Redis is marked down (a periodic sweep
    // already under way makes sweep() return at once, so sweep until one has run)
    assert.equal(await matched('10.0.0.3:8000'), 0);
    await until(async () => (await index.sweep(), !index.available), 'a sweep against the paused Redis marks it down', 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    redis.resume();
    await until(() => index.available, 'Redis back', 10_000);
    await settled('10.0.0.3:8000', 6, 'blocks still there');
    // the recovery check has run by the time a lookup answers again; give a late emit a chance
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(resyncs.length, 0);
  });

  it('a Redis restarted with its data keeps every block; one restarted empty gets every pod replayed', async () => {
    const { index, resyncs, addPod, store, settled } = await setup();
    await addPod('10.0.0.4:8000', 12000);
    for (let i = 0; i < 6; i++) await store('10.0.0.4:8000');
    await settled('10.0.0.4:8000', 6, 'indexed');

    // restart with data: SAVE, kill, start (the server reloads dump.rdb from its dir)
    await index.client.save();
    await redis.kill();
    await until(() => !index.available, 'Redis down');
    await redis.start();
    await until(() => index.available, 'Redis back', 10_000);
    await settled('10.0.0.4:8000', 6, 'blocks kept across a restart with data');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(resyncs.length, 0, 'nothing was lost: no resync');

    // restart without data: every pod this router feeds is rebuilt from its replay buffer
    await index.client.flushall(); // no dump left to reload
    await index.client.save();
    await redis.kill();
    await redis.start();
    await until(() => resyncs.length > 0, 'resync asked', 10_000);
    assert.equal(resyncs[0].reason, 'restarted');
    assert.equal(resyncs[0].pods, undefined, 'every pod');
    await settled('10.0.0.4:8000', 6, 'pod replayed into the empty Redis');
  });
});
