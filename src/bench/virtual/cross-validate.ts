// Cross-validation of the virtual clock against the real-time harness: the same options through
// both runners, compared per strategy (pod hit rate within 2 points, TTFT p50/p90 within 15 %)
// and by ranking. The virtual runner is only worth its speed if it agrees here.
import type { Harness, PodsHandle } from '../harness.js';
import type { Progress } from '../progress.js';
import type { BenchResults, StrategyResult } from '../results.js';
import { runBench, type BenchOptions } from '../runner.js';
import { sharedPrefixWorkload } from '../workloads/shared-prefix.js';
import { runVirtualBench, VIRTUAL_DEFAULTS } from './runner.js';

export interface CrossValidationRow {
  strategy: string;
  hitReal: number;
  hitVirtual: number;
  /** Percentage points, virtual - real. */
  hitDiffPts: number;
  ttftP50Real: number;
  ttftP50Virtual: number;
  ttftP90Real: number;
  ttftP90Virtual: number;
  /** virtual / real - 1. */
  p50Err: number;
  p90Err: number;
}

export interface CrossValidation {
  rows: CrossValidationRow[];
  /** Strategies by TTFT p90, best first, on each clock. */
  rankingReal: string[];
  rankingVirtual: string[];
  /** Bounds (issue 15): hit rate within 2 points, TTFT p50/p90 within 15 %, same ranking. */
  ok: boolean;
  failures: string[];
  /** Worst mean simulator timer lag of the real-clock run, model ms. */
  realLagMs?: number;
  /** The real run's measured harness overheads the virtual side replayed, per strategy. */
  overheads?: HarnessOverheads[];
  /** The same comparison against the virtual model's defaults (no replayed overheads). */
  plain?: CrossValidation;
}

/**
 * Above this mean timer lag (model ms) the real-clock simulator is late on every step, which
 * stretches ITL and TTFT: the real side is then not a reference (runner.ts flags > 2 ms).
 */
export const MAX_CLEAN_LAG_MS = 1;

export const CROSS_VALIDATION_BOUNDS = { hitPts: 2, ttftRel: 0.15 };

/**
 * The small preset both clocks run: 12 groups x 4 prompts of 1,024 + 128 tokens on 4 pods of 512
 * blocks of 16, so the resident set is ~56 % of the cluster and placement decides hits and TTFT.
 * ~13 model seconds: about 30 s of wall time per strategy on the real clock at time scale 2.
 */
export function crossValidationOptions(strategies: string[], progress: Progress): BenchOptions {
  return {
    workload: sharedPrefixWorkload({ numGroups: 12, promptsPerGroup: 4, systemPromptLen: 1024, questionLen: 128, outputLen: 64, seed: 1, order: 'cyclic' }),
    load: { type: 'poisson', stages: [{ rate: 6, duration: 3, warmup: true }, { rate: 10, duration: 5 }, { rate: 16, duration: 5 }] },
    strategies,
    sim: { pods: 4, model: 'Qwen/Qwen3-0.6B', blockSize: 16, numGpuBlocks: 512, profile: 'h100-tp2-qwen3-32b' },
    timeScale: 2,
    seed: 3,
    drainTimeoutSec: 60,
    progress,
  };
}

function ranking(r: BenchResults): string[] {
  return r.strategies.filter((s) => !s.error).sort((a, b) => a.total.ttft.p90 - b.total.ttft.p90).map((s) => s.name);
}

export function compareClocks(real: BenchResults, virt: BenchResults): CrossValidation {
  const rows: CrossValidationRow[] = [];
  const failures: string[] = [];
  const byName = new Map<string, StrategyResult>(virt.strategies.map((s) => [s.name, s]));
  for (const r of real.strategies) {
    const v = byName.get(r.name);
    if (!v || r.error || v.error) {
      failures.push(`${r.name}: ${r.error ?? v?.error ?? 'missing on the virtual clock'}`);
      continue;
    }
    const row: CrossValidationRow = {
      strategy: r.name,
      hitReal: r.total.hitRate,
      hitVirtual: v.total.hitRate,
      hitDiffPts: (v.total.hitRate - r.total.hitRate) * 100,
      ttftP50Real: r.total.ttft.p50,
      ttftP50Virtual: v.total.ttft.p50,
      ttftP90Real: r.total.ttft.p90,
      ttftP90Virtual: v.total.ttft.p90,
      p50Err: v.total.ttft.p50 / r.total.ttft.p50 - 1,
      p90Err: v.total.ttft.p90 / r.total.ttft.p90 - 1,
    };
    rows.push(row);
    const b = CROSS_VALIDATION_BOUNDS;
    if (!(Math.abs(row.hitDiffPts) <= b.hitPts)) failures.push(`${row.strategy}: hit rate differs by ${row.hitDiffPts.toFixed(2)} points`);
    if (!(Math.abs(row.p50Err) <= b.ttftRel)) failures.push(`${row.strategy}: TTFT p50 differs by ${(row.p50Err * 100).toFixed(1)} %`);
    if (!(Math.abs(row.p90Err) <= b.ttftRel)) failures.push(`${row.strategy}: TTFT p90 differs by ${(row.p90Err * 100).toFixed(1)} %`);
  }
  const rankingReal = ranking(real);
  const rankingVirtual = ranking(virt);
  if (rankingReal.join() !== rankingVirtual.join()) failures.push(`ranking by TTFT p90: real ${rankingReal.join(' < ')}, virtual ${rankingVirtual.join(' < ')}`);
  return { rows, rankingReal, rankingVirtual, ok: failures.length === 0, failures };
}

