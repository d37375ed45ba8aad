// Hostile KV-event traffic over real ZeroMQ sockets on loopback (issue 13): a central
// subscriber keeps indexing the real pods, counts every rejection, bounds what it holds,
// never wipes a pod on a stray seq, and keeps the event loop answering during a flood.
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Publisher } from 'zeromq';
import { KvEventSubscriber, type SubscriberOptions } from '../../src/events/subscriber.js';
import { InMemoryKvBlockIndex } from '../../src/index/memory-index.js';
import { BlockKeyer } from '../../src/index/keys.js';
import { blockStored, encodeEventBatch } from './msgspec-encoder.js';
import { FakeVllm, until } from './fake-vllm.js';
import type { KvEvent } from '../../src/events/types.js';
import { arrayBomb, deepNesting, emptyBatch, invalidEvents, seqFrame, storeBatch } from '../../bench/abuse/event-payloads.js';

const silent = pino({ level: 'silent' });
const MODEL = 'm';
const toks = (n: number, base = 1000) => Array.from({ length: n }, (_, i) => base + i);
const payload = (events: KvEvent[], rank: number | null = 0) => encodeEventBatch(1.5, events, rank);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function central(extra: Partial<SubscriberOptions> = {}) {
  const index = new InMemoryKvBlockIndex();
  const keyer = new BlockKeyer({ blockSize: 16, hashSeed: '', algorithm: 'cbor-fnv' });
  const registry = new Registry();
  const sub = new KvEventSubscriber({ index, keyer, logger: silent, registry, bindEndpoint: 'tcp://127.0.0.1:0', ...extra });
  cleanups.push(() => sub.close());
  await sub.start();
  const blocks = (pod: string, tokens: number[]) => index.longestPrefix(keyer.keys(tokens, { model: MODEL })).get(pod)?.blocks ?? 0;
  const rejected = async (kind: string) => {
    const m = await registry.getSingleMetric('kvcache_events_decode_errors_total')!.get();
    return m.values.filter((v) => v.labels.kind === kind).reduce((s, v) => s + v.value, 0);
  };
  return { index, keyer, sub, registry, blocks, rejected };
}

async function pod(sub: KvEventSubscriber, name: string, replay = false): Promise<FakeVllm> {
  const f = new FakeVllm(`kv@${name}@${MODEL}`);
  cleanups.push(() => f.close());
  if (replay) await f.startReplay();
  f.connect(sub.boundEndpoint!);
  return f;
}

/** A raw publisher connected to the router: the attacker. */
function attacker(sub: KvEventSubscriber): Publisher {
  const pub = new Publisher({ linger: 0, sendHighWaterMark: 1_000_000 });
  pub.connect(sub.boundEndpoint!);
  cleanups.push(() => pub.close());
  return pub;
}

