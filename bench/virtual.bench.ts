// `npm run bench:virtual`: how fast the virtual-clock runner is, where its CPU goes, and whether
// its memory stays flat. Targets (issue 15): llm-d's full 73-capacity ladder for one strategy
// in <= 30 s wall on one core (>= 40x model time); 64 pods at 8x the load >= 10x model time;
// memory flat over a 256-pod run. Each figure comes with a baseline from the same run.
//
// The runs are the presets `kvrouter bench --preset llm-d-73 | scale-64 | scale-256` build
// (src/bench/presets.ts), one strategy each; scale-64 and scale-256 keep their warm-up and first
// stages only (bounded for a shared 2-core machine), and every run has a wall-clock limit.
//
// Environment: BENCH_PARTS=ladder,baseline,scale64,mem256,steady256 (default all); BENCH_STRATEGY (default
// precise-3-2-2); BENCH_STAGES_64 (default 3), BENCH_STAGES_256 (default 2): ladder stages after
// the warm-up; BENCH_STEADY_SEC_256 (default 300): model seconds of the steady 256-pod run (the
// warm-up, then the ladder's second rate, 10 QPS per 8 pods x 32, held: a load the cluster
// serves, so requests in flight level off and the heap must too); BENCH_WALL_LIMIT_SEC (default 600) per run; BENCH_FLAT_PCT (default 10): the
// 256-pod runs are flat when heap + external memory after GC (sampled every 5 model s) stays within that percentage
// above the first sample taken once the cluster's caches are full, all the way to the end; the
// growth over the whole run (from 5 model s in, caches filling) is printed too. The per-prompt memos
// (engine prompt hashes, router keys) are bounded (PROMPT_MEMO_BYTES in
// src/util/bounded-memo.ts), so what still grows is the state the run builds: requests in
// flight, the engines' caches and the router's index filling up. Run with --expose-gc for exact
// heap samples (the npm script does).
//
// The runner is measured as shipped (`kvrouter bench --clock virtual` runs dist/): dist/ is
// brought up to date by an incremental build first. BENCH_FROM=src runs the TypeScript sources
// through tsx instead, which cost ~35 % more CPU here (scale-64, 3 stages: 3,807 vs 2,793 us
// per request): esbuild's keepNames adds an Object.defineProperty to every closure made.
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { resolveBench as ResolveBench } from '../src/bench/options.js';
import type { Progress as ProgressT } from '../src/bench/progress.js';
import type { BenchOptions } from '../src/bench/runner.js';
import type { runVirtualBench as RunVirtualBench, VirtualRunStats } from '../src/bench/virtual/runner.js';

const from = process.env.BENCH_FROM === 'src' ? 'src' : 'dist';
if (from === 'dist') {
  const build = spawnSync(process.execPath, [fileURLToPath(new URL('../scripts/build.js', import.meta.url))], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error(`npm run build failed (exit ${build.status}); BENCH_FROM=src runs the sources instead`);
}
const dir = from === 'src' ? '../src' : '../dist';
const { resolveBench } = (await import(`${dir}/bench/options.js`)) as { resolveBench: typeof ResolveBench };
const { Progress } = (await import(`${dir}/bench/progress.js`)) as { Progress: typeof ProgressT };
const { runVirtualBench } = (await import(`${dir}/bench/virtual/runner.js`)) as { runVirtualBench: typeof RunVirtualBench };
const load = () => loadavg().map((x) => x.toFixed(2)).join(' / ');

const env = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? dflt);
  if (!(v > 0)) throw new Error(`${name} must be a positive number`);
  return v;
};
const parts = new Set((process.env.BENCH_PARTS ?? 'ladder,baseline,scale64,mem256,steady256').split(','));
const strategy = process.env.BENCH_STRATEGY ?? 'precise-3-2-2';
const wallLimitSec = env('BENCH_WALL_LIMIT_SEC', 600);
const flatPct = env('BENCH_FLAT_PCT', 10);

