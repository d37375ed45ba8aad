// Real ZeroMQ sockets on loopback: PUB publishers writing vLLM's exact bytes, a central
// (binding) and a dialing subscriber, and vLLM-style replay ROUTERs.
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Publisher } from 'zeromq';
import { KvEventSubscriber, type SubscriberOptions } from '../../src/events/subscriber.js';
import { blockStored, encodeEventBatch, seqFrame } from './msgspec-encoder.js';
import { decodeEventBatch } from '../../src/events/decode.js';
import type { KvEvent } from '../../src/events/types.js';
import { InMemoryKvBlockIndex } from '../../src/index/memory-index.js';
import { BlockKeyer } from '../../src/index/keys.js';
import { FakeVllm, until, type ReplayLayout } from './fake-vllm.js';
import { FIXTURE_A, FIXTURE_B, FIXTURE_C, FIXTURE_D } from './fixtures.js';

const silent = pino({ level: 'silent' });
const MODEL = 'meta-llama/Llama-3.1-8B@main';
const T16 = Array.from({ length: 16 }, (_, i) => i + 1);
const toks = (n: number, base = 1000) => Array.from({ length: n }, (_, i) => base + i);
const payload = (events: KvEvent[], rank: number | null = 0) => encodeEventBatch(Date.now() / 1000, events, rank);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function make(extra: Partial<SubscriberOptions> = {}) {
  const index = new InMemoryKvBlockIndex();
  const keyer = new BlockKeyer({ blockSize: 16, hashSeed: '', algorithm: 'cbor-fnv' });
  const registry = new Registry();
  const sub = new KvEventSubscriber({ index, keyer, logger: silent, registry, ...extra });
  cleanups.push(() => sub.close());
  const blocks = (pod: string, tokens: number[], model = MODEL) => index.longestPrefix(keyer.keys(tokens, { model })).get(pod)?.blocks ?? 0;
  return { index, keyer, sub, registry, blocks };
}

async function fake(topic: string, layout: ReplayLayout = 'new'): Promise<FakeVllm> {
  const f = new FakeVllm(topic, layout);
  cleanups.push(() => f.close());
  return f;
}

