// Central mode through the router (the quickstart's mode): the pods connect to the router's
// SUB, and the endpoint pool tells the subscriber which topics are real and where each pod's
// replay ROUTER is (label, or llm-d's replaySocketPort), so a late join is replayed and an
// invented topic is dropped. Real ZeroMQ on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { startRouter } from '../../src/gateway/router.js';
import { KV_EVENTS_REPLAY_LABEL } from '../../src/scheduler/plugins/precise-prefix.js';
import { FakeVllm, until } from './fake-vllm.js';
import { blockStored, encodeEventBatch, seqFrame } from './msgspec-encoder.js';

const MODEL = 'm';
const toks = (n: number, base = 1000) => Array.from({ length: n }, (_, i) => base + i);

test('central mode: a late join is replayed from the replay endpoint the pool names; unknown topics are dropped', async () => {
  const pod = new FakeVllm(`kv@127.0.0.1:9801@${MODEL}`);
  const replayEp = await pod.startReplay();
  const config = {
    plugins: [
      { type: 'single-profile-handler' },
      { type: 'precise-prefix-cache-scorer', parameters: { tokenProcessorConfig: { blockSize: 16, hashSeed: '' }, kvEventsConfig: { zmqEndpoint: 'tcp://127.0.0.1:0' }, speculativeIndexing: false } },
      { type: 'max-score-picker' },
    ],
    schedulingProfiles: [{ name: 'default', plugins: [{ pluginRef: 'precise-prefix-cache-scorer', weight: 1 }, { pluginRef: 'max-score-picker' }] }],
  };
  const router = await startRouter({
    config: JSON.stringify(config),
    endpoints: [{ address: '127.0.0.1:9801', labels: { [KV_EVENTS_REPLAY_LABEL]: replayEp } }],
    port: 0,
    scrapeIntervalMs: 0,
    logger: pino({ level: 'silent' }),
    processMetrics: false,
    tokenizers: { encodeCompletion: async () => [], encodeChat: async () => [] },
  });
  try {
    const precise = router.kvIndex!;
    const t = toks(32);
    const blocks = async () => (await precise.index.longestPrefix(precise.keyer.keys(t, { model: MODEL }))).get('127.0.0.1:9801')?.blocks ?? 0;
    // history the router never saw live
    await pod.publish(encodeEventBatch(1.5, [blockStored({ blockHashes: [1n], tokenIds: t.slice(0, 16), blockSize: 16 })], 0), { drop: true });
    pod.connect(precise.eventsEndpoint!.replace('0.0.0.0', '127.0.0.1'));
    const invented = new FakeVllm(`kv@10.66.0.1:8000@${MODEL}`);
    invented.connect(precise.eventsEndpoint!.replace('0.0.0.0', '127.0.0.1'));
    try {
      // slow joiner: keep publishing until the live batch (seq >= 1) got in
      const next = encodeEventBatch(1.5, [blockStored({ blockHashes: [2n], parentBlockHash: 1n, tokenIds: t.slice(16), blockSize: 16 })], 0);
      for (let i = 0; i < 300 && (await blocks()) < 2; i++) {
        if (i % 10 === 0) await pod.publish(next);
        await invented.pub.send([invented.topic, seqFrame(i), next]);
        await new Promise((r) => setTimeout(r, 20));
      }
      await until(async () => (await blocks()) === 2, 'late join replayed');
      assert.equal(pod.replayRequests[0], 0, 'replayed from seq 0');
      const text = await router.registry.metrics();
      assert.match(text, /kvcache_events_decode_errors_total\{pod="_unknown",kind="unknown_topic"\} [1-9]/);
      assert.equal(/10\.66\.0\.1/.test(text), false);
    } finally {
      await invented.close();
    }
  } finally {
    await router.close();
    await pod.close();
  }
});