/** The preset's run for one strategy; `stages`: keep the warm-up and that many ladder stages. */
function preset(name: string, strat: string, stages?: number): BenchOptions {
  const { options } = resolveBench({ preset: name, strategies: strat, clock: 'virtual' });
  if (stages !== undefined) {
    const warm = options.load.stages.filter((s) => s.warmup).length;
    options.load.stages = options.load.stages.slice(0, warm + stages);
  }
  options.progress = new Progress(process.stderr, true);
  return options;
}

interface Measured {
  stats: VirtualRunStats;
  cpuSeconds: number;
}

async function measure(label: string, opts: BenchOptions, heapSampleSec?: number): Promise<Measured> {
  const c0 = process.cpuUsage();
  const r = await runVirtualBench(opts, { profile: true, heapSampleSec, wallLimitSec });
  const c = process.cpuUsage(c0);
  const loadAfter = load();
  const s = r.strategies[0];
  if (s.error || !s.virtual) throw new Error(`${label}: ${s.error ?? 'no stats'}`);
  const v = s.virtual;
  const cpuSeconds = (c.user + c.system) / 1e6;
  console.log(
    `${label}: ${opts.sim.pods} pods, ${v.requests} requests, ${v.modelSeconds.toFixed(0)} model s in ${v.wallSeconds.toFixed(1)} s wall ` +
      `(${(c.user / 1e6).toFixed(1)} s user + ${(c.system / 1e6).toFixed(1)} s system CPU) -> ${v.speedup.toFixed(1)}x model time on the wall clock, ` +
      `${(v.modelSeconds / cpuSeconds).toFixed(1)}x per CPU second; ${((cpuSeconds * 1e6) / Math.max(1, v.requests)).toFixed(0)} us CPU per request` +
      `${v.wallLimited ? ` [stopped by the ${wallLimitSec} s wall limit]` : ''}; TTFT p90 ${s.total.ttft.p90.toFixed(3)} s, hit ${(s.total.hitRate * 100).toFixed(1)}%; load average after the run ${loadAfter}`,
  );
  if (v.breakdownUsPerRequest) {
    // Each part is timed on the wall clock inside its callbacks; on a loaded machine that counts
    // time the process was descheduled, so parts are shown as shares and as CPU estimates (the
    // process's CPU time split in the same proportions).
    const entries = Object.entries(v.breakdownUsPerRequest);
    const sum = entries.reduce((a, [, x]) => a + Math.max(0, x), 0);
    const cpuPerReq = (cpuSeconds * 1e6) / Math.max(1, v.requests);
    const parts = entries.map(([k, x]) => `${k} ${((100 * Math.max(0, x)) / sum).toFixed(1)}% ~${((cpuPerReq * Math.max(0, x)) / sum).toFixed(0)} us`);
    console.log(`  CPU per request by part (share of timed wall, CPU estimate): ${parts.join(', ')}`);
  }
  return { stats: v, cpuSeconds };
}

type MemSample = NonNullable<VirtualRunStats['memSamples']>[number];

/**
 * Least squares heap = a + b * inflight + c * cachedBlocks over the samples: MB per request in
 * flight and per cached block (engines' pools and the router's index both follow the cached
 * blocks). An estimate: the two terms rise together early in a run, so it is only as good as
 * the samples where they move apart; null when the system is singular.
 */
function fitPerUnit(m: MemSample[]): { mbPerRequest: number; mbPerBlock: number; maxResidualMb: number } | null {
  const rows = m.map((x) => [1, x.inflight, x.cachedBlocks]);
  const A = [0, 1, 2].map((i) => [0, 1, 2].map((j) => rows.reduce((s, r) => s + r[i] * r[j], 0)));
  const y = [0, 1, 2].map((i) => rows.reduce((s, r, k) => s + r[i] * m[k].heapMb, 0));
  // Gaussian elimination with partial pivoting on the 3x3 normal equations.
  for (let c = 0; c < 3; c++) {
    let p = c;
    for (let r = c + 1; r < 3; r++) if (Math.abs(A[r][c]) > Math.abs(A[p][c])) p = r;
    if (Math.abs(A[p][c]) < 1e-9) return null;
    [A[c], A[p]] = [A[p], A[c]];
    [y[c], y[p]] = [y[p], y[c]];
    for (let r = 0; r < 3; r++) {
      if (r === c) continue;
      const f = A[r][c] / A[c][c];
      for (let k = c; k < 3; k++) A[r][k] -= f * A[c][k];
      y[r] -= f * y[c];
    }
  }
  const [a, b, cc] = [0, 1, 2].map((i) => y[i] / A[i][i]);
  const maxResidualMb = Math.max(...m.map((x) => Math.abs(x.heapMb - (a + b * x.inflight + cc * x.cachedBlocks))));
  return { mbPerRequest: b, mbPerBlock: cc, maxResidualMb };
}

