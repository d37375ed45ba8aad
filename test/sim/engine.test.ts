// Engine and block pool semantics against vLLM's rules, on a deterministic virtual clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, type EngineRequest, type SubmitOptions } from '../../src/sim/engine.js';
import { VirtualClock } from '../../src/sim/clock.js';
import { BlockHasher, wireHash } from '../../src/sim/hashing.js';
import type { KvEvent } from '../../src/sim/events.js';
import type { TimingModel } from '../../src/sim/timing.js';

const B = 4;

function mk(over: Partial<{ numGpuBlocks: number; maxNumSeqs: number; maxNumBatchedTokens: number; maxModelLen: number; timing: TimingModel; outputMode: 'random' | 'echo' }> = {}) {
  const clock = new VirtualClock();
  const engine = new Engine({
    blockSize: B,
    numGpuBlocks: over.numGpuBlocks ?? 64,
    maxNumSeqs: over.maxNumSeqs ?? 16,
    maxNumBatchedTokens: over.maxNumBatchedTokens ?? 1024,
    maxModelLen: over.maxModelLen ?? 100,
    timing: over.timing ?? { stepOverheadMs: 10, prefillPerTokenMs: 1, decodePerSeqMs: 2 },
    hasher: new BlockHasher('sha256_cbor', '0'),
    eventsEnabled: true,
    eventFields: { medium: 'GPU', extraKeys: true, groupIdx: 0, kvCacheSpecKind: 'full_attention' },
    clock,
    outputMode: over.outputMode ?? 'random',
    seed: 1,
    keepBlockTokens: true,
  });
  const batches: KvEvent[][] = [];
  engine.listener.onEvents = (e) => batches.push(e);
  const run = (opts: Omit<SubmitOptions, 'onFinish'>): Promise<EngineRequest> =>
    new Promise((resolve) => engine.submit({ ...opts, onFinish: resolve }));
  return { clock, engine, batches, run };
}

const seq = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);

test('prefix hits count full blocks only, capped at floor((N-1)/B)*B', async () => {
  const { clock, run } = mk();
  const p1 = run({ promptTokens: seq(10), maxTokens: 1 });
  clock.runUntil();
  assert.equal((await p1).cachedTokens, 0);
  // Same 10 tokens: blocks [1-4],[5-8] cached; the partial block never is.
  const p2 = run({ promptTokens: seq(10), maxTokens: 1 });
  clock.runUntil();
  assert.equal((await p2).cachedTokens, 8);
  // A prompt of exactly 8 tokens: at most floor(7/4)*4 = 4 cached, the last block is recomputed.
  const p3 = run({ promptTokens: seq(8), maxTokens: 1 });
  clock.runUntil();
  assert.equal((await p3).cachedTokens, 4);
  // Diverging in block 2 hits block 1 only.
  const p4 = run({ promptTokens: [...seq(4), 99, 98, 97, 96, 95], maxTokens: 1 });
  clock.runUntil();
  assert.equal((await p4).cachedTokens, 4);
});

test('generated tokens are cached and announced once their block is full', async () => {
  const { clock, engine, batches, run } = mk({ outputMode: 'echo' });
  const r = run({ promptTokens: seq(6), maxTokens: 7 });
  clock.runUntil();
  const req = await r;
  // 6 prompt + 7 output = 13 tokens; the last sampled token is never computed: 12 -> 3 blocks.
  assert.equal(engine.pool.cachedBlocks, 3);
  const stored = batches.flat().filter((e) => e.type === 'BlockStored');
  assert.equal(stored.length, 3, 'one BlockStored per step that filled a block');
  const s0 = stored[0];
  assert.equal(s0.type, 'BlockStored');
  if (s0.type !== 'BlockStored') return;
  assert.equal(s0.parentBlockHash, null);
  assert.deepEqual(s0.tokenIds, seq(4));
  const s2 = stored[2];
  if (s2.type !== 'BlockStored') return;
  assert.deepEqual(s2.tokenIds, req.tokens.slice(8, 12));
  assert.deepEqual(s2.parentBlockHash, req.blockHashes[1]);
  assert.deepEqual(s2.extraKeys, [null]);
  // Snapshot chains parent -> child with wire hashes.
  const snap = engine.pool.snapshot();
  assert.equal(snap.length, 3);
  const byHash = new Map(snap.map((e) => [e.blockHash, e]));
  assert.equal(byHash.get(wireHash(req.blockHashes[2]))?.parent, wireHash(req.blockHashes[1]));
});

