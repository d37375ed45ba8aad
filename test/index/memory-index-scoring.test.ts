// Differential tests of the in-memory index's scoring walk against a naive model, with
// tiers, a pod holding one block in two tiers, speculative entries, pod filters, evictions
// (which reorder a key's holders) and clears. Consecutive keys often share their holders,
// which the walk handles in bulk, so both the bulk and the slot-by-slot paths are checked.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InMemoryKvBlockIndex } from '../../src/index/memory-index.js';

const K = (...xs: number[]): BigUint64Array => BigUint64Array.from(xs.map((x) => BigInt(x)));
const WEIGHTS: Record<string, number> = { gpu: 1, cpu: 0.8, disk: 0.5, spec: 1 };

/** key -> "tier|pod" -> references */
type Naive = Map<number, Map<string, number>>;

function naiveScore(naive: Naive, chain: number[], pods: string[]): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const pod of pods) {
    let blocks = 0;
    let weighted = 0;
    for (const key of chain) {
      let best = -1;
      for (const [name, refs] of naive.get(key) ?? []) {
        const [tier, p] = name.split('|');
        if (p === pod && refs > 0) best = Math.max(best, WEIGHTS[tier]);
      }
      if (best < 0) break;
      blocks++;
      weighted += best;
    }
    if (blocks > 0) out.set(pod, [blocks, weighted]);
  }
  return out;
}

function rnd(seed: number): (n: number) => number {
  return (n) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
}