/** Heap after GC over the samples: end change, peak, largest change from the first. */
function window(m: MemSample[], label: string): { worstPct: number; risePct: number } {
  const first = m[0];
  const last = m[m.length - 1];
  const peak = m.reduce((a, x) => (x.heapMb > a.heapMb ? x : a), first);
  const pct = (x: number) => `${x >= 0 ? '+' : ''}${((x / first.heapMb) * 100).toFixed(1)} %`;
  const worst = m.reduce((a, x) => (Math.abs(x.heapMb - first.heapMb) > Math.abs(a.heapMb - first.heapMb) ? x : a), first);
  const worstPct = (Math.abs(worst.heapMb - first.heapMb) / first.heapMb) * 100;
  console.log(
    `  heap + external after GC, ${label}: ${first.heapMb.toFixed(0)} MB at ${first.modelSec.toFixed(0)} model s (${first.inflight} in flight, ${first.cachedBlocks} cached blocks) -> ` +
      `${last.heapMb.toFixed(0)} MB at ${last.modelSec.toFixed(0)} model s (${last.inflight} in flight, ${last.cachedBlocks} cached blocks): ` +
      `${(last.heapMb - first.heapMb).toFixed(0)} MB (${pct(last.heapMb - first.heapMb)}); peak ${peak.heapMb.toFixed(0)} MB at ${peak.modelSec.toFixed(0)} model s (${pct(peak.heapMb - first.heapMb)}); ` +
      `largest change ${worstPct.toFixed(1)} % (${worst.heapMb.toFixed(0)} MB at ${worst.modelSec.toFixed(0)} model s); RSS ${first.rssMb.toFixed(0)} -> ${last.rssMb.toFixed(0)} MB (peak ${Math.max(...m.map((x) => x.rssMb)).toFixed(0)} MB)`,
  );
  return { worstPct, risePct: ((peak.heapMb - first.heapMb) / first.heapMb) * 100 };
}

/**
 * Heap after GC over the run, reported twice: over the whole run (from 5 model s in, while the
 * engines' caches and the router's index are still filling) and from the first sample where the
 * cluster's caches are full (cached blocks within 1 % of the run's maximum: a few blocks never
 * hold a hash, so "full" is the plateau, not 100 %) to the end. The verdict judges growth in the
 * second window (no sample more than the bound above its first): before it, growth is the
 * caches filling, state any cache-aware cluster must hold; after it, cached state is constant,
 * so what still grows is requests in flight or a leak, while a fall is requests finishing. Both
 * windows are printed with their own figures; in-flight requests are not subtracted from
 * either: the fitted per-request cost and the fit's largest residual (heap the in-flight and
 * cached-block terms do not explain) are printed next to them.
 */
