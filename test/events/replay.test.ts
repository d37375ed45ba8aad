// fetchReplayRange against a real ZeroMQ ROUTER on loopback that loses part of its reply, as a
// vLLM publisher's ROUTER does beyond its send high-water mark: the holes are asked for again,
// a missing end marker costs an idle timeout, not the batches that did arrive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router } from 'zeromq';
import { fetchReplayRange } from '../../src/events/replay.js';
import { seqFrame } from './msgspec-encoder.js';

/** A replay ROUTER holding seqs 0..n-1; `drop(request, seq)` loses a batch of that request's reply, `dropEnd(request)` its end marker. */
async function lossyReplay(n: number, drop: (req: number, seq: number, from: number) => boolean, dropEnd: (req: number) => boolean) {
  const router = new Router({ linger: 0 });
  await router.bind('tcp://127.0.0.1:0');
  const requests: number[] = [];
  const serving = (async () => {
    try {
      for await (const [id, , seqB] of router) {
        const from = Number(Buffer.from(seqB).readBigUInt64BE(0));
        const req = requests.push(from) - 1;
        for (let seq = from; seq < n; seq++) if (!drop(req, seq, from)) await router.send([id, '', 'kv@p@m', seqFrame(seq), Buffer.from([seq & 255])]);
        if (!dropEnd(req)) await router.send([id, '', '', Buffer.alloc(8, 0xff), '']);
      }
    } catch {
      // closed
    }
  })();
  return {
    endpoint: router.lastEndpoint!,
    requests,
    close: async () => {
      router.close();
      await serving;
    },
  };
}

test('a reply with holes and no end marker: the holes are asked for again, every batch arrives once, in order', async () => {
  const r = await lossyReplay(10, (req, seq) => req === 0 && (seq >= 3 && seq <= 5), (req) => req === 0);
  try {
    const got = await fetchReplayRange(r.endpoint, 0, 10, { idleTimeoutMs: 300 });
    assert.deepEqual(got.map((b) => b.seq), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(r.requests, [0, 3]);
  } finally {
    await r.close();
  }
});

test('a lost tail is asked for from the last seq received; a buffer starting after `from` is no hole', async () => {
  const r = await lossyReplay(10, (req, seq) => req === 0 && seq >= 7, () => false);
  try {
    const got = await fetchReplayRange(r.endpoint, 0, 10, { idleTimeoutMs: 300 });
    assert.deepEqual(got.map((b) => b.seq), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(r.requests, [0, 7]);
  } finally {
    await r.close();
  }
  // the publisher no longer holds 0..3: one request
  const old = await lossyReplay(10, (_req, seq) => seq < 4, () => false);
  try {
    assert.deepEqual((await fetchReplayRange(old.endpoint, 0, 10, { idleTimeoutMs: 300 })).map((b) => b.seq), [4, 5, 6, 7, 8, 9]);
    assert.deepEqual(old.requests, [0]);
  } finally {
    await old.close();
  }
});

test('a forged seq far ahead costs one more request, not a walk over the range; rounds are bounded', async () => {
  const r = await lossyReplay(10, () => false, () => false);
  try {
    const got = await fetchReplayRange(r.endpoint, 2, Number.MAX_SAFE_INTEGER, { idleTimeoutMs: 300 });
    assert.deepEqual(got.map((b) => b.seq), [2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(r.requests, [2, 10]);
  } finally {
    await r.close();
  }
  // a publisher whose every reply loses all but its first batch: at most `rounds` requests
  const lossy = await lossyReplay(10, (_req, seq, from) => seq !== from, () => false);
  try {
    const got = await fetchReplayRange(lossy.endpoint, 0, 10, { idleTimeoutMs: 300 }, 3);
    assert.deepEqual(lossy.requests, [0, 1, 2]);
    assert.deepEqual(got.map((b) => b.seq), [0, 1, 2]);
  } finally {
    await lossy.close();
  }
});

test('nothing at all within the idle time is a failure, as before', async () => {
  const r = await lossyReplay(10, () => true, () => true);
  try {
    await assert.rejects(fetchReplayRange(r.endpoint, 0, 10, { idleTimeoutMs: 200 }), /no reply within 200 ms/);
  } finally {
    await r.close();
  }
});
