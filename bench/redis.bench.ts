// Redis shared-index benchmark: lookup latency for 512 keys x 8 pods and batched event
// ingest, each beside the in-memory index measured in this same run, on a redis-server this
// script starts on a free loopback port. Targets: lookup p50 <= 2 ms, ingest >= 100,000
// block stores/s. Every loop is bounded in count and time. BENCH_QUICK=1 shortens it.
import { cpus, loadavg } from 'node:os';
import { pino } from 'pino';
import { startRedisServer } from '../test/helpers/redis-server.js';
import { RedisKvBlockIndex } from '../src/index/redis-index.js';
import { InMemoryKvBlockIndex } from '../src/index/memory-index.js';
import type { KvBlockIndex, PodEntry } from '../src/index/types.js';

const QUICK = process.env.BENCH_QUICK === '1';
const LOOKUP_KEYS = 512;
const PODS = 8;
const LOOKUPS = QUICK ? 300 : 2000;
const LOOKUP_TIME_CAP_MS = QUICK ? 3_000 : 10_000;
const BLOCKS_PER_EVENT = 16; // one BlockStored of a 256-token prompt at block size 16
const INGEST_BLOCKS = QUICK ? 100_000 : 400_000;
const INGEST_TIME_CAP_MS = QUICK ? 5_000 : 20_000;

const silent = pino({ level: 'silent' });

function key(i: number): bigint {
  return (BigInt(i + 1) * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
}
function chain(from: number, n: number): BigUint64Array {
  const a = new BigUint64Array(n);
  for (let i = 0; i < n; i++) a[i] = key(from + i);
  return a;
}
/** redis-server CPU seconds (user + sys): a load-independent view of the server-side cost. */
async function serverCpu(idx: RedisKvBlockIndex): Promise<number> {
  const info = await idx.client.info('cpu');
  return Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0) + Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0);
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const fmt = (x: number, d = 3) => x.toFixed(d);

interface LookupFigures { p50: number; p90: number; p99: number; n: number; blocks: number }

/** 8 pods each hold the whole 512-block chain (some on cpu): the lookup walks every key. */
async function benchLookup(idx: KvBlockIndex, flush: () => Promise<void>): Promise<LookupFigures> {
  const keys = chain(0, LOOKUP_KEYS);
  for (let p = 0; p < PODS; p++) {
    const entry: PodEntry = { pod: `10.0.0.${p + 1}:8000`, tier: p % 4 === 3 ? 'cpu' : 'gpu' };
    idx.add(chain(1_000_000 + p * LOOKUP_KEYS, LOOKUP_KEYS), keys, entry);
  }
  await flush();
  const check = await idx.longestPrefix(keys);
  if (check.size !== PODS || [...check.values()].some((m) => m.blocks !== LOOKUP_KEYS)) throw new Error('lookup setup: every pod must hold every block');
  for (let i = 0; i < 50; i++) await idx.longestPrefix(keys); // warm-up
  const times: number[] = [];
  const deadline = performance.now() + LOOKUP_TIME_CAP_MS;
  for (let i = 0; i < LOOKUPS && performance.now() < deadline; i++) {
    const t0 = performance.now();
    const res = await idx.longestPrefix(keys);
    times.push(performance.now() - t0);
    if (res.size !== PODS) throw new Error(`lookup ${i}: ${res.size} pods`);
  }
  times.sort((a, b) => a - b);
  return { p50: pct(times, 50), p90: pct(times, 90), p99: pct(times, 99), n: times.length, blocks: LOOKUP_KEYS };
}

interface IngestFigures { blocks: number; ms: number; perSec: number }

/** Events as the ingester writes them: BlockStored of 16 blocks with engine keys, 4 pods. */
async function benchIngest(idx: KvBlockIndex, flush: () => Promise<void>): Promise<IngestFigures> {
  const events = Math.floor(INGEST_BLOCKS / BLOCKS_PER_EVENT);
  const reqs: BigUint64Array[] = [];
  const engs: BigUint64Array[] = [];
  for (let e = 0; e < events; e++) {
    reqs.push(chain(10_000_000 + e * BLOCKS_PER_EVENT, BLOCKS_PER_EVENT));
    engs.push(chain(50_000_000 + e * BLOCKS_PER_EVENT, BLOCKS_PER_EVENT));
  }
  const entries: PodEntry[] = Array.from({ length: 4 }, (_, p) => ({ pod: `10.0.1.${p + 1}:8000`, tier: 'gpu' }));
  const deadline = performance.now() + INGEST_TIME_CAP_MS;
  const t0 = performance.now();
  let blocks = 0;
  // a ZMQ batch at a time (64 events), yielding between batches like the subscriber does
  for (let e = 0; e < events && performance.now() < deadline; e += 64) {
    const end = Math.min(events, e + 64);
    for (let j = e; j < end; j++) {
      idx.add(engs[j], reqs[j], entries[j & 3]);
      blocks += BLOCKS_PER_EVENT;
    }
    await new Promise<void>((r) => setImmediate(r));
  }
  await flush();
  const ms = performance.now() - t0;
  return { blocks, ms, perSec: (blocks / ms) * 1000 };
}