test('finished blocks stay cached in an LRU free queue; eviction happens only on reuse, tail blocks first', async () => {
  // 9 usable blocks of 4 tokens.
  const { clock, engine, batches, run } = mk({ numGpuBlocks: 10, maxModelLen: 36 });
  const a = run({ promptTokens: seq(12, 100), maxTokens: 1 }); // blocks A0 A1 A2 (+ none for the sampled token)
  clock.runUntil();
  await a;
  assert.equal(engine.pool.cachedBlocks, 3);
  assert.equal(engine.pool.numFree, 9, 'finished blocks are free but keep their hashes');
  assert.equal(batches.flat().filter((e) => e.type === 'BlockRemoved').length, 0, 'finishing evicts nothing');
  const aReq = await a;
  // 6 fresh blocks are taken from never-used blocks first (queue order), no eviction yet.
  const b = run({ promptTokens: seq(24, 500), maxTokens: 1 });
  clock.runUntil();
  await b;
  assert.equal(batches.flat().filter((e) => e.type === 'BlockRemoved').length, 0);
  // Now 8 more blocks are needed: evicts B's and A's blocks in LRU order, A's tail before its head.
  batches.length = 0;
  const c = run({ promptTokens: seq(32, 900), maxTokens: 1 });
  clock.runUntil();
  await c;
  const removedOrder = batches.flat().filter((e) => e.type === 'BlockRemoved').map((e) => (e.type === 'BlockRemoved' ? e.blockHashes : []));
  for (const r of removedOrder) assert.equal(r.length, 1, 'one BlockRemoved per evicted block');
  const removed = removedOrder.map((r) => wireHash(r[0]));
  const aHashes = aReq.blockHashes.map(wireHash);
  // A was freed first (tail first: A2, A1, A0), so it is evicted first.
  assert.deepEqual(removed.slice(0, 3), [aHashes[2], aHashes[1], aHashes[0]]);
  assert.equal(removed.length, 8);
  // Removals of a step come before its stores.
  const flat = batches.flat();
  const firstStore = flat.findIndex((e) => e.type === 'BlockStored');
  const lastRemove = flat.map((e) => e.type).lastIndexOf('BlockRemoved');
  assert.ok(lastRemove < firstStore);
});

test('a hit on a free cached block revives it (no eviction, no new store)', async () => {
  const { clock, batches, run } = mk();
  const a = run({ promptTokens: seq(9), maxTokens: 1 });
  clock.runUntil();
  await a;
  batches.length = 0;
  const b = run({ promptTokens: seq(9), maxTokens: 1 });
  clock.runUntil();
  assert.equal((await b).cachedTokens, 8);
  const flat = batches.flat();
  assert.equal(flat.filter((e) => e.type === 'BlockRemoved').length, 0);
  // Block 2 ([9, sampled, ...]) never fills with maxTokens 1: nothing new to store.
  assert.equal(flat.filter((e) => e.type === 'BlockStored').length, 0);
});

test('preemption when blocks run out: the newest running request is preempted, recomputed, and finishes', async () => {
  // 9 usable blocks; two requests of 12 prompt tokens growing by 12 tokens each need 12 blocks.
  const { clock, engine, run } = mk({ numGpuBlocks: 10, maxModelLen: 36 });
  const a = run({ promptTokens: seq(12, 1), maxTokens: 12 });
  const b = run({ promptTokens: seq(12, 100), maxTokens: 12 });
  clock.runUntil();
  const [ra, rb] = await Promise.all([a, b]);
  assert.equal(ra.outputCount, 12);
  assert.equal(rb.outputCount, 12);
  assert.ok(engine.preemptionsTotal >= 1, 'at least one preemption');
  assert.equal(ra.preemptions, 0, 'the older request keeps running');
  assert.ok(rb.preemptions >= 1);
  assert.equal(engine.pool.numFree, 9);
});

