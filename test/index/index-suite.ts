// Shared semantics suite for every KvBlockIndex backend. Uses only the KvBlockIndex
// interface, so the Redis backend runs the very same checks:
//   describeKvBlockIndexSuite('redis', () => makeRedisIndex(), { ... })
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { KvBlockIndex, PodEntry, PrefixMatch } from '../../src/index/types.js';
import { BlockKeyer } from '../../src/index/keys.js';

export interface SuiteOptions {
  /** Backend honours tier weights gpu 1.0 / cpu 0.8 (default true). */
  defaultTierWeights?: boolean;
  /** TTL used in the speculative test (ms); default 60. */
  speculativeTtlMs?: number;
}

const K = (...xs: (number | bigint)[]): BigUint64Array => BigUint64Array.from(xs.map((x) => BigInt(x)));
const gpu = (pod: string): PodEntry => ({ pod, tier: 'gpu' });
const cpu = (pod: string): PodEntry => ({ pod, tier: 'cpu' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function plain(m: Map<string, PrefixMatch>): Record<string, [number, number]> {
  const o: Record<string, [number, number]> = {};
  for (const [k, v] of [...m].sort(([a], [b]) => a.localeCompare(b))) o[k] = [v.blocks, Math.round(v.weighted * 1000) / 1000];
  return o;
}

export function describeKvBlockIndexSuite(name: string, make: () => Promise<KvBlockIndex> | KvBlockIndex, opts: SuiteOptions = {}): void {
  describe(`KvBlockIndex semantics: ${name}`, () => {
    let idx: KvBlockIndex | null = null;
    const open = async () => (idx = await make());
    afterEach(async () => {
      await idx?.close();
      idx = null;
    });

    it('scores the longest run of leading blocks per pod; pods missing block 0 get nothing', async () => {
      const x = await open();
      await x.add(null, K(1, 2, 3, 4), gpu('a'));
      await x.add(null, K(1, 2), gpu('b'));
      await x.add(null, K(2, 3, 4), gpu('c')); // no block 0
      await x.add(null, K(1, 3), gpu('d')); // hole at block 1
      assert.deepEqual(plain(await x.longestPrefix(K(1, 2, 3, 4, 5))), { a: [4, 4], b: [2, 2], d: [1, 1] });
      assert.deepEqual(plain(await x.longestPrefix(K(9, 1, 2))), {});
      assert.deepEqual(plain(await x.longestPrefix(K())), {});
    });

    it('restricts scoring to the pod filter', async () => {
      const x = await open();
      await x.add(null, K(1, 2, 3), gpu('a'));
      await x.add(null, K(1, 2), gpu('b'));
      assert.deepEqual(plain(await x.longestPrefix(K(1, 2, 3), new Set(['b', 'zzz']))), { b: [2, 2] });
      assert.deepEqual(plain(await x.longestPrefix(K(1, 2, 3), new Set<string>(['nobody']))), {});
    });

    it('stops at the first block no remaining pod holds, even if later blocks are held', async () => {
      const x = await open();
      await x.add(null, K(1, 2), gpu('a'));
      await x.add(null, K(4, 5), gpu('a')); // later blocks of the same request, no block 3
      await x.add(null, K(3, 4, 5), gpu('b')); // has later blocks but not block 0
      assert.deepEqual(plain(await x.longestPrefix(K(1, 2, 3, 4, 5))), { a: [2, 2] });
    });

    it('reference-counts duplicate stores of the same block', async () => {
      const x = await open();
      await x.add(K(101, 102), K(1, 2), gpu('a'));
      await x.add(K(101, 102), K(1, 2), gpu('a'));
      await x.evict(102n, 'engine', gpu('a'));
      assert.deepEqual(plain(await x.longestPrefix(K(1, 2))), { a: [2, 2] }, 'one of two references left');
      await x.evict(102n, 'engine', gpu('a'));
      assert.deepEqual(plain(await x.longestPrefix(K(1, 2))), { a: [1, 1] });
      await x.evict(1n, 'request', gpu('a'));
      assert.deepEqual(plain(await x.longestPrefix(K(1, 2))), { a: [1, 1] }, 'request key 1 still has a second reference');
      await x.evict(1n, 'request', gpu('a'));
      assert.deepEqual(plain(await x.longestPrefix(K(1, 2))), {});
    });

    it('treats unknown keys, unknown pods and extra removes as no-ops', async () => {
      const x = await open();
      await x.add(K(11), K(1), gpu('a'));
      await x.evict(999n, 'engine', gpu('a'));
      await x.evict(999n, 'request', gpu('a'));
      await x.evict(11n, 'engine', gpu('nobody'));
      await x.evict(1n, 'request', cpu('a')); // tier it does not hold
      await x.clear('nobody');
      assert.deepEqual(plain(await x.longestPrefix(K(1))), { a: [1, 1] });
      await x.evict(11n, 'engine', gpu('a'));
      await x.evict(11n, 'engine', gpu('a'));
      assert.deepEqual(plain(await x.longestPrefix(K(1))), {});
    });

    it('weights tiers (gpu 1.0, cpu 0.8, unknown 1.0) and takes the best tier per block', async () => {
      if (opts.defaultTierWeights === false) return;
      const x = await open();
      await x.add(null, K(1, 2, 3), gpu('a'));
      await x.add(null, K(3), cpu('a'));
      await x.add(null, K(1, 2), cpu('b'));
      await x.add(null, K(3), gpu('b'));
      await x.add(null, K(1), { pod: 'c', tier: 'cpu_pinned' });
      await x.add(null, K(1, 2, 3), { pod: 'd', tier: 'CPU' });
      assert.deepEqual(plain(await x.longestPrefix(K(1, 2, 3))), { a: [3, 3], b: [3, 2.6], c: [1, 1], d: [3, 2.4] });
    });

    it('keeps an engine mapping while another tier of the pod still holds the block', async () => {
      const x = await open();
      await x.add(K(500), K(5), gpu('a'));
      await x.add(K(500), K(5), cpu('a'));
      assert.equal(await x.getRequestKey(500n, 'a'), 5n);
      await x.evict(500n, 'engine', gpu('a'));
      assert.equal(await x.getRequestKey(500n, 'a'), 5n, 'cpu copy still there');
      if (opts.defaultTierWeights !== false) assert.deepEqual(plain(await x.longestPrefix(K(5))), { a: [1, 0.8] });
      await x.evict(500n, 'engine', cpu('a'));
      assert.equal(await x.getRequestKey(500n, 'a'), undefined);
      assert.deepEqual(plain(await x.longestPrefix(K(5))), {});
    });

    it('maps 4 engine blocks (bs 16) to 1 request block (bs 64) and back', async () => {
      const x = await open();
      // engine bs 16, router bs 64: E0..E3 -> R0, E4..E7 -> R1
      await x.add(K(10, 11, 12, 13, 14, 15, 16, 17), K(1000, 1001), gpu('a'));
      assert.equal(await x.getRequestKey(13n, 'a'), 1000n);
      assert.equal(await x.getRequestKey(14n, 'a'), 1001n);
      await x.evict(17n, 'engine', gpu('a')); // tail block evicted: R1 no longer fully cached
      assert.deepEqual(plain(await x.longestPrefix(K(1000, 1001))), { a: [1, 1] });
      // engine bs 64, router bs 16: E0 -> R0..R3; the last one is the parent for what follows
      await x.add(K(20), K(2000, 2001, 2002, 2003), gpu('b'));
      assert.equal(await x.getRequestKey(20n, 'b'), 2003n);
      assert.deepEqual(plain(await x.longestPrefix(K(2000, 2001, 2002, 2003))), { b: [4, 4] });
      await x.evict(20n, 'engine', gpu('b'));
      assert.deepEqual(plain(await x.longestPrefix(K(2000, 2001, 2002, 2003))), {});
      assert.equal(await x.getRequestKey(20n, 'b'), undefined);
    });

    it('clear(pod) removes exactly that pod, all tiers, speculative entries and engine mappings', async () => {
      const x = await open();
      await x.add(K(1), K(100, 101), gpu('a'));
      await x.add(null, K(100, 101), cpu('a'));
      await x.addSpeculative(K(100, 101, 102), 'a', 60_000);
      await x.add(K(1), K(100, 101), gpu('b'));
      await x.clear('a');
      assert.deepEqual(plain(await x.longestPrefix(K(100, 101, 102))), { b: [2, 2] });
      assert.equal(await x.getRequestKey(1n, 'a'), undefined);
      assert.equal(await x.getRequestKey(1n, 'b'), 101n);
      const st = await x.stats();
      assert.equal(st.entries, 2);
    });

    it('holds any number of pods per block (llm-d keeps 10)', async () => {
      const x = await open();
      for (let p = 0; p < 40; p++) await x.add(null, K(7, 8), gpu(`10.0.0.${p}:8000`));
      const m = await x.longestPrefix(K(7, 8));
      assert.equal(m.size, 40);
      for (const v of m.values()) assert.deepEqual(v, { blocks: 2, weighted: 2 });
    });

    it('expires speculative entries after their TTL; real entries of the pod stay', async () => {
      const x = await open();
      const ttl = opts.speculativeTtlMs ?? 60;
      await x.add(null, K(1), gpu('a'));
      await x.addSpeculative(K(1, 2, 3), 'a', ttl);
      await x.addSpeculative(K(1, 2), 'b', ttl);
      assert.deepEqual(plain(await x.longestPrefix(K(1, 2, 3))), { a: [3, 3], b: [2, 2] });
      await sleep(ttl * 3 + 50);
      assert.deepEqual(plain(await x.longestPrefix(K(1, 2, 3))), { a: [1, 1] });
    });

    it('scopes keys by model and LoRA adapter through the chain root', async () => {
      const x = await open();
      const keyer = new BlockKeyer({ blockSize: 4, hashSeed: '42', algorithm: 'cbor-fnv' });
      const toks = [1, 2, 3, 4, 5, 6, 7, 8];
      await x.add(null, keyer.keys(toks, { model: 'base', lora: 'sql-adapter' }), gpu('a'));
      await x.add(null, keyer.keys(toks, { model: 'base' }), gpu('b'));
      assert.deepEqual(plain(await x.longestPrefix(keyer.keys(toks, { model: 'base', lora: 'sql-adapter' }))), { a: [2, 2] });
      assert.deepEqual(plain(await x.longestPrefix(keyer.keys(toks, { model: 'base' }))), { b: [2, 2] });
      assert.deepEqual(plain(await x.longestPrefix(keyer.keys(toks, { model: 'other' }))), {});
    });

    it('handles keys above 2^53 and 2^63 exactly', async () => {
      const x = await open();
      const big = K(0xffffffffffffffffn, 0x8000000000000001n, (1n << 53n) + 1n);
      await x.add(K(0xfffffffffffffffen), big, gpu('a'));
      assert.deepEqual(plain(await x.longestPrefix(big)), { a: [3, 3] });
      assert.deepEqual(plain(await x.longestPrefix(K(0xffffffffffffffffn, 0x8000000000000001n, 1n << 53n))), { a: [2, 2] });
      assert.equal(await x.getRequestKey(0xfffffffffffffffen, 'a'), (1n << 53n) + 1n);
    });

    it('reports sizes in stats()', async () => {
      const x = await open();
      await x.add(K(1, 2), K(10, 11), gpu('a'));
      await x.add(null, K(10), gpu('b'));
      const st = await x.stats();
      assert.equal(st.keys, 2);
      assert.equal(st.entries, 3);
      assert.ok(st.capacity > 0);
    });
  });
}
