// Simulator throughput: 8 simulated pods in one process (one shared clock) on the llm-d
// precise-prefix benchmark shape — 150 groups x 5 prompts, 6,000-token shared system prompt +
// 1,200-token question, 1,000 output tokens — offered at 60 QPS of model time.
//
// The pods run on a discrete-event clock, so the CPU they need per model second is measured
// directly: sustainable QPS = offered QPS x (model seconds / CPU seconds). Everything a real
// pod does per step runs: scheduling, block pool, hashing, event encoding, ZeroMQ publishing
// (a SUB per pod receives every batch). HTTP is left out here; --http adds a wall-clock run
// through the pods' HTTP servers with streaming clients in the same process.
//
// Baseline, measured in the same run: the CPU to compute the same requests' vLLM block hashes
// alone (the floor any faithful simulator pays). Ratio = simulator CPU / baseline CPU.
//
// Usage: npm run bench:sim [-- --qps 60 --groups 150 --pods 8 --max-wall 120]
//        npm run bench:sim -- --http [--http-requests 240 --time-scale 1]
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as zmq from 'zeromq';
import { SimHost, VirtualClock, RealClock, BlockHasher, type EngineRequest } from '../src/sim/index.js';

const { values: a } = parseArgs({
  options: {
    qps: { type: 'string', default: '60' },
    groups: { type: 'string', default: '150' },
    'prompts-per-group': { type: 'string', default: '5' },
    'system-tokens': { type: 'string', default: '6000' },
    'question-tokens': { type: 'string', default: '1200' },
    'output-tokens': { type: 'string', default: '1000' },
    pods: { type: 'string', default: '8' },
    'max-wall': { type: 'string', default: '120' },
    seed: { type: 'string', default: '1' },
    http: { type: 'boolean', default: false },
    'http-client': { type: 'boolean', default: false },
    'http-requests': { type: 'string', default: '240' },
    'time-scale': { type: 'string', default: '1' },
  },
});
const QPS = Number(a.qps);
const GROUPS = Number(a.groups);
const PER_GROUP = Number(a['prompts-per-group']);
const SYS = Number(a['system-tokens']);
const Q = Number(a['question-tokens']);
const OUT = Number(a['output-tokens']);
const PODS = Number(a.pods);
const MAX_WALL_MS = Number(a['max-wall']) * 1000;

