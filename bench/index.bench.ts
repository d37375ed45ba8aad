// npm run bench:index [-- --quick]
// Block keys, ingest, scoring and memory of the in-memory index, each next to a naive
// baseline measured in the same run (BigInt FNV over built CBOR; Map<key, Map<pod, refs>>).
// BENCH_INDEX_BASELINE=/path/to/other/worktree also loads that tree's src/index/memory-index.ts
// and prints its ingest and scoring beside this tree's, runs alternated (A B B A ...) so machine
// noise hits both alike; e.g. `git worktree add /tmp/base main && (cd /tmp/base && npm ci)`.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { BlockKeyer, type HashAlgorithm } from '../src/index/keys.js';
import { encodeCbor } from '../src/index/cbor.js';
import { InMemoryKvBlockIndex } from '../src/index/memory-index.js';
import type { PrefixMatch } from '../src/index/types.js';

const quick = process.argv.includes('--quick');
const MODEL = 'Qwen/Qwen3-32B';

/** What the ingest and scoring sections use of an index, so another tree's class fits too. */
interface BenchedIndex {
  add(engineKeys: BigUint64Array | null, requestKeys: BigUint64Array, entry: { pod: string; tier: string }): void;
  longestPrefix(keys: BigUint64Array, pods?: ReadonlySet<string> | null): Map<string, PrefixMatch>;
}
/** A tree under test: this one, and with BENCH_INDEX_BASELINE the other one. */
interface Tree {
  name: string;
  make: () => BenchedIndex;
}
const trees: Tree[] = [{ name: 'current', make: () => new InMemoryKvBlockIndex() }];
const baselineDir = process.env.BENCH_INDEX_BASELINE;
if (baselineDir) {
  const mod = (await import(pathToFileURL(path.resolve(baselineDir, 'src/index/memory-index.ts')).href)) as { InMemoryKvBlockIndex: new () => BenchedIndex };
  trees.push({ name: `baseline (${path.basename(path.resolve(baselineDir))})`, make: () => new mod.InMemoryKvBlockIndex() });
}
/** Alternation rounds per measurement when a baseline is loaded. */
const ROUNDS = 10;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const fmt = (n: number, d = 2) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const us = (ms: number) => `${fmt(ms * 1000, 1)} us`;

/** CPU ms (user + system) of this process for the last timeIt call, per iteration. */
let lastCpuPerCall = 0;
const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;

/**
 * Runs fn repeatedly for at most `maxMs` / `maxIters`, returns per-call wall times in ms.
 * Also records the mean CPU time per call: on a shared machine wall time includes waiting
 * for a core, CPU time does not.
 */
function timeIt(fn: () => void, maxIters: number, maxMs: number): number[] {
  for (let i = 0; i < Math.min(20, maxIters); i++) fn(); // warm-up
  const out: number[] = [];
  const end = performance.now() + maxMs;
  const c0 = process.cpuUsage();
  for (let i = 0; i < maxIters && performance.now() < end; i++) {
    const t = performance.now();
    fn();
    out.push(performance.now() - t);
  }
  lastCpuPerCall = cpuMs(process.cpuUsage(c0)) / out.length;
  return out;
}

/**
 * timeIt for each of `fns` in turn, `rounds` times, the order reversed every other round
 * (A B B A ...), so load that comes and goes during the run falls on all of them alike.
 * Each fn gets `maxIters` / `maxMs` in all, as timeIt alone would. Returns each fn's wall
 * times and mean CPU ms per call.
 */
function timeAlternating(fns: (() => void)[], maxIters: number, maxMs: number, rounds: number): { times: number[]; cpu: number }[] {
  const out = fns.map(() => ({ times: [] as number[], cpuSum: 0 }));
  for (let round = 0; round < rounds; round++) {
    const order = fns.map((_, i) => (round % 2 === 0 ? i : fns.length - 1 - i));
    for (const i of order) {
      const t = timeIt(fns[i], Math.max(1, Math.ceil(maxIters / rounds)), maxMs / rounds);
      out[i].times.push(...t);
      out[i].cpuSum += lastCpuPerCall * t.length;
    }
  }
  return out.map((o) => ({ times: o.times, cpu: o.cpuSum / o.times.length }));
}