test('chunked prefill respects max_num_batched_tokens and TTFT follows the timing model', async () => {
  const { clock, run } = mk({ maxNumBatchedTokens: 16, timing: { stepOverheadMs: 10, prefillPerTokenMs: 1, decodePerSeqMs: 2 } });
  const r = run({ promptTokens: seq(40), maxTokens: 3 });
  clock.runUntil();
  const req = await r;
  // 40 tokens in chunks of 16,16,8: 3 steps costing 26 + 26 + 18 ms; first token at the end of step 3.
  assert.ok(Math.abs(req.firstToken - req.arrival - 0.07) < 1e-9, `ttft ${req.firstToken - req.arrival}`);
  // Two decode steps of 10 + 2 ms each.
  assert.ok(Math.abs(req.finished - req.firstToken - 0.024) < 1e-9);
});

test('max_num_seqs bounds the running batch; the rest waits', async () => {
  const { clock, engine, run } = mk({ maxNumSeqs: 2 });
  const all = [0, 1, 2, 3].map((i) => run({ promptTokens: seq(5, i * 10 + 1), maxTokens: 5 }));
  clock.runUntil(0.001);
  assert.equal(engine.numRunning, 2);
  assert.equal(engine.numWaiting, 2);
  clock.runUntil();
  const rs = await Promise.all(all);
  assert.ok(rs[2].firstScheduled >= rs[0].finished, 'the third request starts when a slot frees');
});

test('reset_prefix_cache fails while blocks are in use, then clears everything with AllBlocksCleared', async () => {
  const { clock, engine, batches, run } = mk();
  const a = run({ promptTokens: seq(9), maxTokens: 20 });
  clock.runUntil(0.02);
  assert.equal(engine.resetPrefixCache(), false);
  clock.runUntil();
  await a;
  batches.length = 0;
  assert.equal(engine.resetPrefixCache(), true);
  assert.deepEqual(batches, [[{ type: 'AllBlocksCleared' }]]);
  assert.equal(engine.pool.cachedBlocks, 0);
  const b = run({ promptTokens: seq(9), maxTokens: 1 });
  clock.runUntil();
  assert.equal((await b).cachedTokens, 0);
});

test('cache_salt enters block 0 only and isolates sharing', async () => {
  const { clock, batches, run } = mk();
  const a = run({ promptTokens: seq(9), maxTokens: 1, cacheSalt: 's1' });
  clock.runUntil();
  await a;
  const st = batches.flat().find((e) => e.type === 'BlockStored');
  assert.ok(st && st.type === 'BlockStored');
  assert.deepEqual(st.extraKeys, [['s1'], null]);
  const b = run({ promptTokens: seq(9), maxTokens: 1 });
  const c = run({ promptTokens: seq(9), maxTokens: 1, cacheSalt: 's1' });
  clock.runUntil();
  assert.equal((await b).cachedTokens, 0);
  assert.equal((await c).cachedTokens, 8);
});

test('requests beyond max_model_len are refused; aborting frees blocks', async () => {
  const { clock, engine, run } = mk({ maxModelLen: 20 });
  assert.throws(() => engine.submit({ promptTokens: seq(15), maxTokens: 10 }), /maximum context length is 20/);
  let done: EngineRequest | null = null;
  const req = engine.submit({ promptTokens: seq(10), maxTokens: 9, onFinish: (r) => (done = r) });
  clock.runUntil(0.05);
  engine.abort(req);
  clock.runUntil();
  assert.equal((done as EngineRequest | null)?.finishReason, 'abort');
  assert.equal(engine.pool.numFree, 63);
  void run;
});

test('reset_prefix_cache with reset_running_requests preempts running requests, which then finish', async () => {
  const { clock, engine, batches, run } = mk();
  const a = run({ promptTokens: seq(9), maxTokens: 20 });
  clock.runUntil(0.02);
  assert.equal(engine.numRunning, 1);
  batches.length = 0;
  assert.equal(engine.resetPrefixCache(true), true);
  assert.deepEqual(batches[0], [{ type: 'AllBlocksCleared' }]);
  assert.equal(engine.numWaiting, 1);
  clock.runUntil();
  const r = await a;
  assert.equal(r.outputCount, 20);
  assert.equal(r.preemptions, 1);
});

