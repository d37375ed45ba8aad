// End to end: after a mixed workload with evictions, preemptions, duplicate computation and a
// prefix-cache reset, the index the router builds from the simulator's KV events (real ZMQ,
// the router's decoder and applier) equals the simulator's cache exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as zmq from 'zeromq';
import { startSimPod } from '../../src/sim/index.js';
import { decodeEventBatch } from '../../src/events/decode.js';
import { PodEventApplier } from '../../src/events/apply.js';
import { InMemoryKvBlockIndex } from '../../src/index/memory-index.js';
import { BlockKeyer } from '../../src/index/keys.js';
import type { KvEvent } from '../../src/events/types.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

for (const version of ['v0.24', 'v0.10'] as const) {
  test(`router index from simulator events equals the simulator cache (${version} events)`, async () => {
    const B = 16;
    const pod = await startSimPod({
      model: 'm',
      profile: 'h100-qwen3-0.6b',
      blockSize: B,
      numGpuBlocks: 48, // 47 usable blocks: constant eviction and some preemption
      maxModelLen: 700,
      maxNumSeqs: 6,
      maxNumBatchedTokens: 256,
      keepBlockTokens: true,
      timeScale: 0.2,
      eventsFormat: { version, intHashes: true },
      llmdTopic: true,
      kvEventsConfig: { enable_kv_cache_events: true, endpoint: 'tcp://127.0.0.1:*' },
    });
    const sub = new zmq.Subscriber({ linger: 0 });
    const payloads: { seq: bigint; payload: Buffer }[] = [];
    const reader = (async () => {
      try {
        for await (const [, seq, payload] of sub) payloads.push({ seq: seq.readBigUInt64BE(0), payload });
      } catch {
        // closed
      }
    })();
    try {
      sub.connect(pod.kvEventsEndpoint as string);
      sub.subscribe('kv@');
      await sleep(200);
      const rand = rng(7);
      const prefixes = [0, 1, 2].map((g) => Array.from({ length: 80 + 40 * g }, (_, i) => 1000 * (g + 1) + i));
      const send = async (prompt: number[], maxTokens: number) => {
        const r = await fetch(`${pod.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', prompt, max_tokens: maxTokens }) });
        assert.equal(r.status, 200, await r.text());
      };
      const workload = async (n: number) => {
        const jobs: Promise<void>[] = [];
        for (let i = 0; i < n; i++) {
          const g = Math.floor(rand() * 3);
          const suffix = Array.from({ length: Math.floor(rand() * 60) }, () => 20000 + Math.floor(rand() * 5000));
          jobs.push(send([...prefixes[g], ...suffix], 20 + Math.floor(rand() * 100)));
          // identical prompts computed concurrently: duplicate stores for one hash
          if (i % 7 === 0) jobs.push(send([...prefixes[g], ...suffix], 3));
          if (jobs.length >= 6) await Promise.all(jobs.splice(0));
        }
        await Promise.all(jobs);
      };
      await workload(30);
      const reset = await fetch(`${pod.url}/reset_prefix_cache`, { method: 'POST' });
      assert.equal(reset.status, 200);
      await workload(30);
      const end = Date.now() + 5000;
      while (payloads.length < pod.batchesPublished && Date.now() < end) await sleep(20);
      assert.equal(payloads.length, pod.batchesPublished, 'every batch received');
      payloads.forEach((p, i) => assert.equal(p.seq, BigInt(i)));

      // The router side: decode and apply to an in-memory index.
      const index = new InMemoryKvBlockIndex();
      const keyer = new BlockKeyer({ blockSize: B, hashSeed: '42' });
      const applier = new PodEventApplier(index, keyer, pod.podId);
      const engineCount = new Map<bigint, number>();
      let removed = 0;
      let stores = 0;
      let cleared = 0;
      for (const { payload } of payloads) {
        const batch = decodeEventBatch(payload);
        assert.deepEqual(batch.skipped, []);
        for (const ev of batch.events as KvEvent[]) {
          assert.equal(await applier.apply(ev, 'm'), 'applied');
          if (ev.type === 'BlockStored') {
            stores++;
            for (const h of ev.blockHashes) engineCount.set(h, (engineCount.get(h) ?? 0) + 1);
          } else if (ev.type === 'BlockRemoved') {
            removed++;
            for (const h of ev.blockHashes) {
              const c = (engineCount.get(h) ?? 0) - 1;
              assert.ok(c >= 0, 'never removes an unknown block');
              if (c === 0) engineCount.delete(h);
              else engineCount.set(h, c);
            }
          } else {
            cleared++;
            engineCount.clear();
          }
        }
      }
      assert.ok(removed > 20, `evictions happened (${removed})`);
      assert.ok(stores > 20);
      assert.equal(cleared, 1);
      assert.ok(pod.engine.preemptionsTotal > 0, 'the workload preempted at least once');

      // Engine-key level: the multiset of live hashes equals the simulator's cache.
      const snap = pod.cacheSnapshot();
      const simCount = new Map<bigint, number>();
      for (const e of snap) simCount.set(e.blockHash, (simCount.get(e.blockHash) ?? 0) + 1);
      assert.deepEqual(new Map([...engineCount].sort()), new Map([...simCount].sort()));

      // Index level: every cached block's full chain is held by the pod, and nothing else is.
      const byHash = new Map(snap.map((e) => [e.blockHash, e]));
      const expectedKeys = new Set<bigint>();
      for (const e of snap) {
        const chain: number[][] = [];
        let cur: typeof e | undefined = e;
        while (cur) {
          chain.unshift(cur.tokenIds ?? assert.fail('the pod keeps block tokens'));
          cur = cur.parent === null ? undefined : byHash.get(cur.parent);
          assert.ok(cur !== undefined || chain.length > 0);
        }
        const keys = keyer.keys(chain.flat(), { model: 'm' });
        expectedKeys.add(keys[keys.length - 1]);
        const m = await index.longestPrefix(keys, new Set([pod.podId]));
        assert.equal(m.get(pod.podId)?.blocks, keys.length, 'the whole chain is indexed');
      }
      const stats = await index.stats();
      assert.equal(stats.keys, expectedKeys.size, 'the index holds exactly the cached blocks');
      assert.equal(stats.engineKeys, simCount.size);
      await index.close();
    } finally {
      sub.close();
      await reader;
      await pod.close();
    }
  });
}