const gc: () => void = (() => {
  // a real gc() even without --expose-gc, so heap deltas and ingest runs do not include earlier garbage
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

function rng(seed: number) {
  return () => {
    seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    return seed;
  };
}

// ---------------- naive baselines ----------------
function naiveKeys(tokens: number[], bs: number, seed: string, model: string): bigint[] {
  const fnv = (b: Uint8Array) => {
    let h = 0xcbf29ce484222325n;
    for (const x of b) h = ((h ^ BigInt(x)) * 0x100000001b3n) & 0xffffffffffffffffn;
    return h;
  };
  let parent = fnv(encodeCbor([fnv(new TextEncoder().encode(seed)), null, model]));
  const out: bigint[] = [];
  for (let i = 0; i + bs <= tokens.length; i += bs) {
    parent = fnv(encodeCbor([parent, tokens.slice(i, i + bs), null]));
    out.push(parent);
  }
  return out;
}

class NaiveIndex {
  keys = new Map<bigint, Map<string, number>>();
  engine = new Map<string, bigint[]>();
  add(engineKeys: BigUint64Array, requestKeys: BigUint64Array, pod: string): void {
    for (const k of requestKeys) {
      let m = this.keys.get(k);
      if (!m) this.keys.set(k, (m = new Map()));
      m.set(pod, (m.get(pod) ?? 0) + 1);
    }
    for (let i = 0; i < engineKeys.length; i++) this.engine.set(`${pod}|${engineKeys[i]}`, [requestKeys[i]]);
  }
  longestPrefix(keys: BigUint64Array, pods: Set<string> | null): Map<string, PrefixMatch> {
    const res = new Map<string, PrefixMatch>();
    let active: Set<string> | null = null;
    for (let i = 0; i < keys.length; i++) {
      const m = this.keys.get(keys[i]);
      if (!m) break;
      const next = new Set<string>();
      for (const pod of m.keys()) if ((active ? active.has(pod) : true) && (!pods || pods.has(pod))) next.add(pod);
      for (const pod of next) {
        const r = res.get(pod) ?? { blocks: 0, weighted: 0 };
        r.blocks = i + 1;
        r.weighted += 1;
        res.set(pod, r);
      }
      if (next.size === 0) break;
      active = next;
    }
    return res;
  }
}

const rows: string[][] = [];
function row(...cols: string[]) {
  rows.push(cols);
  console.log(cols.join('  |  '));
}

// ---------------- 1. key computation ----------------
function benchKeys(): void {
  console.log('\n## block keys (8k-token prompt, block size 16)');
  const r = rng(1);
  const prompt = Array.from({ length: 8192 }, () => r() % 151_000);
  const times: Record<string, number[]> = {};
  const cpu: Record<string, number> = {};
  for (const algorithm of ['cbor-fnv', 'fast64'] as HashAlgorithm[]) {
    const k = new BlockKeyer({ blockSize: 16, hashSeed: '42', algorithm });
    times[algorithm] = timeIt(() => k.keys(prompt, { model: MODEL }), 2000, quick ? 500 : 2000);
    cpu[algorithm] = lastCpuPerCall;
  }
  times.naive = timeIt(() => naiveKeys(prompt, 16, '42', MODEL), 200, quick ? 500 : 2000);
  cpu.naive = lastCpuPerCall;
  const naiveP50 = pct(times.naive, 50);
  for (const [name, t] of Object.entries(times)) {
    const p50 = pct(t, 50);
    row(`keys ${name}`, `p50 ${us(p50)}`, `p99 ${us(pct(t, 99))}`, `${fmt(8192 / p50 / 1000, 1)} M tokens/s at p50`, `cpu ${fmt(8192 / cpu[name] / 1000, 1)} M tokens/s`, `x${fmt(naiveP50 / p50, 1)} vs naive BigInt`);
  }
}

// ---------------- 2. ingest ----------------
function benchIngest(): void {
  console.log('\n## ingest: add(engineKeys, requestKeys, entry), 16-block events over 8 pods');
  const total = quick ? 300_000 : 2_000_000;
  const per = 16;
  const r = rng(2);
  const events: { e: BigUint64Array; k: BigUint64Array; pod: string }[] = [];
  for (let i = 0; i < total / per; i++) {
    const e = new BigUint64Array(per);
    const k = new BigUint64Array(per);
    for (let j = 0; j < per; j++) {
      e[j] = (BigInt(r()) << 32n) | BigInt(r());
      // shared prefixes: half the keys recur across pods
      k[j] = j < per / 2 ? BigInt((i % 512) * per + j + 1) : (BigInt(r()) << 32n) | BigInt(r());
    }
    events.push({ e, k, pod: `10.0.0.${i % 8}:8000` });
  }
  // one fresh index per run; with a baseline, 3 runs per tree alternated, the median reported
  const reps = trees.length > 1 ? 3 : 1;
  const runs = trees.map(() => [] as { wall: number; cpu: number; faults: number }[]);
  for (let rep = 0; rep < reps; rep++) {
    for (let a = 0; a < trees.length; a++) {
      const ti = rep % 2 === 0 ? a : trees.length - 1 - a;
      gc();
      const idx = trees[ti].make();
      const faults0 = process.resourceUsage().minorPageFault;
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      for (const ev of events) idx.add(ev.e, ev.k, { pod: ev.pod, tier: 'gpu' });
      // first touches of fresh memory (faults): costly on a VM, part of what growth from empty costs
      runs[ti].push({
        wall: total / ((performance.now() - t0) / 1000),
        cpu: total / (cpuMs(process.cpuUsage(c0)) / 1000),
        faults: process.resourceUsage().minorPageFault - faults0,
      });
    }
  }
  const median = (xs: number[]) => pct(xs, 50);
  const fast = median(runs[0].map((x) => x.wall));
  const fastCpu = median(runs[0].map((x) => x.cpu));
  const faults = median(runs[0].map((x) => x.faults));
  const naive = new NaiveIndex();
  const nn = Math.min(events.length, quick ? events.length : events.length / 4);
  const t = performance.now();
  const c = process.cpuUsage();
  for (let i = 0; i < nn; i++) naive.add(events[i].e, events[i].k, events[i].pod);
  const slow = (nn * per) / ((performance.now() - t) / 1000);
  const slowCpu = (nn * per) / (cpuMs(process.cpuUsage(c)) / 1000);
  row('ingest in-memory', `${fmt(fast / 1e6)} M block stores/s wall`, `${fmt(fastCpu / 1e6)} M/s cpu`, `${fmt(faults / 1000, 1)}k page faults`, `naive Map index ${fmt(slow / 1e6)} M/s wall, ${fmt(slowCpu / 1e6)} M/s cpu`, `x${fmt(fastCpu / slowCpu, 1)}`);
  for (let ti = 1; ti < trees.length; ti++) {
    const wall = median(runs[ti].map((x) => x.wall));
    const cpu = median(runs[ti].map((x) => x.cpu));
    row(`ingest ${trees[ti].name}`, `${fmt(wall / 1e6)} M block stores/s wall`, `${fmt(cpu / 1e6)} M/s cpu`, `${fmt(median(runs[ti].map((x) => x.faults)) / 1000, 1)}k page faults`, `current/baseline cpu rate x${fmt(fastCpu / cpu)}`);
  }
}

// ---------------- 3. scoring ----------------
/**
 * `shuffled`: each block's holders are stored in a different order. The key table keeps every
 * run sorted by pod (src/index/memory/key-table.ts), so the walk's bulk path for identical
 * runs still applies; a tree without that ordering reads every slot of every block.
 */
function benchScore(label: string, nKeys: number, nPods: number, iters: number, shuffled = false): void {
  const r = rng(3 + nKeys);
  const keys = BigUint64Array.from({ length: nKeys }, () => (BigInt(r()) << 32n) | BigInt(r()));
  const idxs = trees.map((t) => t.make());
  const naive = new NaiveIndex();
  const pods: string[] = [];
  const tierOf = (p: number) => (p % 4 === 0 ? 'cpu' : 'gpu');
  for (let p = 0; p < nPods; p++) {
    const pod = `10.0.${p >> 8}.${p & 255}:8000`;
    pods.push(pod);
    // worst case: every pod holds the whole prompt, so the walk cannot stop early
    if (!shuffled) for (const idx of idxs) idx.add(null, keys, { pod, tier: tierOf(p) });
    naive.add(new BigUint64Array(0), keys, pod);
  }
  if (shuffled) {
    const order = pods.map((_, p) => p);
    for (let i = 0; i < nKeys; i++) {
      for (let a = order.length - 1; a > 0; a--) {
        const b = r() % (a + 1);
        [order[a], order[b]] = [order[b], order[a]];
      }
      for (const p of order) for (const idx of idxs) idx.add(null, keys.subarray(i, i + 1), { pod: pods[p], tier: tierOf(p) });
    }
  }
  const filter = new Set(pods);
  for (const idx of idxs) {
    const check = idx.longestPrefix(keys, filter);
    if (check.size !== nPods || [...check.values()].some((m) => m.blocks !== nKeys)) throw new Error('bench sanity check failed');
  }
  const runs = timeAlternating(idxs.map((idx) => () => idx.longestPrefix(keys, filter)), iters, quick ? 1000 : 3000, trees.length > 1 ? ROUNDS : 1);
  const fast = runs[0].times;
  const slow = timeIt(() => naive.longestPrefix(keys, filter), Math.max(5, iters / 20), quick ? 1000 : 3000);
  row(`score ${label}`, `p50 ${us(pct(fast, 50))}`, `p90 ${us(pct(fast, 90))}`, `p99 ${us(pct(fast, 99))}`, `mean cpu ${us(runs[0].cpu)}`, `naive p50 ${us(pct(slow, 50))}`, `x${fmt(pct(slow, 50) / pct(fast, 50), 1)}`);
  for (let ti = 1; ti < trees.length; ti++) {
    const t = runs[ti].times;
    row(`  ${trees[ti].name}`, `p50 ${us(pct(t, 50))}`, `p90 ${us(pct(t, 90))}`, `p99 ${us(pct(t, 99))}`, `mean cpu ${us(runs[ti].cpu)}`, `current/baseline p50 x${fmt(pct(fast, 50) / pct(t, 50))}, cpu x${fmt(runs[0].cpu / runs[ti].cpu)}`);
  }
}

// ---------------- 4. memory ----------------
function benchMemory(): void {
  const entries = quick ? 1_000_000 : 10_000_000;
  const podsPerBlock = 8;
  const blocks = entries / podsPerBlock;
  console.log(`\n## memory: ${fmt(entries / 1e6, 1)}M (block, pod) entries = ${fmt(blocks / 1e6, 2)}M blocks x ${podsPerBlock} pods, with per-pod engine keys`);
  const g = { gc };
  g.gc();
  const before = process.memoryUsage();
  const idx = new InMemoryKvBlockIndex({ capacity: entries });
  const r = rng(4);
  const chunk = 64;
  const t = performance.now();
  for (let p = 0; p < podsPerBlock; p++) {
    const pod = `10.0.0.${p}:8000`;
    for (let b = 0; b < blocks; b += chunk) {
      const n = Math.min(chunk, blocks - b);
      const k = BigUint64Array.from({ length: n }, (_, j) => BigInt(b + j + 1) * 0x9e3779b97f4a7c15n & 0xffffffffffffffffn);
      const e = BigUint64Array.from({ length: n }, () => (BigInt(r()) << 32n) | BigInt(r()));
      idx.add(e, k, { pod, tier: 'gpu' });
    }
  }
  const secs = (performance.now() - t) / 1000;
  g.gc?.();
  const after = process.memoryUsage();
  const st = idx.stats();
  const arrays = idx.memoryBytes();
  const rss = after.rss - before.rss;
  const heap = after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers;
  row('memory', `${fmt(st.entries / 1e6, 1)}M entries`, `typed arrays ${fmt(arrays / st.entries, 1)} B/entry`, `heap+buffers ${fmt(heap / st.entries, 1)} B/entry`, `rss delta ${fmt(rss / st.entries, 1)} B/entry`, `(${fmt(st.entries / secs / 1e6)} M stores/s while building)`);
  // naive baseline at 1/10 the size
  const nEntries = entries / 10;
  g.gc?.();
  const nb = process.memoryUsage();
  const naive = new NaiveIndex();
  for (let p = 0; p < podsPerBlock; p++) {
    for (let b = 0; b < nEntries / podsPerBlock; b += chunk) {
      const n = Math.min(chunk, nEntries / podsPerBlock - b);
      const k = BigUint64Array.from({ length: n }, (_, j) => BigInt(b + j + 1));
      const e = BigUint64Array.from({ length: n }, () => (BigInt(r()) << 32n) | BigInt(r()));
      naive.add(e, k, `10.0.0.${p}:8000`);
    }
  }
  g.gc?.();
  const na = process.memoryUsage();
  const naivePer = (na.heapUsed + na.arrayBuffers - nb.heapUsed - nb.arrayBuffers) / nEntries;
  row('memory naive Map index', `${fmt(nEntries / 1e6, 1)}M entries`, `heap ${fmt(naivePer, 1)} B/entry`, `x${fmt(naivePer / (heap / st.entries), 1)} vs in-memory`);
  if (naive.keys.size === 0 || idx.stats().entries === 0) throw new Error('unreachable');
}

console.log(`kvrouter bench:index${quick ? ' (quick)' : ''}${baselineDir ? `  baseline ${path.resolve(baselineDir)}` : ''}  node ${process.version}  load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')} on ${(await import('node:os')).cpus().length} cores`);
benchKeys();
benchIngest();
console.log('\n## longest-prefix scoring (tier-weighted, pod filter given)');
benchScore('240k tokens bs64 = 3,750 keys x 96 pods', 3750, 96, 2000);
benchScore('8k tokens bs16 = 512 keys x 8 pods', 512, 8, 20000);
benchScore('3,750 keys x 96 pods, holders in a different order per block', 3750, 96, 1000, true);
benchMemory();
console.log('\ntargets: >= 20 M tokens/s (cbor-fnv), >= 1 M block stores/s, 3,750x96 p50 <= 1 ms, 512x8 p50 <= 50 us, <= 100 B/entry at 10M');
