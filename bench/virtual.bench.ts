// `npm run bench:virtual`: how fast the virtual-clock runner is, where its CPU goes, and whether
// its memory stays flat. Targets (issue 15): llm-d's full 73-capacity ladder for one strategy
// in <= 30 s wall on one core (>= 40x model time); 64 pods at 8x the load >= 10x model time;
// memory flat over a 256-pod run. Each figure comes with a baseline from the same run.
//
// llm-d's ladder (llm-d/llm-d-kv-cache benchmarking/73-capacity/README.md): warm-up 15 QPS x 50 s,
// then 3x20, 10x20, 15x20, 20x38, 22x34, 25x30, 30x25, 35x21, 40x38, 43x36, 46x33, 49x30, 52x29,
// 55x27, 57x26, 60x25 (QPS x s); 150 groups x 5 prompts of 6,000 + 1,200 tokens -> 1,000; 8 pods
// x 4,802 blocks of 64. It is built here so this bench does not depend on a preset.
//
// Environment: BENCH_PARTS=ladder,baseline,scale64,mem256 (default all); BENCH_STRATEGY (default
// precise-3-2-2). Run with --expose-gc for exact heap samples (the npm script does).
import { Progress } from '../src/bench/progress.js';
import type { BenchOptions } from '../src/bench/runner.js';
import { runVirtualBench, type VirtualRunStats } from '../src/bench/virtual/runner.js';
import { sharedPrefixWorkload } from '../src/bench/workloads/shared-prefix.js';
import type { Stage } from '../src/bench/load.js';

const RATES = [3, 10, 15, 20, 22, 25, 30, 35, 40, 43, 46, 49, 52, 55, 57, 60];
const DURATIONS = [20, 20, 20, 38, 34, 30, 25, 21, 38, 36, 33, 30, 29, 27, 26, 25];

function ladder(scale: number, stages = RATES.length): Stage[] {
  return [{ rate: 15 * scale, duration: 50, warmup: true }, ...RATES.slice(0, stages).map((r, i) => ({ rate: r * scale, duration: DURATIONS[i] }))];
}

function llmd73(strategy: string, pods = 8, scale = 1, stages?: number): BenchOptions {
  return {
    workload: sharedPrefixWorkload({ numGroups: 150 * scale, promptsPerGroup: 5, systemPromptLen: 6000, questionLen: 1200, outputLen: 1000, seed: 42, order: 'cyclic' }),
    load: { type: 'poisson', stages: ladder(scale, stages) },
    strategies: [strategy],
    sim: { pods, model: 'Qwen/Qwen3-32B', blockSize: 64, numGpuBlocks: 4802, profile: 'h100-tp2-qwen3-32b' },
    timeScale: 1,
    seed: 42,
    drainStages: true,
    drainTimeoutSec: 600,
    progress: new Progress(process.stderr, true),
    clock: 'virtual',
  };
}

interface Measured {
  label: string;
  stats: VirtualRunStats;
  cpuSeconds: number;
  requests: number;
}

async function measure(label: string, opts: BenchOptions, heapSampleSec?: number): Promise<Measured> {
  const c0 = process.cpuUsage();
  const r = await runVirtualBench(opts, { profile: true, heapSampleSec });
  const c = process.cpuUsage(c0);
  const s = r.strategies[0];
  if (s.error || !s.virtual) throw new Error(`${label}: ${s.error ?? 'no stats'}`);
  const m = { label, stats: s.virtual, cpuSeconds: (c.user + c.system) / 1e6, requests: s.virtual.requests };
  const v = m.stats;
  console.log(
    `${label}: ${m.requests} requests, ${v.modelSeconds.toFixed(0)} model s in ${v.wallSeconds.toFixed(1)} s wall / ${m.cpuSeconds.toFixed(1)} s CPU ` +
      `-> ${(v.modelSeconds / v.wallSeconds).toFixed(1)}x model time on the wall clock, ${(v.modelSeconds / m.cpuSeconds).toFixed(1)}x per CPU second; ` +
      `${((m.cpuSeconds * 1e6) / m.requests).toFixed(0)} us CPU per request; TTFT p90 ${s.total.ttft.p90.toFixed(3)} s, ${s.total.outputTokPerSec.toFixed(0)} tok/s, hit ${(s.total.hitRate * 100).toFixed(1)}%`,
  );
  if (v.breakdownUsPerRequest) {
    const parts = Object.entries(v.breakdownUsPerRequest).map(([k, x]) => `${k} ${x.toFixed(0)}`);
    console.log(`  wall us per request by part: ${parts.join(', ')}`);
  }
  if (v.heapSamplesMb?.length) console.log(`  heap used (MB, every ${heapSampleSec ?? 30} model s): ${v.heapSamplesMb.map((x) => x.toFixed(0)).join(' ')}`);
  return m;
}

const parts = new Set((process.env.BENCH_PARTS ?? 'ladder,baseline,scale64,mem256').split(','));
const strategy = process.env.BENCH_STRATEGY ?? 'precise-3-2-2';
console.log(`virtual-clock bench (${new Date().toISOString()}); noisy shared machine: one run, figures include contention`);
if (parts.has('ladder')) await measure(`llm-d-73 full ladder, ${strategy}`, llmd73(strategy));
// Baseline: the same ladder with a router that does almost nothing, so the difference is the router's cost.
if (parts.has('baseline')) await measure('baseline: llm-d-73 full ladder, round-robin', llmd73('round-robin'));
if (parts.has('scale64')) {
  // 64 pods at 8x the load: warm-up and the first 6 stages (model time kept short for this machine).
  await measure(`baseline: 8 pods, first 6 stages, ${strategy}`, llmd73(strategy, 8, 1, 6));
  await measure(`64 pods at 8x the load, first 6 stages, ${strategy}`, llmd73(strategy, 64, 8, 6));
}
if (parts.has('mem256')) {
  // 256 pods at 32x: heap sampled every 10 model s after a full GC; flat = no growth after warm-up.
  await measure(`256 pods at 32x the load, first 3 stages, ${strategy}`, llmd73(strategy, 256, 32, 3), 10);
}