describe('InMemoryKvBlockIndex scoring walk', () => {
  for (const seed of [1, 2, 3, 4]) {
    it(`matches a naive model under random stores, evictions and clears (seed ${seed})`, () => {
      const x = new InMemoryKvBlockIndex({ tierWeights: { disk: 0.5 } });
      const naive: Naive = new Map();
      const r = rnd(seed);
      const pods = ['a', 'b', 'c', 'd', 'e', 'f'];
      const tiers = ['gpu', 'gpu', 'cpu', 'disk'];
      const chainLen = 40;
      const ref = (key: number, name: string, d: number) => {
        const m = naive.get(key) ?? new Map<string, number>();
        const n = (m.get(name) ?? 0) + d;
        if (n > 0) m.set(name, n);
        else m.delete(name);
        naive.set(key, m);
      };
      let checks = 0;
      for (let step = 0; step < 3000; step++) {
        const pod = pods[r(pods.length)];
        const op = r(20);
        if (op < 8) {
          // a whole prefix of the chain, as a pod caching a prompt would
          const tier = tiers[r(tiers.length)];
          const from = r(4) === 0 ? r(chainLen) : 0;
          const to = Math.min(chainLen, from + 1 + r(chainLen));
          const keys = Array.from({ length: to - from }, (_, i) => from + i + 1);
          x.add(null, K(...keys), { pod, tier });
          for (const k of keys) ref(k, `${tier}|${pod}`, 1);
        } else if (op < 10) {
          const keys = Array.from({ length: 1 + r(chainLen) }, (_, i) => i + 1);
          x.addSpeculative(K(...keys), pod, 3_600_000);
          for (const k of keys) ref(k, `spec|${pod}`, 1);
        } else if (op < 18) {
          const tier = tiers[r(tiers.length)];
          const key = 1 + r(chainLen);
          x.evict(BigInt(key), 'request', { pod, tier });
          if ((naive.get(key)?.get(`${tier}|${pod}`) ?? 0) > 0) ref(key, `${tier}|${pod}`, -1);
        } else if (r(10) === 0) {
          x.clear(pod);
          for (const m of naive.values()) for (const name of [...m.keys()]) if (name.endsWith(`|${pod}`)) m.delete(name);
        }
        if (step % 7 === 0) {
          const n = 1 + r(chainLen + 5); // sometimes past the end of what is stored
          const chain = Array.from({ length: n }, (_, i) => i + 1);
          const filter = r(3) === 0 ? new Set(pods.filter(() => r(2) === 0)) : null;
          const got = x.longestPrefix(K(...chain), filter);
          const want = naiveScore(naive, chain, filter ? [...filter] : pods);
          assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `step ${step}: pods`);
          for (const [p, [blocks, weighted]] of want) {
            assert.equal(got.get(p)!.blocks, blocks, `step ${step} pod ${p}: blocks`);
            assert.ok(Math.abs(got.get(p)!.weighted - weighted) < 1e-9, `step ${step} pod ${p}: weighted ${got.get(p)!.weighted} != ${weighted}`);
          }
          checks++;
        }
      }
      x.close();
      assert.ok(checks > 400);
    });
  }

  for (const seed of [5, 6, 7]) {
    it(`takes the identical-holders shortcut exactly: runs of odd and even length differing in one slot (seed ${seed})`, () => {
      // Each key's holders are the previous key's, added in the same order (so the same slots in
      // the same order), with now and then one change: a pod dropped or added, a tier changed, a
      // second tier for a pod. Runs compare two slots at a time, so lengths of both parities
      // and a difference in any slot, the last one included, must break the shortcut.
      const r = rnd(seed);
      for (let round = 0; round < 30; round++) {
        const x = new InMemoryKvBlockIndex({ tierWeights: { disk: 0.5 } });
        const naive: Naive = new Map();
        const nPods = 1 + r(13);
        const pods = Array.from({ length: nPods }, (_, i) => `p${i}`);
        const tiers = ['gpu', 'gpu', 'cpu', 'disk'];
        let holders: string[] = pods.filter(() => r(4) !== 0).map((p) => `${tiers[r(tiers.length)]}|${p}`);
        const chainLen = 60;
        for (let key = 1; key <= chainLen; key++) {
          if (r(3) === 0 && holders.length > 0) {
            const at = r(holders.length);
            const op = r(4);
            if (op === 0) holders = holders.filter((_, i) => i !== at);
            else if (op === 1) holders = holders.map((h, i) => (i === at ? `${tiers[r(tiers.length)]}|${h.split('|')[1]}` : h));
            else if (op === 2) holders = [...holders, `${tiers[r(tiers.length)]}|${pods[r(nPods)]}`];
            else holders = [...holders.slice(0, at), `${tiers[r(tiers.length)]}|${pods[r(nPods)]}`, ...holders.slice(at)];
          }
          const m = new Map<string, number>();
          for (const h of holders) {
            const [tier, pod] = h.split('|');
            x.add(null, K(key), { pod, tier });
            m.set(h, (m.get(h) ?? 0) + 1);
          }
          naive.set(key, m);
        }
        const chain = Array.from({ length: chainLen }, (_, i) => i + 1);
        for (const filter of [null, new Set(pods.filter(() => r(2) === 0))]) {
          const got = x.longestPrefix(K(...chain), filter);
          const want = naiveScore(naive, chain, filter ? [...filter] : pods);
          assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `round ${round}: pods`);
          for (const [p, [blocks, weighted]] of want) {
            assert.equal(got.get(p)!.blocks, blocks, `round ${round} pod ${p}: blocks`);
            assert.ok(Math.abs(got.get(p)!.weighted - weighted) < 1e-9, `round ${round} pod ${p}: weighted ${got.get(p)!.weighted} != ${weighted}`);
          }
        }
        x.close();
      }
    });
  }

  it('keeps each holder\'s tier when an eviction moves another holder into its slot', () => {
    const x = new InMemoryKvBlockIndex();
    x.add(null, K(1, 2, 3), { pod: 'a', tier: 'gpu' });
    x.add(null, K(1, 2, 3), { pod: 'b', tier: 'cpu' });
    x.evict(2n, 'request', { pod: 'a', tier: 'gpu' }); // b's cpu slot moves on key 2
    const got = x.longestPrefix(K(1, 2, 3));
    assert.equal(got.get('a')?.blocks, 1);
    assert.equal(got.get('b')?.blocks, 3);
    assert.ok(Math.abs(got.get('b')!.weighted - 2.4) < 1e-9, `weighted ${got.get('b')!.weighted}`);
  });

  it('tells apart consecutive keys whose holders differ only in tier', () => {
    const x = new InMemoryKvBlockIndex();
    x.add(null, K(1, 2, 3, 4, 5), { pod: 'a', tier: 'gpu' });
    x.add(null, K(6, 7, 8, 9, 10), { pod: 'a', tier: 'cpu' });
    x.add(null, K(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), { pod: 'b', tier: 'gpu' });
    x.add(null, K(11, 12), { pod: 'a', tier: 'gpu' });
    x.add(null, K(11, 12), { pod: 'b', tier: 'gpu' });
    const got = x.longestPrefix(K(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
    assert.equal(got.get('a')?.blocks, 12);
    assert.ok(Math.abs(got.get('a')!.weighted - 11) < 1e-9, `a weighted ${got.get('a')!.weighted}`);
    assert.deepEqual(got.get('b'), { blocks: 12, weighted: 12 });
  });

  it('scores long runs shared by many pods, with a pod dropping out midway', () => {
    const x = new InMemoryKvBlockIndex();
    const n = 500;
    const keys = Array.from({ length: n }, (_, i) => 1000 + i);
    for (let p = 0; p < 20; p++) x.add(null, K(...keys), { pod: `p${p}`, tier: p % 4 === 0 ? 'cpu' : 'gpu' });
    x.evict(BigInt(keys[300]), 'request', { pod: 'p7', tier: 'gpu' });
    x.evict(BigInt(keys[100]), 'request', { pod: 'p9', tier: 'cpu' }); // p9 holds gpu only: no-op
    const got = x.longestPrefix(K(...keys));
    assert.equal(got.size, 20);
    for (let p = 0; p < 20; p++) {
      const blocks = p === 7 ? 300 : n;
      assert.equal(got.get(`p${p}`)?.blocks, blocks, `p${p}`);
      assert.ok(Math.abs(got.get(`p${p}`)!.weighted - blocks * (p % 4 === 0 ? 0.8 : 1)) < 1e-9, `p${p} weighted`);
    }
  });
});

