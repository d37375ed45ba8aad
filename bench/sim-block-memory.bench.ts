// `node --expose-gc --import tsx bench/sim-block-memory.bench.ts`: the heap a simulated engine's
// block pool keeps per cached block once the requests that filled it are gone (issue 15: what
// the 256-pod run holds when every pod's cache is full). The prompts stay alive throughout (the
// workload holds them in a real run), so the figure is the pool's own state: the hash key, the
// lookup map's entry, and a share of the request's TokenSeq the cached blocks point at.
// BENCH_BLOCKS (default 200,000) cached blocks of 16 tokens, 64 per request, sha256_cbor hashes.
import { BlockPool, type CachingRequest } from '../src/sim/blockPool.js';
import { BlockHasher } from '../src/sim/hashing.js';
import { TokenSeq } from '../src/sim/tokens.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const heap = (): number => {
  gc();
  return process.memoryUsage().heapUsed;
};

const numBlocks = Number(process.env.BENCH_BLOCKS ?? 200_000);
const B = 16;
const perRequest = 64;
const requests = Math.floor(numBlocks / perRequest);
const hasher = new BlockHasher('sha256_cbor', '0');

// Distinct prompts, alive for the whole measurement.
let t = 1;
const prompts = Array.from({ length: requests }, () => Array.from({ length: perRequest * B }, () => 100 + (t++ % 30000) + (t % 7) * 30000));
const pool = new BlockPool(requests * perRequest + 1, B, false, { medium: null, extraKeys: false, groupIdx: null, kvCacheSpecKind: null });
const before = heap();
for (const prompt of prompts) {
  const seq = new TokenSeq(prompt, 1);
  const blockHashes: Buffer[] = [];
  const blockHashKeys: string[] = [];
  for (let i = 0; i < perRequest; i++) {
    const d = hasher.hashBlock(i === 0 ? null : blockHashes[i - 1], prompt, i * B, (i + 1) * B, null);
    blockHashes.push(d);
    blockHashKeys.push(d.toString('latin1'));
  }
  const req: CachingRequest = { seq, blockHashes, blockHashKeys, extraKeysOf: () => null, loraName: null, loraId: null };
  const blocks: number[] = [];
  pool.getNewBlocks(perRequest, blocks);
  pool.cacheFullBlocks(req, blocks, 0, perRequest);
  pool.free(blocks); // finished: the blocks stay cached in the free queue
}
const after = heap();
const cached = pool.cachedBlocks;
console.log(
  `block pool: ${cached} cached blocks (${requests} finished requests of ${perRequest} blocks) hold ${((after - before) / 2 ** 20).toFixed(1)} MB of heap after GC: ` +
    `${((after - before) / cached).toFixed(0)} bytes per cached block (prompts excluded: the workload holds them); ` +
    `external (Buffer) memory ${(process.memoryUsage().arrayBuffers / 2 ** 20).toFixed(1)} MB`,
);