async function main(): Promise<void> {
  const server = await startRedisServer();
  console.log(`redis index benchmark (${QUICK ? 'quick' : 'full'}), redis-server on ${server.url}`);
  console.log(`machine: ${cpus().length} cpus, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} (wall-clock figures degrade with load; server CPU figures much less)`);
  const redis = await RedisKvBlockIndex.connect({ address: server.url, keyPrefix: 'bench:', lookupTimeoutMs: 1000, writeTimeoutMs: 10_000 }, { logger: silent });
  const mem = new InMemoryKvBlockIndex();
  let failed: boolean;
  try {
    const memLookup = await benchLookup(mem, async () => {});
    let cpu0 = await serverCpu(redis);
    const redLookup = await benchLookup(redis, () => redis.flush());
    const lookupCpuUs = ((await serverCpu(redis)) - cpu0) * 1e6 / (redLookup.n + 51); // + warm-up and check
    console.log(`\nlookup: ${LOOKUP_KEYS} keys x ${PODS} pods (every pod holds every block), ${redLookup.n} lookups`);
    console.log(`  in-memory  p50 ${fmt(memLookup.p50)} ms  p90 ${fmt(memLookup.p90)} ms  p99 ${fmt(memLookup.p99)} ms`);
    console.log(`  redis      p50 ${fmt(redLookup.p50)} ms  p90 ${fmt(redLookup.p90)} ms  p99 ${fmt(redLookup.p99)} ms   (one round trip each)`);
    console.log(`  redis-server CPU per lookup: ${fmt(lookupCpuUs / 1000)} ms (includes the setup writes)`);
    console.log(`  ratio redis/in-memory p50: ${fmt(redLookup.p50 / memLookup.p50, 1)}x`);
    const lookupOk = redLookup.p50 <= 2;
    console.log(`  target redis p50 <= 2 ms: ${lookupOk ? 'PASS' : 'FAIL'}`);

    await redis.destroyAll();
    const memIngest = await benchIngest(mem, async () => {});
    cpu0 = await serverCpu(redis);
    const redIngest = await benchIngest(redis, () => redis.flush());
    const ingestCpuUs = ((await serverCpu(redis)) - cpu0) * 1e6 / redIngest.blocks;
    const stats = await redis.stats();
    if (stats.entries < redIngest.blocks) throw new Error(`ingest: only ${stats.entries} of ${redIngest.blocks} entries landed in Redis`);
    console.log(`\ningest: BlockStored events of ${BLOCKS_PER_EVENT} blocks with engine keys, 4 pods, batched`);
    console.log(`  in-memory  ${Math.round(memIngest.perSec).toLocaleString('en-US')} block stores/s (${memIngest.blocks} in ${fmt(memIngest.ms, 0)} ms)`);
    console.log(`  redis      ${Math.round(redIngest.perSec).toLocaleString('en-US')} block stores/s (${redIngest.blocks} in ${fmt(redIngest.ms, 0)} ms, all acknowledged)`);
    console.log(`  redis-server CPU per block store: ${fmt(ingestCpuUs, 2)} us (server-bound ceiling ~${Math.round(1e6 / ingestCpuUs).toLocaleString('en-US')}/s)`);
    console.log(`  ratio redis/in-memory throughput: ${fmt(redIngest.perSec / memIngest.perSec, 3)}x`);
    const ingestOk = redIngest.perSec >= 100_000;
    console.log(`  target redis >= 100,000 block stores/s: ${ingestOk ? 'PASS' : 'FAIL'}`);
    failed = !lookupOk || !ingestOk;
  } finally {
    mem.close();
    await redis.destroyAll().catch(() => {});
    await redis.close();
    await server.stop();
  }
  process.exitCode = failed ? 1 : 0;
}

await main();
