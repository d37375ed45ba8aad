// Simulator throughput: 8 simulated pods in one process (one shared clock) on the llm-d
// precise-prefix benchmark shape — 150 groups x 5 prompts, 6,000-token shared system prompt +
// 1,200-token question, 1,000 output tokens — offered at 60 QPS of model time.
//
// The pods run on a discrete-event clock, so the CPU they need per model second is measured
// directly: sustainable QPS = offered QPS x (model seconds / CPU seconds). Everything a real
// pod does per step runs: scheduling, block pool, hashing, event encoding, ZeroMQ publishing
// (a SUB per pod receives every batch). HTTP is left out (see --http for a wall-clock run).
//
// Baseline, measured in the same run: the CPU to compute the same requests' vLLM block hashes
// alone (the floor any faithful simulator pays). Ratio = simulator CPU / baseline CPU.
//
// Usage: npm run bench:sim [-- --qps 60 --groups 150 --pods 8 --max-wall 120]
import { parseArgs } from 'node:util';
import * as zmq from 'zeromq';
import { SimHost, VirtualClock, BlockHasher, type EngineRequest } from '../src/sim/index.js';

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
  // The simulator keeps up with QPS x (model seconds per CPU second) offered on one core.
  const sustainableQps = QPS * modelPerCpu;
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
  console.log(`  model s per CPU s    ${modelPerCpu.toFixed(2)}  => sustainable ${sustainableQps.toFixed(0)} QPS of model time on one core (target >= 60: ${sustainableQps >= 60 ? 'PASS' : 'FAIL'})`);
  console.log(`  baseline             ${baselineMsPerReq.toFixed(2)} ms CPU per request to hash its blocks alone; ratio sim/baseline = ${(cpuMsPerReq / baselineMsPerReq).toFixed(2)}x`);
  console.log(`  model results        ${(n / lastFinish).toFixed(2)} req/s completed, ${(outTok / lastFinish).toFixed(0)} output tok/s, TTFT p50 ${pct(ttft, 50).toFixed(3)} s p90 ${pct(ttft, 90).toFixed(3)} s, prefix hit ${((100 * cached) / promptTok).toFixed(1)} %`);
  for (const s of subs) s.close();
  await Promise.all(readers);
  await host.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
