// A request's token sequence (shared prompt, typed output) and the block pool's one-number-per-hash
// cache with duplicates: the structures the virtual bench's speed depends on keep vLLM's semantics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BlockPool, type CachingRequest } from '../../src/sim/blockPool.js';
import { BlockHasher } from '../../src/sim/hashing.js';
import { TokenSeq } from '../../src/sim/tokens.js';

test('TokenSeq: shares the prompt, grows its output, reads across the prompt/output boundary', () => {
  const prompt = [10, 11, 12, 13, 14];
  const s = new TokenSeq(prompt, 2);
  assert.equal(s.prompt, prompt, 'the caller array, not a copy');
  for (let t = 100; t < 107; t++) s.push(t); // beyond the initial capacity of 2
  assert.equal(s.length, 12);
  assert.deepEqual(s.slice(0, 12), [10, 11, 12, 13, 14, 100, 101, 102, 103, 104, 105, 106]);
  assert.equal(s.at(4), 14);
  assert.equal(s.at(5), 100);
  const inPrompt = s.range(1, 4);
  assert.equal(inPrompt.tokens, prompt, 'a range inside the prompt is not copied');
  assert.equal(inPrompt.start, 1);
  const inOutput = s.range(6, 9);
  assert.deepEqual(Array.from(inOutput.tokens as Uint32Array).slice(inOutput.start, inOutput.start + 3), [101, 102, 103]);
  const across = s.range(3, 7);
  assert.deepEqual(Array.from(across.tokens).slice(across.start, across.start + 4), [13, 14, 100, 101]);
  // The same bytes hash the same whichever array holds them.
  const h = new BlockHasher('sha256_cbor', '0');
  assert.deepEqual(h.hashBlock(null, across.tokens, across.start, across.start + 4, null), h.hashBlock(null, [13, 14, 100, 101], 0, 4, null));
});

function cachingRequest(hash: Buffer, tokens: number[]): CachingRequest {
  return { seq: new TokenSeq(tokens, 1), blockHashes: [hash], blockHashKeys: [hash.toString('latin1')], extraKeysOf: () => null, loraName: null, loraId: null };
}

test('BlockPool: a hash cached twice stays hittable until its last block is evicted, first holder first', () => {
  const pool = new BlockPool(4, 2, true, { medium: 'GPU', extraKeys: false, groupIdx: null, kvCacheSpecKind: null }, true);
  const hash = new BlockHasher('sha256_cbor', '0').hashBlock(null, [1, 2], 0, 2, null);
  const key = hash.toString('latin1');
  const a: number[] = [];
  const b: number[] = [];
  pool.getNewBlocks(1, a); // block 1
  pool.getNewBlocks(1, b); // block 2
  pool.cacheFullBlocks(cachingRequest(hash, [1, 2]), a, 0, 1);
  pool.cacheFullBlocks(cachingRequest(hash, [1, 2]), b, 0, 1);
  assert.equal(pool.cachedBlocks, 2);
  assert.equal(pool.lookup(key), a[0]);
  assert.deepEqual(pool.snapshot().map((e) => e.tokenIds), [[1, 2], [1, 2]]);
  pool.free(a);
  pool.free(b);
  const got: number[] = [];
  pool.getNewBlocks(2, got); // the never-used block 3, then block 1 (LRU): the first holder goes
  assert.deepEqual(got, [3, a[0]]);
  assert.equal(pool.lookup(key), b[0], 'the duplicate takes over');
  assert.equal(pool.cachedBlocks, 1);
  pool.getNewBlocks(1, got);
  assert.equal(pool.lookup(key), undefined);
  assert.equal(pool.cachedBlocks, 0);
  assert.deepEqual(
    (pool.events ?? []).map((e) => e.type),
    ['BlockStored', 'BlockStored', 'BlockRemoved', 'BlockRemoved'],
  );
});

test('BlockPool: a cached block keeps its request\'s token sequence alive only with keepTokens', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const cachedSeq = (keepTokens: boolean): { pool: BlockPool; seq: WeakRef<TokenSeq> } => {
    const pool = new BlockPool(4, 2, false, { medium: 'GPU', extraKeys: false, groupIdx: null, kvCacheSpecKind: null }, keepTokens);
    const hash = new BlockHasher('sha256_cbor', '0').hashBlock(null, [1, 2], 0, 2, null);
    const req = cachingRequest(hash, [1, 2]);
    const blocks: number[] = [];
    pool.getNewBlocks(1, blocks);
    pool.cacheFullBlocks(req, blocks, 0, 1);
    pool.free(blocks);
    return { pool, seq: new WeakRef(req.seq) };
  };
  const kept = cachedSeq(true);
  const dropped = cachedSeq(false);
  // A WeakRef's target stays alive until the job that made it ends.
  await new Promise((r) => setImmediate(r));
  gc();
  assert.equal(kept.pool.cachedBlocks, 1);
  assert.equal(dropped.pool.cachedBlocks, 1);
  assert.ok(kept.seq.deref() !== undefined, 'with keepTokens the block reads its tokens from the sequence');
  assert.deepEqual(kept.pool.snapshot().map((e) => e.tokenIds), [[1, 2]]);
  assert.equal(dropped.seq.deref(), undefined, 'without it, nothing keeps the finished request\'s sequence');
  assert.deepEqual(dropped.pool.snapshot().map((e) => e.tokenIds), [undefined]);
});