/**
 * What the real-clock run measured of its own harness, per strategy, in model ms. The virtual
 * clock models neither by default: they are properties of the real-time harness on this machine,
 * not of a cluster.
 */
export interface HarnessOverheads {
  strategy: string;
  /** Mean lateness of the simulator's timers (the harness's `simLagMs`): every late step runs late. */
  lagMs: number;
  /**
   * The HTTP path: the client's mean TTFT minus the pods' own mean TTFT (their
   * vllm:time_to_first_token_seconds, from arrival at the engine to its first token), i.e. the
   * undici client, the router (parse, tokenize, schedule, proxy) and the simulator's HTTP server,
   * both ways. Wall time divided by the time scale, so it grows with machine load.
   */
  pathMs: number;
  /** The pods' own mean TTFT and the client's, model ms (what pathMs is the difference of). */
  podTtftMs: number;
  clientTtftMs: number;
}

/** Sum and count of a Prometheus histogram over every label set in an exposition text. */
function histogramSum(text: string, name: string): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}_sum`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    else if (line.startsWith(`${name}_count`)) count += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return { sum, count };
}

/**
 * The harness, with every pod set's TTFT histogram read just before it closes (one entry per
 * startPods, so per strategy in run order).
 */
function measuringHarness(harness: Harness, podTtft: { sum: number; count: number }[]): Harness {
  return {
    startRouter: (...a) => harness.startRouter(...a),
    close: harness.close ? () => (harness.close as () => Promise<void>)() : undefined,
    async startPods(spec) {
      const pods = await harness.startPods(spec);
      const measured: PodsHandle = Object.create(pods) as PodsHandle;
      measured.close = async () => {
        const acc = { sum: 0, count: 0 };
        for (const url of pods.urls) {
          try {
            const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
            const h = histogramSum(await res.text(), 'vllm:time_to_first_token_seconds');
            acc.sum += h.sum;
            acc.count += h.count;
          } catch {
            // A pod that left (scenarios) has no metrics to read.
          }
        }
        podTtft.push(acc);
        return pods.close();
      };
      return measured;
    },
  };
}

/** Mean TTFT over every served request of a run, warm-up included (as the pods count them), model s. */
function clientMeanTtft(s: StrategyResult): number {
  let sum = 0;
  let n = 0;
  for (const st of s.stages) {
    if (!(st.ttft.count > 0)) continue;
    sum += st.ttft.mean * st.ttft.count;
    n += st.ttft.count;
  }
  return n > 0 ? sum / n : NaN;
}

/**
 * Runs `opts` on the real clock (through `harness`), then on the virtual clock twice per
 * strategy: with the virtual model's defaults, and replaying the harness overheads the real run
 * measured (its simulator timer lag and its HTTP path, see HarnessOverheads). The comparison
 * (the verdict) is against the replaying run; the default one is kept as `plain`.
 */
export async function crossValidate(
  harness: Harness,
  opts: BenchOptions,
): Promise<{ real: BenchResults; virtual: BenchResults; plain: BenchResults; comparison: CrossValidation }> {
  const podTtft: { sum: number; count: number }[] = [];
  const real = await runBench(measuringHarness(harness, podTtft), { ...opts, clock: 'real' });
  const overheads: HarnessOverheads[] = real.strategies.map((s, i) => {
    const pod = podTtft[i] ?? { sum: 0, count: 0 };
    const podTtftMs = pod.count > 0 ? (pod.sum / pod.count) * 1000 : NaN;
    const clientTtftMs = clientMeanTtft(s) * 1000;
    const pathMs = Number.isFinite(clientTtftMs - podTtftMs) ? Math.max(0, clientTtftMs - podTtftMs) : VIRTUAL_DEFAULTS.routerOverheadMs;
    return { strategy: s.name, lagMs: s.simLagMs ?? 0, pathMs, podTtftMs, clientTtftMs };
  });
  const virtualOpts: BenchOptions = { ...opts, clock: 'virtual', timeScale: 1 };
  const plain = await runVirtualBench(virtualOpts);
  let virtual: BenchResults | undefined;
  for (const o of overheads) {
    const r = await runVirtualBench({ ...virtualOpts, strategies: [o.strategy] }, { routerOverheadMs: o.pathMs, engineTimerLagMs: o.lagMs });
    if (virtual === undefined) virtual = r;
    else virtual.strategies.push(...r.strategies);
  }
  virtual ??= plain;
  virtual.meta.notes = [
    ...virtual.meta.notes.filter((n) => !n.startsWith('Engine timers fire')),
    `Cross-validation: each strategy's virtual run replays its real-clock run's measured harness overheads (${overheads.map((o) => `${o.strategy}: HTTP path ${o.pathMs.toFixed(2)} ms as router overhead, timer lag ${o.lagMs.toFixed(2)} ms`).join('; ')}).`,
  ];
  const comparison = compareClocks(real, virtual);
  comparison.overheads = overheads;
  comparison.plain = compareClocks(real, plain);
  const lag = Math.max(0, ...real.strategies.map((s) => s.simLagMs ?? 0));
  if (lag > MAX_CLEAN_LAG_MS) {
    comparison.failures.push(`the real-clock run is not clean: its simulator timers fired up to ${lag.toFixed(1)} model-ms late on average (machine overloaded; raise --time-scale)`);
    comparison.ok = false;
  }
  comparison.realLagMs = lag;
  virtual.crossValidation = comparison;
  return { real, virtual, plain, comparison };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const s3 = (x: number) => `${x.toFixed(3)} s`;
const rel = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;

export function crossValidationMarkdown(c: CrossValidation): string[] {
  const out = [
    '## Cross-validation: real clock vs virtual clock',
    '',
    `Bounds: pod hit rate within ${CROSS_VALIDATION_BOUNDS.hitPts} points, TTFT p50 and p90 within ${CROSS_VALIDATION_BOUNDS.ttftRel * 100} %, the same ranking by TTFT p90. ${c.ok ? '**All within bounds.**' : `**Out of bounds:** ${c.failures.join('; ')}.`}`,
    '',
    '| strategy | hit real | hit virtual | diff | TTFT p50 real | virtual | diff | TTFT p90 real | virtual | diff |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of c.rows) {
    out.push(`| ${r.strategy} | ${pct(r.hitReal)} | ${pct(r.hitVirtual)} | ${r.hitDiffPts.toFixed(2)} pts | ${s3(r.ttftP50Real)} | ${s3(r.ttftP50Virtual)} | ${rel(r.p50Err)} | ${s3(r.ttftP90Real)} | ${s3(r.ttftP90Virtual)} | ${rel(r.p90Err)} |`);
  }
  out.push('', `Ranking by TTFT p90: real ${c.rankingReal.join(' < ')}; virtual ${c.rankingVirtual.join(' < ')}.`);
  if (c.overheads?.length) {
    out.push(
      '',
      'The virtual side replays the real run\'s measured harness overheads: the HTTP path (client TTFT minus the pods\' own vllm:time_to_first_token_seconds, means) as router overhead, and the simulator\'s timer lag on every engine timer.',
      '',
      '| strategy | real client TTFT mean | pods\' own TTFT mean | HTTP path | timer lag |',
      '|---|---:|---:|---:|---:|',
      ...c.overheads.map((o) => `| ${o.strategy} | ${o.clientTtftMs.toFixed(1)} ms | ${o.podTtftMs.toFixed(1)} ms | ${o.pathMs.toFixed(2)} ms | ${o.lagMs.toFixed(2)} ms |`),
    );
  }
  if (c.plain) {
    out.push('', `Against the virtual model's defaults (${VIRTUAL_DEFAULTS.routerOverheadMs} ms router overhead, no timer lag): ${c.plain.ok ? 'within bounds' : c.plain.failures.join('; ')}.`);
    for (const r of c.plain.rows) out.push(`- ${r.strategy}: TTFT p50 ${s3(r.ttftP50Virtual)} (${rel(r.p50Err)}), p90 ${s3(r.ttftP90Virtual)} (${rel(r.p90Err)}), hit ${r.hitDiffPts.toFixed(2)} pts`);
  }
  return out;
}