function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const rand = rng(Number(a.seed));
const tok = () => 100 + Math.floor(rand() * 150_000);
const systems = Array.from({ length: GROUPS }, () => Array.from({ length: SYS }, tok));
interface Job {
  group: number;
  prompt: number[];
  at: number;
}
const jobs: Job[] = [];
for (let g = 0; g < GROUPS; g++) for (let p = 0; p < PER_GROUP; p++) jobs.push({ group: g, prompt: [...systems[g], ...Array.from({ length: Q }, tok)], at: 0 });
for (let i = jobs.length - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1));
  [jobs[i], jobs[j]] = [jobs[j], jobs[i]];
}
let t = 0;
for (const j of jobs) {
  t += -Math.log(1 - rand()) / QPS; // Poisson arrivals
  j.at = t;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function main(): Promise<void> {
  // --- baseline: block hashes of the same requests (prompt + output), same algorithm ---
  const hasher = new BlockHasher('sha256_cbor', '42');
  const cpuB0 = process.cpuUsage();
  const wallB0 = performance.now();
  const outTokens = Array.from({ length: OUT }, tok);
  const sample = jobs.slice(0, Math.min(jobs.length, 100));
  for (const j of sample) {
    const all = j.prompt.concat(outTokens);
    let parent: Buffer | null = null;
    for (let i = 0; (i + 1) * 16 <= all.length; i++) parent = hasher.hashBlock(parent, all, i * 16, (i + 1) * 16, null);
  }
  const cpuB = process.cpuUsage(cpuB0);
  const baselineMsPerReq = (cpuB.user + cpuB.system) / 1000 / sample.length;
  void wallB0;

  // --- the simulator: PODS pods, one shared discrete-event clock ---
  const clock = new VirtualClock();
  const host = await SimHost.start(
    Array.from({ length: PODS }, () => ({
      model: 'Qwen/Qwen3-32B',
      profile: 'h100-tp2-qwen3-32b',
      pythonHashSeed: '42',
      llmdTopic: true,
      kvEventsConfig: { enable_kv_cache_events: true, endpoint: 'tcp://127.0.0.1:*' },
    })),
    clock,
  );
  const subs = host.pods.map((p) => {
    const s = new zmq.Subscriber({ linger: 0 });
    s.connect(p.kvEventsEndpoint as string);
    s.subscribe('');
    return s;
  });
  let received = 0;
  const readers = subs.map(async (s) => {
    try {
      for await (const _ of s) {
        void _;
        received++;
      }
    } catch {
      // closed
    }
  });
  await new Promise((r) => setTimeout(r, 300)); // subscriptions propagate

  const done: EngineRequest[] = [];
  for (const j of jobs) {
    // A precise router sends a group to the pod holding its prefix (group affinity).
    const pod = host.pods[j.group % PODS];
    clock.at(j.at, () => pod.engine.submit({ promptTokens: j.prompt, maxTokens: OUT, onFinish: (r) => done.push(r) }));
  }
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  let truncated = false;
  // Run model time in slices, yielding so ZeroMQ sends and receives progress.
  while (clock.pending > 0) {
    clock.runUntil(clock.now() + 0.5);
    await new Promise((r) => setImmediate(r));
    if (performance.now() - wall0 > MAX_WALL_MS) {
      truncated = true;
      break;
    }
  }
  const cpu = process.cpuUsage(cpu0);
  const wallS = (performance.now() - wall0) / 1000;
  const modelS = clock.now();
  const endWait = Date.now() + 3000;
  const published = () => host.pods.reduce((n, p) => n + p.batchesPublished, 0);
  while (received < published() && Date.now() < endWait) await new Promise((r) => setTimeout(r, 20));

  const cpuS = (cpu.user + cpu.system) / 1e6;
  const n = done.length;
  const cpuMsPerReq = (cpuS * 1000) / Math.max(1, n);
  const modelPerCpu = modelS / cpuS;
  const arrivalsEnd = jobs[jobs.length - 1].at;
  // Requests per CPU second: the arrival rate one core can simulate (CPU scales with requests).
  const sustainableQps = 1000 / cpuMsPerReq;
  const ttft = done.map((r) => r.firstToken - r.arrival);
  const promptTok = done.reduce((s, r) => s + r.promptLen, 0);
  const cached = done.reduce((s, r) => s + Math.max(0, r.cachedTokens), 0);
  const outTok = done.reduce((s, r) => s + r.outputCount, 0);
  const lastFinish = Math.max(...done.map((r) => r.finished));
  const steps = host.pods.reduce((s, p) => s + p.engine.steps, 0);

  console.log(`sim bench: ${PODS} pods, ${GROUPS}x${PER_GROUP} prompts (${SYS}+${Q} tokens, ${OUT} out), offered ${QPS} QPS model time${truncated ? '  [TRUNCATED at max-wall]' : ''}`);
  console.log(`  completed            ${n}/${jobs.length} requests, ${steps} engine steps, ${published()} event batches (${received} received over ZMQ)`);
  console.log(`  model time           ${modelS.toFixed(1)} s (arrivals over ${arrivalsEnd.toFixed(1)} s)   wall ${wallS.toFixed(1)} s   CPU ${cpuS.toFixed(2)} s`);
  console.log(`  CPU per request      ${cpuMsPerReq.toFixed(2)} ms  (${((cpuS * 1e6) / Math.max(1, outTok)).toFixed(2)} us per output token)`);
  console.log(`  sustainable          ${sustainableQps.toFixed(0)} QPS of model time on one core (1 / CPU per request; target >= 60: ${sustainableQps >= 60 ? 'PASS' : 'FAIL'}); ${modelPerCpu.toFixed(1)} model s per CPU s over the whole run`);
  console.log(`  baseline             ${baselineMsPerReq.toFixed(2)} ms CPU per request to hash its blocks alone; ratio sim/baseline = ${(cpuMsPerReq / baselineMsPerReq).toFixed(2)}x`);
  console.log(`  model results        ${(n / lastFinish).toFixed(2)} req/s completed, ${(outTok / lastFinish).toFixed(0)} output tok/s, TTFT p50 ${pct(ttft, 50).toFixed(3)} s p90 ${pct(ttft, 90).toFixed(3)} s, prefix hit ${((100 * cached) / promptTok).toFixed(1)} %`);
  for (const s of subs) s.close();
  await Promise.all(readers);
  await host.close();
}

/**
 * Wall-clock run through HTTP: the pods serve in this process, streaming clients run in a child
 * process (same seeded workload), so the CPU figures separate simulator and load generator.
 */
async function httpRun(): Promise<void> {
  const scale = Number(a['time-scale']);
  const count = Math.min(jobs.length, Number(a['http-requests']));
  const host = await SimHost.start(
    Array.from({ length: PODS }, () => ({ model: 'Qwen/Qwen3-32B', profile: 'h100-tp2-qwen3-32b', timeScale: scale, pythonHashSeed: '42', llmdTopic: true, kvEventsConfig: { enable_kv_cache_events: true, endpoint: 'tcp://127.0.0.1:*' } })),
  );
  const clock = host.clock as RealClock;
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...process.argv.slice(2), '--http-client'], {
    env: { ...process.env, SIM_BENCH_URLS: JSON.stringify(host.pods.map((p) => p.url)) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number>((r) => child.on('exit', (c) => r(c ?? 1)));
  const cpu = process.cpuUsage(cpu0);
  const wallS = (performance.now() - wall0) / 1000;
  const cpuS = (cpu.user + cpu.system) / 1e6;
  if (code !== 0) throw new Error(`client exited with ${code}: ${out}`);
  const res = JSON.parse(out.trim().split('\n').pop() as string) as { ok: number; failed: number; chunks: number; cpuS: number; ttfts: number[] };
  const served = host.pods.reduce((n, p) => n + p.engine.generationTokensTotal, 0);
  console.log(`sim bench --http: ${PODS} pods, ${count} streaming requests (${SYS}+${Q} tokens, ${OUT} out) at ${QPS} QPS model time, time scale ${scale}`);
  console.log(`  completed            ${res.ok} ok, ${res.failed} failed, ${res.chunks} SSE events, wall ${wallS.toFixed(1)} s = ${(wallS / scale).toFixed(1)} model s`);
  console.log(`  simulator CPU        ${cpuS.toFixed(2)} s = ${((cpuS * 1000) / Math.max(1, res.ok)).toFixed(2)} ms per request, ${((cpuS * 1e6) / Math.max(1, served)).toFixed(1)} us per streamed token (${(cpuS / wallS).toFixed(2)} cores)`);
  console.log(`  client CPU           ${res.cpuS.toFixed(2)} s (separate process)`);
  console.log(`  clock lag            mean ${((1000 * clock.lagSeconds) / Math.max(1, clock.firedTimers)).toFixed(2)} ms model time per timer over ${clock.firedTimers} timers (small = the simulator kept up)`);
  console.log(`  client TTFT          p50 ${pct(res.ttfts, 50).toFixed(3)} s p90 ${pct(res.ttfts, 90).toFixed(3)} s (model time)`);
  await host.close();
}

/** The load generator of --http (child process). */
async function httpClient(): Promise<void> {
  const urls = JSON.parse(process.env.SIM_BENCH_URLS ?? '[]') as string[];
  const scale = Number(a['time-scale']);
  const count = Math.min(jobs.length, Number(a['http-requests']));
  let ok = 0;
  let failed = 0;
  let chunks = 0;
  const ttfts: number[] = [];
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const deadline = wall0 + MAX_WALL_MS;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), MAX_WALL_MS);
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const wait = wall0 + jobs[i].at * scale * 1000 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (performance.now() > deadline) break;
    const url = urls[jobs[i].group % urls.length];
    const body = JSON.stringify({ model: 'Qwen/Qwen3-32B', prompt: jobs[i].prompt, max_tokens: OUT, ignore_eos: true, stream: true, stream_options: { include_usage: true } });
    const sent = performance.now();
    inflight.push(
      (async () => {
        try {
          const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: ac.signal });
          if (r.status !== 200 || r.body === null) throw new Error(`status ${r.status}`);
          let first = true;
          for await (const c of r.body) {
            if (first) {
              ttfts.push((performance.now() - sent) / 1000 / scale);
              first = false;
            }
            const s = Buffer.from(c as Uint8Array).toString('latin1');
            for (let k = s.indexOf('data: '); k >= 0; k = s.indexOf('data: ', k + 6)) chunks++;
          }
          ok++;
        } catch {
          failed++;
        }
      })(),
    );
  }
  await Promise.all(inflight);
  clearTimeout(timer);
  const cpu = process.cpuUsage(cpu0);
  console.log(JSON.stringify({ ok, failed, chunks, cpuS: (cpu.user + cpu.system) / 1e6, ttfts }));
}

(a['http-client'] ? httpClient() : a.http ? httpRun() : main()).catch((err) => {
  console.error(err);
  process.exit(1);
});
