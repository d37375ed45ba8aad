// The Redis index against the in-memory one: the same random operation sequences (adds with
// and without engine keys at both block-size ratios, evictions by engine and request key,
// tiers, clears, speculative entries) must give the same lookups, stats and parent lookups.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { RedisKvBlockIndex } from '../../src/index/redis-index.js';
import { InMemoryKvBlockIndex } from '../../src/index/memory-index.js';
import type { PodEntry, PrefixMatch } from '../../src/index/types.js';
import { pino } from 'pino';
import { rng } from '../helpers/rng.js';

let redis: RedisServerHandle;
before(async () => { redis = await startRedisServer(); });
after(async () => { await redis?.stop(); });


const PODS = ['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000'];
const TIERS = ['gpu', 'cpu', 'CPU_Pinned', ''];

/** Same pods, same run lengths, weighted sums equal up to float rounding (the backends add in different orders). */
function assertSameMatches(got: Map<string, PrefixMatch>, want: Map<string, PrefixMatch>, msg: string): void {
  const norm = (m: Map<string, PrefixMatch>) => [...m].map(([pod, v]) => [pod, v.blocks, Math.round(v.weighted * 1e9) / 1e9] as const).sort((a, b) => a[0].localeCompare(b[0]));
  assert.deepEqual(norm(got), norm(want), msg);
}

for (const seed of [1, 2, 3, 4]) {
  test(`random operation sequence ${seed}: Redis and in-memory indexes agree`, async () => {
    const r = rng(seed);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)];
    const mem = new InMemoryKvBlockIndex({ tierWeights: { gpu: 1, cpu: 0.8, disk: 0.25 } });
    const red = await RedisKvBlockIndex.connect({ address: redis.url, keyPrefix: `diff${seed}:`, lookupTimeoutMs: 5000, tierWeights: { gpu: 1, cpu: 0.8, disk: 0.25 } }, { logger: pino({ level: 'silent' }) });
    // A small key universe so operations collide: chains of request keys 1..40, engine keys 1000+.
    const chain = (start: number, n: number) => BigUint64Array.from({ length: n }, (_, i) => BigInt(start + i + 1));
    const engineChain = (start: number, n: number) => BigUint64Array.from({ length: n }, (_, i) => BigInt(1000 + start + i + 1));
    const usedEngine: bigint[] = [];
    try {
      for (let step = 0; step < 400; step++) {
        const x = r();
        const entry: PodEntry = { pod: pick(PODS), tier: pick(TIERS), speculative: r() < 0.1 };
        if (x < 0.4) {
          const start = Math.floor(r() * 30);
          const nR = 1 + Math.floor(r() * 8);
          const ratio = pick([0, 1, 4, -4]);
          let eng: BigUint64Array | null = null;
          if (ratio === 1) eng = engineChain(start * 4, nR);
          else if (ratio === 4) eng = engineChain(start * 4, nR * 4); // engine bs 16, router bs 64
          else if (ratio === -4) eng = engineChain(start * 4, Math.max(1, nR >> 2)); // engine bs 64, router 16
          if (eng) usedEngine.push(...eng);
          const req = chain(start, nR);
          mem.add(eng, req, entry);
          red.add(eng, req, entry);
        } else if (x < 0.6 && usedEngine.length) {
          const e = pick(usedEngine);
          mem.evict(e, 'engine', entry);
          red.evict(e, 'engine', entry);
        } else if (x < 0.8) {
          const k = BigInt(1 + Math.floor(r() * 40));
          mem.evict(k, 'request', entry);
          red.evict(k, 'request', entry);
        } else if (x < 0.83) {
          mem.clear(entry.pod);
          red.clear(entry.pod);
        } else if (x < 0.88) {
          const keys = chain(Math.floor(r() * 30), 1 + Math.floor(r() * 6));
          mem.addSpeculative(keys, entry.pod, 60_000);
          red.addSpeculative(keys, entry.pod, 60_000);
        } else {
          const keys = chain(Math.floor(r() * 5), 5 + Math.floor(r() * 30));
          const filter = r() < 0.3 ? new Set([pick(PODS), pick(PODS)]) : null;
          assertSameMatches(await red.longestPrefix(keys, filter), mem.longestPrefix(keys, filter), `lookup at step ${step}`);
          const e = usedEngine.length ? pick(usedEngine) : 1001n;
          const pod = pick(PODS);
          assert.equal(await red.getRequestKey(e, pod), mem.getRequestKey(e, pod), `getRequestKey(${e}, ${pod}) at step ${step}`);
        }
        if (step % 50 === 49) {
          const { capacity: _c, ...want } = mem.stats();
          const { capacity: _r, ...got } = await red.stats();
          assert.deepEqual(got, want, `stats at step ${step}`);
        }
      }
      for (let s = 0; s < 35; s++) {
        const keys = chain(s, 6);
        assertSameMatches(await red.longestPrefix(keys), mem.longestPrefix(keys), `final lookup from ${s}`);
      }
    } finally {
      mem.close();
      await red.destroyAll();
      await red.close();
    }
  });
}