/** Publishes empty batches on a throwaway topic until the subscription is up (slow joiner). */
async function warmUp(pub: Publisher, sub: KvEventSubscriber, topic: string): Promise<void> {
  const before = sub.metrics.totals.messages;
  for (let i = 0; i < 500 && sub.metrics.totals.messages === before; i++) {
    await pub.send([topic, seqFrame(0), emptyBatch()]);
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(sub.metrics.totals.messages > before, 'subscription never reached the publisher');
}

/** Stores block i of a chain on `p` (seq i). */
async function storeBlock(p: FakeVllm, t: number[], i: number): Promise<void> {
  await p.publish(payload([blockStored({ blockHashes: [BigInt(i + 1)], parentBlockHash: i ? BigInt(i) : null, tokenIds: t.slice(16 * i, 16 * i + 16), blockSize: 16 })]));
}

describe('hostile KV events (real ZeroMQ, central mode)', () => {
  it("the issue's 201-byte bomb is rejected without allocating; RSS stays bounded and the next batch applies", async () => {
    const { sub, blocks, rejected } = await central();
    const good = await pod(sub, '10.0.0.1:8000');
    const bad = attacker(sub);
    await warmUp(good.pub, sub, 'kv@warmup@probe');
    await warmUp(bad, sub, 'kv@warmup2@probe');
    const rss0 = process.memoryUsage().rss;
    const bomb = arrayBomb();
    assert.equal(bomb.length, 201);
    for (let i = 0; i < 50; i++) await bad.send([`kv@10.0.0.1:8000@${MODEL}`, seqFrame(i + 1), bomb]);
    const t = toks(32);
    await storeBlock(good, t, 0);
    await storeBlock(good, t, 1);
    await until(async () => (await sub.flush(), (await rejected('elements')) === 50 && blocks('10.0.0.1:8000', t) === 2), 'bombs counted and the valid batches applied');
    // each bomb would have asked for ~5 GB; 50 of them fit in far less than one
    assert.ok(process.memoryUsage().rss - rss0 < 256 * 2 ** 20, `RSS grew by ${((process.memoryUsage().rss - rss0) / 2 ** 20).toFixed(0)} MB`);
  });

  it('oversized, deeply nested and invalid-event floods: each rejection counted, the valid pod unaffected', async () => {
    const { sub, blocks, rejected } = await central({ limits: { maxMessageBytes: 256 * 1024 } });
    const good = await pod(sub, '10.0.0.1:8000');
    const bad = attacker(sub);
    await warmUp(good.pub, sub, 'kv@warmup@probe');
    await warmUp(bad, sub, 'kv@warmup2@probe');
    const topic = `kv@10.9.9.9:8000@${MODEL}`;
    const t = toks(16 * 30);
    const before = sub.metrics.totals.messages;
    for (let i = 0; i < 30; i++) {
      // deeper than the limit (8): depth 200,000 in 200 kB
      await bad.send([topic, seqFrame(3 * i), deepNesting(200_000)]);
      // more events than a batch may hold (65,536)
      await bad.send([topic, seqFrame(3 * i + 1), invalidEvents(100_000)]);
      // within the limits, every event invalid: the batch applies, its events are skipped
      await bad.send([topic, seqFrame(3 * i + 2), invalidEvents(1000)]);
      await storeBlock(good, t, i);
    }
    await until(async () => (await sub.flush(), (await rejected('depth')) === 30 && (await rejected('events')) === 30 && blocks('10.0.0.1:8000', t) === 30), 'floods counted, the good pod indexed');
    assert.equal(sub.metrics.totals.skippedEvents, 30 * 1000, 'invalid events skipped one by one');
    // bigger than ZMQ_MAXMSGSIZE: ZeroMQ drops the sender's connection; nothing reaches the router
    const seen = sub.metrics.totals.messages;
    assert.equal(seen - before, 30 * 3 + 30);
    assert.equal(sub.metrics.totals.disconnects, 0, 'no connection has closed yet');
    await bad.send([topic, seqFrame(1000), new Uint8Array(1 << 20)]);
    await storeBlock(good, toks(16 * 31), 30);
    await until(async () => (await sub.flush(), blocks('10.0.0.1:8000', toks(16 * 31)) === 31), 'good pod still indexed after the oversized message');
    assert.equal(sub.metrics.totals.messages, seen + 1, 'the oversized message never reached the subscriber');
    // ...and that dropped connection is the one trace of it: counted
    await until(() => sub.metrics.totals.disconnects >= 1, 'the dropped connection counted');
  });

  it('a batch queued as bytes whose events do not decode is refused at its turn: counted, its seq not taken, later batches apply', async () => {
    const { sub, blocks, rejected } = await central();
    const bad = attacker(sub);
    await warmUp(bad, sub, 'kv@warmup@probe');
    const topic = `kv@10.7.0.1:8000@${MODEL}`;
    const t = toks(16 * 2);
    // [1.5, [fixext 1], 0]: the envelope reads (rank 0), the decoder takes no ext values
    const undecodable = Uint8Array.of(0x93, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x91, 0xd4, 0x01, 0x00, 0x00);
    await bad.send([topic, seqFrame(0), payload([blockStored({ blockHashes: [1n], tokenIds: t.slice(0, 16), blockSize: 16 })])]);
    await bad.send([topic, seqFrame(1), undecodable]);
    await bad.send([topic, seqFrame(1), payload([blockStored({ blockHashes: [2n], parentBlockHash: 1n, tokenIds: t.slice(16), blockSize: 16 })])]);
    await until(async () => (await sub.flush(), blocks('10.7.0.1:8000', t) === 2), 'the batch after the refused one applied');
    assert.equal(await rejected('msgpack'), 1);
    assert.equal(sub.metrics.totals.missedBatches, 0, 'the refused batch did not move the stream: seq 1 came in order');
    assert.deepEqual(sub.streamState().find((x) => x.pod === '10.7.0.1:8000')?.lastSeq, 1);
  });

  it('topics of unknown endpoints are dropped and counted once endpoints are known; tracked streams stay bounded', async () => {
    const { sub, blocks, rejected, registry } = await central({ limits: { maxStreams: 8, maxStreamsPerPod: 2 } });
    sub.knowPod('10.0.0.1:8000');
    const good = await pod(sub, '10.0.0.1:8000');
    const bad = attacker(sub);
    await warmUp(good.pub, sub, `kv@10.0.0.1:8000@warmup`);
    await warmUp(bad, sub, 'kv@warmup@probe');
    const t = toks(16 * 20);
    for (let i = 0; i < 2000; i++) {
      await bad.send([`kv@10.66.${i >> 8}.${i & 255}:8000@${MODEL}`, seqFrame(0), storeBatch(1, 1, i)]);
      // a known pod under invented models: bounded by maxStreamsPerPod
      if (i % 100 === 0) await bad.send([`kv@10.0.0.1:8000@invented-${i}`, seqFrame(0), emptyBatch()]);
      if (i % 100 === 0) await storeBlock(good, t, i / 100);
    }
    await until(async () => (await sub.flush(), (await rejected('unknown_topic')) >= 2000 && blocks('10.0.0.1:8000', t) === 20), 'invented topics dropped, the known pod indexed');
    const streams = sub.streamState();
    assert.ok(streams.every((s) => s.pod === '10.0.0.1:8000'), 'no stream for an invented topic');
    assert.equal(streams.length, 2, 'per-pod stream bound');
    assert.ok((await rejected('streams_full')) >= 1);
    const text = await registry.metrics();
    assert.equal(/10\.66\./.test(text), false, 'invented pods never become metric labels');
    sub.removePod('10.0.0.1:8000');
    assert.equal(sub.streamState().length, 0);
  });

  it('a seq going back without a restart is counted and skipped, never a wipe; seq 0 is a restart', async () => {
    const { sub, blocks, rejected } = await central();
    const good = await pod(sub, '10.0.0.1:8000');
    const bad = attacker(sub);
    await warmUp(good.pub, sub, 'kv@warmup@probe');
    await warmUp(bad, sub, 'kv@warmup2@probe');
    const t = toks(16 * 6);
    for (let i = 0; i < 6; i++) await storeBlock(good, t, i);
    await until(async () => (await sub.flush(), blocks('10.0.0.1:8000', t) === 6), 'six blocks');
    const topic = `kv@10.0.0.1:8000@${MODEL}`;
    // forged batches with old seqs, one of them clearing everything
    for (let s = 1; s <= 5; s++) await bad.send([topic, seqFrame(s), payload([{ type: 'AllBlocksCleared' }])]);
    await until(async () => (await sub.flush(), (await rejected('seq_back')) === 5), 'rewinds counted');
    assert.equal(blocks('10.0.0.1:8000', t), 6, 'nothing wiped');
    assert.equal(sub.metrics.totals.restarts, 0);
    await storeBlock(good, toks(16 * 7), 6);
    await until(async () => (await sub.flush(), blocks('10.0.0.1:8000', toks(16 * 7)) === 7), 'the stream goes on');
    // a real engine restart starts over at seq 0 with an empty cache
    good.restart();
    const u = toks(16, 9000);
    await good.publish(payload([blockStored({ blockHashes: [77n], tokenIds: u, blockSize: 16 })]));
    await until(async () => (await sub.flush(), blocks('10.0.0.1:8000', u) === 1), 'restarted engine indexed');
    assert.equal(blocks('10.0.0.1:8000', t), 0, 'restart cleared the old engine');
    assert.equal(sub.metrics.totals.restarts, 1);
  });

  it("a forged seq far ahead of a pod's replay buffer is skipped: nothing wiped, the real stream goes on", async () => {
    const { sub, blocks, rejected } = await central({ replay: { idleTimeoutMs: 1000, cooldownMs: 0 } });
    const a = new FakeVllm(`kv@127.0.0.1:9710@${MODEL}`);
    cleanups.push(() => a.close());
    sub.knowPod('127.0.0.1:9710', await a.startReplay());
    a.connect(sub.boundEndpoint!);
    const bad = attacker(sub);
    await warmUp(a.pub, sub, 'kv@127.0.0.1:9710@warmup');
    await warmUp(bad, sub, 'kv@127.0.0.1:9710@warmup2');
    const t = toks(16 * 4);
    for (let i = 0; i < 3; i++) await storeBlock(a, t, i);
    await until(async () => (await sub.flush(), blocks('127.0.0.1:9710', t) === 3), 'three blocks');
    await bad.send([`kv@127.0.0.1:9710@${MODEL}`, seqFrame(1_000_000), payload([{ type: 'AllBlocksCleared' }])]);
    await until(async () => (await sub.flush(), (await rejected('seq_ahead')) === 1), 'forged jump counted');
    assert.equal(blocks('127.0.0.1:9710', t), 3, 'nothing wiped');
    await storeBlock(a, t, 3);
    await until(async () => (await sub.flush(), blocks('127.0.0.1:9710', t) === 4), 'the real stream goes on');
    assert.equal(sub.metrics.totals.missedBatches, 0);
  });

  it("a second model's topic under a known pod never gets that pod's replay buffer; the pod's own resync still runs", async () => {
    const { sub, index, keyer, rejected } = await central({ replay: { idleTimeoutMs: 1000, cooldownMs: 0 } });
    const a = new FakeVllm(`kv@127.0.0.1:9720@${MODEL}`);
    cleanups.push(() => a.close());
    sub.knowPod('127.0.0.1:9720', await a.startReplay());
    a.connect(sub.boundEndpoint!);
    const bad = attacker(sub);
    await warmUp(a.pub, sub, 'kv@127.0.0.1:9720@warmup');
    await warmUp(bad, sub, 'kv@127.0.0.1:9720@warmup2');
    const of = (model: string, tokens: number[]) => index.longestPrefix(keyer.keys(tokens, { model })).get('127.0.0.1:9720')?.blocks ?? 0;
    const t = toks(16 * 3);
    for (let i = 0; i < 3; i++) await storeBlock(a, t, i);
    await until(async () => (await sub.flush(), of(MODEL, t) === 3), 'the pod indexed');
    const requests = a.replayRequests.length;
    // a late join under another model: the pod's replay endpoint is asked once, and what it
    // holds (model m's batches) is not applied as model "other"
    const u = toks(16, 7000);
    const other = `kv@127.0.0.1:9720@other`;
    await bad.send([other, seqFrame(5), payload([blockStored({ blockHashes: [900n], tokenIds: u, blockSize: 16 })])]);
    await until(async () => (await sub.flush(), (await rejected('replay_topic')) === 1), 'the foreign replay refused');
    assert.equal(of('other', t), 0, "the pod's model-m blocks were not indexed as model other");
    assert.equal(of('other', u), 1, 'the live batch of the other topic applies like any live batch');
    assert.equal(a.replayRequests.length, requests + 1);
    // a gap on that topic asks the pod no more: counted as missed
    await bad.send([other, seqFrame(9), payload([])]);
    await until(async () => (await sub.flush(), sub.metrics.totals.missedBatches === 3), 'the gap counted');
    assert.equal(a.replayRequests.length, requests + 1, 'no second replay for a topic the endpoint does not serve');
    // the index loses the pod: its own stream is rebuilt from its replay buffer, the foreign one does not block it
    const missed = sub.metrics.totals.missedBatches;
    await index.clear('127.0.0.1:9720');
    sub.resync({ reason: 'test', pods: ['127.0.0.1:9720'] });
    await sub.flush();
    assert.equal(of(MODEL, t), 3, 'rebuilt from the replay buffer');
    assert.equal(of('other', t), 0);
    assert.equal(sub.metrics.totals.missedBatches, missed, 'nothing counted lost for the foreign streams');
  });

  it("central mode replays a missed batch and a late join from the pod's replay endpoint", async () => {
    const { sub, blocks } = await central({ replay: { idleTimeoutMs: 1000 } });
    const a = new FakeVllm(`kv@127.0.0.1:9700@${MODEL}`);
    cleanups.push(() => a.close());
    const replayEp = await a.startReplay();
    const t = toks(16 * 4);
    // history before the router knew the pod (a late join)
    await a.publish(payload([blockStored({ blockHashes: [1n], tokenIds: t.slice(0, 16), blockSize: 16 })]), { drop: true });
    sub.knowPod('127.0.0.1:9700', replayEp);
    a.connect(sub.boundEndpoint!);
    await warmUp(a.pub, sub, `kv@127.0.0.1:9700@warmup`);
    await a.publish(payload([blockStored({ blockHashes: [2n], parentBlockHash: 1n, tokenIds: t.slice(16, 32), blockSize: 16 })]));
    await until(async () => (await sub.flush(), blocks('127.0.0.1:9700', t) === 2), 'late join replayed');
    // seq 2 lost on the wire, seq 3 arrives
    await a.publish(payload([blockStored({ blockHashes: [3n], parentBlockHash: 2n, tokenIds: t.slice(32, 48), blockSize: 16 })]), { drop: true });
    await a.publish(payload([blockStored({ blockHashes: [4n], parentBlockHash: 3n, tokenIds: t.slice(48), blockSize: 16 })]));
    await until(async () => (await sub.flush(), blocks('127.0.0.1:9700', t) === 4), 'missed batch replayed');
    assert.deepEqual(a.replayRequests, [0, 2]);
    assert.equal(sub.metrics.totals.missedBatches, 0);
  });

  it("a known pod's batches dropped at ZeroMQ's high-water marks while the router is busy are seq gaps, replayed; an unknown-topic flood alongside costs the pod nothing unseen", async (t) => {
    // Small queues everywhere so the burst overflows them: the router's SUB takes 4 messages per
    // connection, the pod's PUB 4 (vLLM's PUB drops beyond its SNDHWM, as ZeroMQ PUB sockets do).
    const { sub, index, registry, rejected } = await central({ replay: { idleTimeoutMs: 2000, cooldownMs: 0 }, limits: { receiveHighWaterMark: 4, maxQueuedBytes: 64 * 1024 } });
    const a = new FakeVllm(`kv@127.0.0.1:9730@${MODEL}`, 'new', 10_000, { sendHighWaterMark: 4, sendBufferSize: 16 * 1024 });
    cleanups.push(() => a.close());
    sub.knowPod('127.0.0.1:9730', await a.startReplay());
    a.connect(sub.boundEndpoint!);
    const bad = attacker(sub);
    await warmUp(a.pub, sub, 'kv@127.0.0.1:9730@warmup');
    await warmUp(bad, sub, 'kv@warmup@probe');
    // 3,000 batches of 32 blocks (~3 kB each) in one chain, all published in one go: the sends
    // never yield to the event loop, so the router reads none of them meanwhile (a busy router)
    const N = 3000;
    const B = 32;
    const batches = Array.from({ length: N }, (_, i) =>
      payload([blockStored({ blockHashes: Array.from({ length: B }, (_, j) => BigInt(i * B + j + 1)), parentBlockHash: i ? BigInt(i * B) : null, tokenIds: toks(16 * B, 100_000 + i * 16 * B), blockSize: 16 })]),
    );
    const junk = emptyBatch();
    for (let i = 0; i < N; i++) {
      await a.publish(batches[i]);
      for (let k = 0; k < 3; k++) await bad.send([`kv@10.77.${(i >> 8) & 255}.${i & 255}:8000@${MODEL}`, seqFrame(k), junk]);
    }
    await until(async () => (await sub.flush(), sub.streamState().find((x) => x.pod === '127.0.0.1:9730' && x.model === MODEL)?.lastSeq !== undefined), 'the burst reached the router', 20_000);
    const live = (await registry.getSingleMetric('kvcache_events_messages_total')!.get()).values.find((v) => v.labels.pod === '127.0.0.1:9730')?.value ?? 0;
    // More batches after the burst, so a loss at its very end is a gap too. A pod keeps publishing;
    // on a loaded machine the PUB queue can still be full and drop the first of them as well.
    let trailers = 0;
    let lastTrailer = 0;
    const lastSeq = () => sub.streamState().find((x) => x.pod === '127.0.0.1:9730' && x.model === MODEL)?.lastSeq ?? -1;
    await until(
      async () => {
        await sub.flush();
        if (lastSeq() >= N) return true;
        if (Date.now() - lastTrailer > 2000) {
          lastTrailer = Date.now();
          trailers++;
          await a.publish(payload([]));
        }
        return false;
      },
      'every batch applied',
      60_000,
    );
    const received = ((await registry.getSingleMetric('kvcache_events_messages_total')!.get()).values.find((v) => v.labels.pod === '127.0.0.1:9730')?.value ?? 0) - 1; // minus the warm-up
    t.diagnostic(`live ${received} of ${N + trailers} batches (${live} by the end of the burst); gaps ${sub.metrics.totals.gaps}, replays ${a.replayRequests.length}, receive pauses ${sub.metrics.totals.receivePauses}`);
    assert.ok(received < N + trailers, `the burst overflowed the queues (${received} of ${N + trailers} batches arrived live; ${live} by the end of the burst)`);
    assert.ok(sub.metrics.totals.gaps >= 1, 'the lost batches were seen as seq gaps');
    assert.ok(a.replayRequests.length >= 1, 'and replayed');
    assert.equal(sub.metrics.totals.missedBatches, 0, 'none lost for good');
    assert.equal(index.stats().entries, N * B, 'every block of the pod is indexed');
    assert.ok((await rejected('unknown_topic')) > 0, 'the flood was read and dropped');
  });

  it('each kind of rejection is logged once per stream however many arrive, and every one is counted', async () => {
    const lines: { kind?: string; pod?: string }[] = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(JSON.parse(l) as { kind?: string; pod?: string }) });
    const { sub, rejected } = await central({ logger });
    sub.knowPod('10.0.0.1:8000');
    sub.knowPod('10.0.0.2:8000');
    const bad = attacker(sub);
    await warmUp(bad, sub, 'kv@10.0.0.1:8000@warmup');
    const bomb = arrayBomb();
    for (let i = 0; i < 40; i++) {
      for (const pod of ['10.0.0.1:8000', '10.0.0.2:8000']) await bad.send([`kv@${pod}@${MODEL}`, seqFrame(i + 1), bomb]);
      await bad.send([`kv@10.9.${i}.1:8000@${MODEL}`, seqFrame(0), emptyBatch()]);
    }
    await until(async () => (await sub.flush(), (await rejected('elements')) === 80 && (await rejected('unknown_topic')) === 40), 'every rejection counted');
    const logged = (kind: string, pod?: string) => lines.filter((l) => l.kind === kind && (pod === undefined || l.pod === pod)).length;
    assert.equal(logged('decode:elements', '10.0.0.1:8000'), 1);
    assert.equal(logged('decode:elements', '10.0.0.2:8000'), 1);
    assert.equal(logged('decode:unknown_topic'), 1, 'invented topics share one line');
  });

  it('a flood of valid stores does not hold the event loop: HTTP answers while it is still being applied', async () => {
    const { sub, index } = await central();
    const bad = attacker(sub);
    await warmUp(bad, sub, 'kv@warmup@probe');
    const server: Server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/health`;
    // 200 batches x 250 events x 8 blocks = 400,000 block stores, all sent before HTTP starts
    const N = 200;
    const batches = Array.from({ length: N }, (_, i) => storeBatch(250, 8, i * 2000));
    for (let i = 0; i < N; i++) await bad.send([`kv@10.5.0.1:8000@${MODEL}`, seqFrame(i), batches[i]]);
    const flood = () => sub.streamState().find((s) => s.pod === '10.5.0.1:8000');
    await until(() => index.stats().entries > 0, 'flood started', 10_000);
    let answeredMidFlood = 0;
    for (let i = 0; i < 20; i++) {
      const res = await fetch(url);
      assert.equal(await res.text(), 'ok');
      if ((flood()?.lastSeq ?? 0) < N - 1) answeredMidFlood++;
    }
    await until(async () => (await sub.flush(), flood()?.lastSeq === N - 1), 'flood applied', 60_000);
    assert.ok(answeredMidFlood >= 10, `only ${answeredMidFlood} of 20 HTTP requests were answered before the flood was applied`);
    assert.equal(index.stats().entries, N * 250 * 8, JSON.stringify(sub.metrics.totals));
  });
});