describe('InMemoryKvBlockIndex engine map', () => {
  it('matches a naive model under random stores, engine-key evictions and clears, across growth', () => {
    const x = new InMemoryKvBlockIndex();
    // naive: "pod|engine" -> request keys (newest last); "pod|request" -> references
    const eng = new Map<string, number[]>();
    const refs = new Map<string, number>();
    const r = rnd(99);
    const pods = ['a', 'b', 'c'];
    let nextEngine = 1;
    let maxMapped = 0;
    const stored: [string, number][] = []; // (pod, engine key) pairs ever stored
    for (let step = 0; step < 6000; step++) {
      const pod = pods[r(pods.length)];
      const op = r(10);
      if (op < 6) {
        // a chain of 1-4 blocks; engine keys either fresh or shared by pods (same hash seed)
        const n = 1 + r(4);
        const ek = Array.from({ length: n }, () => (r(3) === 0 && stored.length > 0 ? stored[r(stored.length)][1] : nextEngine++ * 7919));
        const rk = Array.from({ length: n }, () => 1 + r(3000));
        x.add(K(...ek), K(...rk), { pod, tier: 'gpu' });
        for (let i = 0; i < n; i++) {
          const list = eng.get(`${pod}|${ek[i]}`) ?? [];
          const at = list.indexOf(rk[i]);
          if (at < 0) list.push(rk[i]);
          else if (at !== list.length - 1) {
            // already mapped: the inline (newest) mapping is unchanged
          }
          eng.set(`${pod}|${ek[i]}`, list);
          refs.set(`${pod}|${rk[i]}`, (refs.get(`${pod}|${rk[i]}`) ?? 0) + 1);
          stored.push([pod, ek[i]]);
        }
      } else if (op < 9 && stored.length > 0) {
        const [p, ek] = stored[r(stored.length)];
        x.evict(BigInt(ek), 'engine', { pod: p, tier: 'gpu' });
        const list = eng.get(`${p}|${ek}`);
        if (list) {
          for (const rk of list) {
            const n = refs.get(`${p}|${rk}`) ?? 0;
            if (n > 1) refs.set(`${p}|${rk}`, n - 1);
            else refs.delete(`${p}|${rk}`);
          }
          if (!list.some((rk) => refs.has(`${p}|${rk}`))) eng.delete(`${p}|${ek}`);
        }
      } else if (r(60) === 0) {
        x.clear(pod);
        for (const k of [...eng.keys()]) if (k.startsWith(`${pod}|`)) eng.delete(k);
        for (const k of [...refs.keys()]) if (k.startsWith(`${pod}|`)) refs.delete(k);
      }
      maxMapped = Math.max(maxMapped, eng.size);
      if (step % 50 === 0) {
        assert.equal(x.stats().engineKeys, eng.size, `step ${step}: engine keys`);
        assert.equal(x.stats().entries, refs.size, `step ${step}: entries`);
        for (const [name, list] of eng) {
          const [p, ek] = name.split('|');
          assert.equal(x.getRequestKey(BigInt(ek), p), BigInt(list[list.length - 1]), `step ${step}: ${name}`);
        }
      }
    }
    for (const [p, ek] of stored) if (!eng.has(`${p}|${ek}`)) assert.equal(x.getRequestKey(BigInt(ek), p), undefined);
    assert.ok(maxMapped > 2048, `at most ${maxMapped} mappings: growth not exercised`);
  });
});