test('a stalled publisher queue holds the scheduler (max_queue_size), then it resumes', async () => {
  const { clock, engine, run } = mk();
  let stalled = true;
  engine.stalled = () => stalled;
  const a = run({ promptTokens: seq(9), maxTokens: 2 });
  clock.runUntil(0.05);
  assert.equal(engine.steps, 0);
  assert.ok(engine.stallRetries > 0);
  stalled = false;
  clock.runUntil();
  assert.equal((await a).outputCount, 2);
});

test('output tokens: a finished request keeps its own tokens after its arena region is reused; cached blocks still read them', async () => {
  const { clock, engine, batches, run } = mk();
  const first = run({ promptTokens: seq(6), maxTokens: 10 });
  clock.runUntil();
  const a = await first;
  const aTokens = a.outputTokens;
  assert.equal(aTokens.length, 10);
  // Same size: the second request gets the first one's region and writes different random tokens.
  const second = run({ promptTokens: seq(6, 50), maxTokens: 10 });
  clock.runUntil();
  const b = await second;
  assert.notDeepEqual(b.outputTokens, aTokens, 'random outputs differ (the test can tell the regions apart)');
  assert.deepEqual(a.outputTokens, aTokens, 'the first request still reads its own tokens');
  assert.deepEqual(a.tokens, [...seq(6), ...aTokens]);
  // The pool's cached blocks of the first request (prompt + output) read the same tokens, and the
  // BlockStored events announced them with the tokens they hold.
  const cached = engine.pool.snapshot().map((e) => e.tokenIds?.join(','));
  for (let i = 0; i + B <= a.tokens.length - 1; i += B) assert.ok(cached.includes(a.tokens.slice(i, i + B).join(',')), `block at ${i}`);
  const stored = batches.flat().flatMap((e) => (e.type === 'BlockStored' ? [e.tokenIds.join(',')] : []));
  for (let i = 0; i + B <= a.tokens.length - 1; i += B) assert.ok(stored.some((s) => s.includes(a.tokens.slice(i, i + B).join(','))), `event for block at ${i}`);
});

test('prompts sharing a prefix with a memoized prompt take its block hashes for the shared blocks, and hash the rest exactly', async () => {
  const { clock, run } = mk({ maxModelLen: 200 });
  const hasher = new BlockHasher('sha256_cbor', '0');
  const fresh = (tokens: ArrayLike<number>): Buffer[] => {
    const out: Buffer[] = [];
    for (let i = 0; i + B <= tokens.length; i += B) out.push(hasher.hashBlock(out.length ? out[out.length - 1] : null, tokens, i, i + B, null));
    return out;
  };
  // A private seed range: the prompt-hash memo is shared by every engine of the process.
  const first = Uint32Array.from(seq(40, 700_001));
  // Same first 22 tokens (5 full blocks and 2 tokens of block 6), then different tokens.
  const second = Uint32Array.from([...seq(22, 700_001), ...seq(18, 900_001)]);
  // Same first block only, as a number[] (a JSON body's prompt).
  const third = [...seq(4, 700_001), ...seq(30, 800_001)];
  const reqs: EngineRequest[] = [];
  for (const promptTokens of [first, second, third]) {
    const p = run({ promptTokens, maxTokens: 1 });
    clock.runUntil();
    reqs.push(await p);
  }
  for (const [i, r] of reqs.entries()) {
    const want = fresh(r.seq.prompt);
    assert.deepEqual(r.blockHashes.slice(0, want.length).map((h) => h.toString('hex')), want.map((h) => h.toString('hex')), `prompt ${i}: every block hash as computed from scratch`);
  }
  // The shared blocks are the first prompt's hash objects, not copies of them.
  for (let i = 0; i < 5; i++) assert.equal(reqs[1].blockHashes[i], reqs[0].blockHashes[i], `block ${i} shared`);
  assert.notEqual(reqs[1].blockHashes[5], reqs[0].blockHashes[5]);
  assert.equal(reqs[2].blockHashes[0], reqs[0].blockHashes[0]);
  assert.notEqual(reqs[2].blockHashes[1].toString('hex'), reqs[0].blockHashes[1].toString('hex'));
});