/** Sends probe messages until the subscription has reached the publisher (ZMQ slow joiner). */
async function warmUp(pub: Publisher, sub: KvEventSubscriber): Promise<void> {
  const before = sub.metrics.totals.messages;
  for (let i = 0; i < 500 && sub.metrics.totals.messages === before; i++) {
    await pub.send(['kv@warmup@probe', seqFrame(0), payload([])]);
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(sub.metrics.totals.messages > before, 'subscription never reached the publisher');
  await sub.flush();
}

describe('KvEventSubscriber over ZeroMQ', () => {
  it('central mode: binds, pods connect and publish vLLM bytes A-D; topics keep models with "@"', async () => {
    const { sub, blocks, index } = make({ bindEndpoint: 'tcp://127.0.0.1:0' });
    await sub.start();
    assert.match(sub.boundEndpoint!, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    const a = await fake(`kv@10.0.0.1:8000@${MODEL}`);
    const b = await fake(`kv@10.0.0.2:8000@${MODEL}`);
    a.connect(sub.boundEndpoint!);
    b.connect(sub.boundEndpoint!);
    await warmUp(a.pub, sub);
    await warmUp(b.pub, sub);
    await a.publish(FIXTURE_B); // 12-element legacy: tokens 1..16
    await b.publish(FIXTURE_C); // map form of the same block
    await until(async () => (await sub.flush(), blocks('10.0.0.1:8000', T16) === 1 && blocks('10.0.0.2:8000', T16) === 1), 'both pods indexed');
    await b.publish(FIXTURE_D); // batch-as-map: BlockRemoved (unknown hash, no-op) + AllBlocksCleared
    await until(async () => (await sub.flush(), blocks('10.0.0.2:8000', T16) === 0), 'pod b cleared');
    assert.equal(blocks('10.0.0.1:8000', T16), 1, 'pod a untouched');
    // A carries rank 1: pod 10.0.0.1:8000 rank 1 is 10.0.0.1:8001; block size 2 < 16 indexes nothing
    await a.publish(FIXTURE_A);
    await until(async () => (await sub.flush(), sub.streamState().some((s) => s.pod === '10.0.0.1:8001')), 'rank-1 stream');
    const st = sub.streamState().find((s) => s.pod === '10.0.0.1:8000');
    assert.equal(st?.model, MODEL);
    assert.equal(sub.metrics.totals.decodeErrors, 0);
    assert.equal(index.stats().entries, 1);
  });

  it('discovery mode: dials each pod; removePod forgets it', async () => {
    const { sub, blocks } = make();
    await sub.start();
    const a = await fake(`kv@127.0.0.1:9001@${MODEL}`);
    await a.bind();
    sub.addPod('127.0.0.1:9001', a.pubEndpoint);
    await warmUp(a.pub, sub);
    const t = toks(48);
    await a.publish(payload([blockStored({ blockHashes: [1n, 2n, 3n], tokenIds: t, blockSize: 16 })]));
    await until(async () => (await sub.flush(), blocks('127.0.0.1:9001', t) === 3), 'indexed via dial');
    sub.removePod('127.0.0.1:9001');
    await sub.flush();
    assert.equal(blocks('127.0.0.1:9001', t), 0);
  });

  for (const layout of ['old', 'new'] as const) {
    it(`recovers a seq gap by replay from vLLM's ROUTER (${layout} reply layout)`, async () => {
      const a = await fake(`kv@127.0.0.1:9100@${MODEL}`, layout);
      await a.bind();
      const replayEp = await a.startReplay();
      const { sub, blocks, registry } = make({ replay: { idleTimeoutMs: 1000 } });
      await sub.start();
      sub.addPod('127.0.0.1:9100', a.pubEndpoint, replayEp);
      await warmUp(a.pub, sub);
      const t = toks(64);
      await a.publish(payload([blockStored({ blockHashes: [1n], tokenIds: t.slice(0, 16), blockSize: 16 })]));
      await until(async () => (await sub.flush(), blocks('127.0.0.1:9100', t) === 1), 'seq 0');
      // seq 1 and 2 are lost on the wire (HWM / reconnect), seq 3 arrives
      await a.publish(payload([blockStored({ blockHashes: [2n], parentBlockHash: 1n, tokenIds: t.slice(16, 32), blockSize: 16 })]), { drop: true });
      await a.publish(payload([blockStored({ blockHashes: [3n], parentBlockHash: 2n, tokenIds: t.slice(32, 48), blockSize: 16 })]), { drop: true });
      await a.publish(payload([blockStored({ blockHashes: [4n], parentBlockHash: 3n, tokenIds: t.slice(48), blockSize: 16 })]));
      await until(async () => (await sub.flush(), blocks('127.0.0.1:9100', t) === 4), 'gap replayed');
      assert.deepEqual(a.replayRequests, [1]);
      assert.equal(sub.metrics.totals.gaps, 1);
      assert.equal(sub.metrics.totals.missedBatches, 0);
      assert.equal(sub.metrics.totals.unknownParents, 0);
      assert.match(await registry.metrics(), /kvcache_events_replays_total\{pod="127.0.0.1:9100",outcome="ok"\} 1/);
      assert.equal(sub.streamState().find((s) => s.pod === '127.0.0.1:9100')?.lastSeq, 3);
    });
  }

  it('joining late: replays from 0; an engine restart clears the pod and replays the new history', async () => {
    const a = await fake(`kv@127.0.0.1:9200@${MODEL}`);
    await a.bind();
    const replayEp = await a.startReplay();
    const t = toks(32);
    // history the router never saw live
    await a.publish(payload([blockStored({ blockHashes: [1n], tokenIds: t.slice(0, 16), blockSize: 16 })]));
    await a.publish(payload([blockStored({ blockHashes: [2n], parentBlockHash: 1n, tokenIds: t.slice(16), blockSize: 16 })]));
    const { sub, blocks } = make({ replay: { endpoints: { '127.0.0.1:9200': replayEp }, idleTimeoutMs: 1000 } });
    await sub.start();
    sub.addPod('127.0.0.1:9200', a.pubEndpoint);
    // the warm-up uses another topic, so pod 9200's first live message is seq 2
    await warmUp(a.pub, sub);
    const u = toks(16, 5000);
    await a.publish(payload([blockStored({ blockHashes: [3n], tokenIds: u, blockSize: 16 })]));
    await until(async () => (await sub.flush(), blocks('127.0.0.1:9200', t) === 2 && blocks('127.0.0.1:9200', u) === 1), 'history replayed on join');
    assert.deepEqual(a.replayRequests, [0]);
    // restart: seq back to 0 with a fresh cache
    a.restart();
    const v = toks(16, 9000);
    await a.publish(payload([blockStored({ blockHashes: [77n], tokenIds: v, blockSize: 16 })]));
    await until(async () => (await sub.flush(), blocks('127.0.0.1:9200', v) === 1), 'new engine indexed');
    assert.equal(blocks('127.0.0.1:9200', t), 0, 'old engine blocks cleared');
    assert.equal(sub.metrics.totals.restarts, 1);
  });

  it('rebuilds an unknown parent chain from the replay buffer (llm-d drops these)', async () => {
    const a = await fake(`kv@127.0.0.1:9300@${MODEL}`, 'old');
    await a.bind();
    const replayEp = await a.startReplay();
    const t = toks(64);
    await a.publish(payload([blockStored({ blockHashes: [1n, 2n], tokenIds: t.slice(0, 32), blockSize: 16 })]));
    await a.publish(payload([blockStored({ blockHashes: [3n], parentBlockHash: 2n, tokenIds: t.slice(32, 48), blockSize: 16 })]));
    await a.publish(payload([blockStored({ blockHashes: [99n], tokenIds: toks(16, 7000), blockSize: 16 })]));
    // onJoin off: the router starts from the live stream only
    const { sub, blocks } = make({ replay: { endpoints: { '127.0.0.1:9300': replayEp }, onJoin: false, idleTimeoutMs: 1000 } });
    await sub.start();
    sub.addPod('127.0.0.1:9300', a.pubEndpoint);
    await warmUp(a.pub, sub);
    await a.publish(payload([blockStored({ blockHashes: [4n], parentBlockHash: 3n, tokenIds: t.slice(48), blockSize: 16 })]));
    await until(async () => (await sub.flush(), blocks('127.0.0.1:9300', t) === 4), 'orphan placed with its rebuilt chain');
    assert.equal(sub.metrics.totals.unknownParents, 1);
    assert.equal(sub.metrics.totals.recoveredParents, 1);
    assert.equal(blocks('127.0.0.1:9300', toks(16, 7000)), 0, 'unrelated history is not resurrected');
  });

  it('a hole the replay buffer no longer holds: counted, the pod cleared and rebuilt from what remains', async () => {
    const a = new FakeVllm(`kv@127.0.0.1:9500@${MODEL}`, 'new', 3); // keeps only the last 3 batches
    cleanups.push(() => a.close());
    await a.bind();
    const replayEp = await a.startReplay();
    const { sub, blocks } = make({ replay: { endpoints: { '127.0.0.1:9500': replayEp }, idleTimeoutMs: 1000 } });
    await sub.start();
    sub.addPod('127.0.0.1:9500', a.pubEndpoint);
    await warmUp(a.pub, sub);
    const stale = toks(16, 100);
    await a.publish(payload([blockStored({ blockHashes: [1n], tokenIds: stale, blockSize: 16 })]));
    await until(async () => (await sub.flush(), blocks('127.0.0.1:9500', stale) === 1), 'seq 0');
    // seq 1..3 lost; seq 1 (removing the stale block) falls out of the 3-batch buffer
    await a.publish(payload([{ type: 'BlockRemoved', blockHashes: [1n], medium: 'GPU', groupIdx: null }]), { drop: true });
    const kept = toks(16, 200);
    await a.publish(payload([blockStored({ blockHashes: [2n], tokenIds: kept, blockSize: 16 })]), { drop: true });
    await a.publish(payload([]), { drop: true });
    await a.publish(payload([]));
    await until(async () => (await sub.flush(), blocks('127.0.0.1:9500', kept) === 1), 'replayed what remained');
    assert.equal(blocks('127.0.0.1:9500', stale), 0, 'pod cleared: the missed removal cannot leave a stale block');
    assert.equal(sub.metrics.totals.missedBatches, 1);
  });

  it('a dead replay endpoint costs a counted failure, never the stream', async () => {
    const a = await fake(`kv@127.0.0.1:9400@${MODEL}`);
    await a.bind();
    const { sub, blocks } = make({ replay: { endpoints: { '127.0.0.1:9400': 'tcp://127.0.0.1:1' }, idleTimeoutMs: 200, timeoutMs: 1000 } });
    await sub.start();
    sub.addPod('127.0.0.1:9400', a.pubEndpoint);
    await warmUp(a.pub, sub);
    a.seq = 5; // joined late
    const t = toks(16);
    await a.publish(payload([blockStored({ blockHashes: [1n], tokenIds: t, blockSize: 16 })]));
    await until(async () => (await sub.flush(), blocks('127.0.0.1:9400', t) === 1), 'live batch applied after replay failure');
    assert.equal(sub.metrics.totals.replayFailures, 1);
  });

  it('fuzz: thousands of bad frames from one pod are counted and skipped; the other pod is untouched', async () => {
    const { sub, blocks, index } = make({ bindEndpoint: 'tcp://127.0.0.1:0' });
    await sub.start();
    const good = await fake(`kv@10.1.0.1:8000@${MODEL}`);
    const bad = await fake(`kv@10.1.0.2:8000@${MODEL}`);
    good.connect(sub.boundEndpoint!);
    bad.connect(sub.boundEndpoint!);
    await warmUp(good.pub, sub);
    await warmUp(bad.pub, sub);
    const base = { ...sub.metrics.totals };
    let seed = 99;
    const rnd = (n: number) => {
      seed = (Math.imul(seed ^ (seed >>> 13), 0x5bd1e995) + 0x6b43a9b5) >>> 0;
      return seed % n;
    };
    const seeds = [FIXTURE_A, FIXTURE_B, FIXTURE_C, FIXTURE_D];
    let expectedRejects = 0;
    let sent = 0;
    const t = toks(16 * 40);
    for (let i = 0; i < 2000; i++) {
      const kind = rnd(4);
      let frames: (Uint8Array | string)[];
      if (kind === 0) frames = Array.from({ length: [1, 2, 4, 5][rnd(4)] }, () => Uint8Array.from({ length: rnd(12) }, () => rnd(256)));
      else if (kind === 1) frames = [bad.topic, Uint8Array.from({ length: [0, 4, 7, 9][rnd(4)] }, () => rnd(256)), FIXTURE_B];
      else {
        let p = Uint8Array.from(seeds[rnd(seeds.length)]);
        for (let e = 0; e < 1 + rnd(3); e++) {
          const at = rnd(p.length);
          if (rnd(2)) p[at] = rnd(256);
          else p = p.slice(0, at);
        }
        frames = [bad.topic, seqFrame(i), p];
      }
      if (frames.length === 0 || (typeof frames[0] !== 'string' && frames.length !== 3) || kind === 0) frames[0] = bad.topic; // must pass the kv@ filter
      if (frames.length !== 3 || kind === 1) expectedRejects++;
      else {
        try {
          decodeEventBatch(frames[2] as Uint8Array);
        } catch {
          expectedRejects++;
        }
      }
      await bad.pub.send(frames);
      sent++;
      // interleave the good pod's stream
      if (i % 50 === 0) {
        const k = i / 50;
        await good.publish(payload([blockStored({ blockHashes: [BigInt(k + 1)], parentBlockHash: k ? BigInt(k) : null, tokenIds: t.slice(16 * k, 16 * k + 16), blockSize: 16 })]));
      }
    }
    await until(async () => (await sub.flush(), sub.metrics.totals.messages - base.messages === sent + 40), 'all messages received', 10_000);
    await sub.flush();
    assert.equal(blocks('10.1.0.1:8000', t), 40, 'good pod fully indexed');
    assert.equal(sub.metrics.totals.decodeErrors - base.decodeErrors, expectedRejects, 'every rejected message counted');
    const goodStream = sub.streamState().find((s) => s.pod === '10.1.0.1:8000');
    assert.equal(goodStream?.lastSeq, 39);
    // whatever the mutated-but-valid batches stored for the bad pod, clearing it leaves exactly the good pod
    index.clear('10.1.0.2:8000');
    assert.equal(index.stats().entries, 40);
  });
});