function flatness(stats: VirtualRunStats): void {
  const m = stats.memSamples ?? [];
  if (m.length < 2) {
    console.log(`  memory: only ${m.length} samples, no verdict`);
    return;
  }
  const cap = m[0].cacheCapacity;
  console.log(
    `  memory every sample (model s: heap + external after GC MB (external) / RSS MB / in flight / cached blocks % of ${cap}): ` +
      m.map((x) => `${x.modelSec.toFixed(0)}: ${x.heapMb.toFixed(0)} (${x.externalMb.toFixed(0)})/${x.rssMb.toFixed(0)}/${x.inflight}/${((100 * x.cachedBlocks) / Math.max(1, x.cacheCapacity)).toFixed(0)}%`).join(', '),
  );
  const whole = window(m, 'whole run (caches filling included)');
  console.log(`  whole run: largest change ${whole.worstPct.toFixed(1)} % -> ${whole.worstPct <= flatPct ? 'FLAT' : 'NOT FLAT'} (bound ${flatPct} %; not the verdict, see below)`);
  const fit = fitPerUnit(m);
  if (fit)
    console.log(
      `  fitted heap per unit of state (least squares over all samples, an estimate): ${((fit.mbPerRequest * 2 ** 20) / 1024).toFixed(1)} KB per request in flight, ` +
        `${(fit.mbPerBlock * 2 ** 20).toFixed(0)} bytes per cached block (engine pool + router index); largest residual ${fit.maxResidualMb.toFixed(0)} MB`,
    );
  const maxCached = Math.max(...m.map((x) => x.cachedBlocks));
  const full = m.findIndex((x) => x.cachedBlocks >= 0.99 * maxCached);
  if (full < 0 || full >= m.length - 1) {
    console.log(`  the caches reached their plateau only at the last sample: verdict on the whole run -> ${whole.worstPct <= flatPct ? 'FLAT' : 'NOT FLAT'}`);
    return;
  }
  const after = window(m.slice(full), 'after the caches are full');
  const dIn = m[m.length - 1].inflight - m[full].inflight;
  const byInflight = fit ? ` (${dIn >= 0 ? '+' : ''}${dIn} in flight in that window ~ ${(dIn * fit.mbPerRequest).toFixed(0)} MB at the fitted cost)` : '';
  console.log(
    `  verdict (after the caches are full, from ${m[full].modelSec.toFixed(0)} model s, ${((100 * m[full].cachedBlocks) / m[full].cacheCapacity).toFixed(0)} % of the blocks cached): ` +
      `largest rise ${after.risePct.toFixed(1)} % (largest change either way ${after.worstPct.toFixed(1)} %)${byInflight} -> ` +
      `${after.risePct <= flatPct ? 'FLAT' : 'NOT FLAT'} (bound: no sample more than ${flatPct} % above that window's first)`,
  );
}

console.log(`virtual-clock bench (${new Date().toISOString()}, runner from ${from}/, load average ${load()}); noisy shared machine: one run each, figures include contention; user CPU is less noisy than wall`);
if (parts.has('ladder')) await measure(`llm-d-73 full ladder, ${strategy}`, preset('llm-d-73', strategy));
// Baseline: the same ladder with a router that does almost nothing, so the difference is the router's cost.
if (parts.has('baseline')) await measure('baseline: llm-d-73 full ladder, round-robin', preset('llm-d-73', 'round-robin'));
if (parts.has('scale64')) {
  const n = env('BENCH_STAGES_64', 3);
  await measure(`baseline: llm-d-73 warm-up + ${n} stages, ${strategy}`, preset('llm-d-73', strategy, n));
  await measure(`scale-64 (64 pods at 8x the load) warm-up + ${n} stages, ${strategy}`, preset('scale-64', strategy, n));
}
if (parts.has('mem256')) {
  const n = env('BENCH_STAGES_256', 2);
  const m = await measure(`scale-256 (256 pods at 32x the load) warm-up + ${n} stages, ${strategy}`, preset('scale-256', strategy, n), 5);
  flatness(m.stats);
}
// The ladder run's heap follows its load (each stage holds more requests in flight), so it cannot
// show a leak on its own: the same cluster at one constant load it serves must level off.
if (parts.has('steady256')) {
  const sec = env('BENCH_STEADY_SEC_256', 300);
  const opts = preset('scale-256', strategy, 2);
  const warm = opts.load.stages.filter((s) => s.warmup);
  const rate = opts.load.stages[warm.length + 1].rate;
  opts.load.stages = [...warm, { rate, duration: sec }];
  // Samples every 10 model s: each forces a full GC of a ~2.5 GB heap (a fifth of the run's CPU at 5 s).
  const m = await measure(`scale-256 steady (256 pods: the warm-up, then ${rate} QPS held for ${sec} model s), ${strategy}`, opts, 10);
  flatness(m.stats);
}
