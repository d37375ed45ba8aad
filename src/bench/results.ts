// The shape of a benchmark's results (results.json) and the per-stage aggregation.
import type { RequestResult } from './client.js';
import type { PodCounters } from './prom.js';
import { imbalance, summarize, type Summary } from './stats.js';
import type { Stage } from './load.js';
import type { VirtualRunStats } from './virtual/runner.js';
import type { CrossValidation } from './virtual/cross-validate.js';
import type { AppliedEvent } from './scenarios.js';
import type { TimeModelReport } from './time-model.js';

export interface StageResult {
  index: number;
  rate: number;
  duration: number;
  warmup: boolean;
  sent: number;
  ok: number;
  errors: number;
  shed: number;
  /** (errors + shed) / sent */
  errorRate: number;
  /** Model seconds. */
  ttft: Summary;
  /** Per-request mean inter-token latency, model seconds. */
  itl: Summary;
  e2e: Summary;
  /** Output tokens of successful requests / (last completion - first send), model seconds. */
  outputTokPerSec: number;
  reqPerSec: number;
  /**
   * Prefix-cache hit rate from the pods' vllm:prefix_cache_{hits,queries} deltas. Pods count
   * every scheduling from scratch, so recomputation after preemption is counted again.
   */
  hitRate: number;
  /** What clients saw: usage.prompt_tokens_details.cached_tokens over prompt tokens of served requests. */
  clientHitRate: number;
  /** Infinite-cache upper bound over this stage's served requests (in send order). */
  oracleHitRate: number;
  /**
   * max/mean across pods of requests and of prompt tokens, by the stage requests were sent in
   * (from the router's x-kvrouter-endpoint response header; else the pods' completion counters).
   */
  imbalanceRequests: number;
  imbalancePromptTokens: number;
  /** Requests routed to each pod (same order as the pods), when the router names the endpoint. */
  routedPerPod?: number[];
  /** Pod /metrics deltas over the stage's time window. */
  perPod: PodCounters[];
  /** Mean vllm:num_requests_waiting per pod over the stage (virtual clock: sampled every scrape). */
  meanWaiting?: number;
}

export interface StrategyResult {
  name: string;
  label: string;
  description: string;
  /** What it reproduces: "repository, path (date)". */
  source?: string;
  config: string;
  stages: StageResult[];
  /** All non-warm-up stages together. */
  total: StageResult;
  /** Mean lateness of the simulator's timers, model ms (its clock falling behind wall time). */
  simLagMs?: number;
  wallSeconds: number;
  /** Scenario events as they were applied. */
  scenarioEvents?: AppliedEvent[];
  error?: string;
  sampleErrors: string[];
  /** Virtual clock: model time covered, speed and where the wall time went. */
  virtual?: VirtualRunStats;
}

export interface BenchResults {
  meta: {
    startedAt: string;
    wallSeconds: number;
    preset?: string;
    workload: { kind: string; params: Record<string, unknown> };
    load: { type: string; stages: Stage[] };
    pods: number;
    sim: Record<string, unknown>;
    /** real: scaled wall clock; virtual: discrete-event model time. */
    clock?: 'real' | 'virtual';
    /** The step-cost model, how it was derived and its check against llm-d's published run. */
    timeModel?: TimeModelReport;
    scenario?: { names: string[]; description: string[] };
    timeScale: number;
    seed: number;
    model: string;
    requests: number;
    host: { cpus: number; node: string; platform: string };
    notes: string[];
    /** The virtual clock's settings. */
    virtualClock?: { eventDelayMs: number; scrapeIntervalMs: number; routerOverheadMs: number };
    /** inference-perf semantics used (order, stage draining, client concurrency cap). */
    client?: { order?: string; drainStages?: boolean; maxInflight?: number; stageIntervalSec?: number; requestTimeoutSec?: number };
  };
  /** The oracle over every planned request (offered load); per strategy, see oracleHitRate (served). */
  oracle: { hitRate: number; perStage: number[] };
  strategies: StrategyResult[];
  /** The same options on the real clock vs the virtual clock (src/bench/virtual/cross-validate.ts). */
  crossValidation?: CrossValidation;
}

export function aggregateStage(
  index: number,
  stage: Stage,
  results: RequestResult[],
  toModelSec: (ms: number) => number,
  pods: PodCounters[],
  oracle: { prompt: number; cached: number },
  addresses?: string[],
): StageResult {
  const ok = results.filter((r) => r.ok);
  const shed = results.filter((r) => !r.ok && r.shed).length;
  const errors = results.filter((r) => !r.ok && !r.shed).length;
  const ttft = summarize(ok.map((r) => toModelSec(r.ttftMs ?? NaN)));
  // Per-request mean inter-token latency ((e2e - TTFT) / (tokens - 1), inference-perf's ITL/TPOT):
  // robust to chunks that reach the client in bursts, which gap-by-gap timing is not.
  const itl = summarize(
    ok.map((r) => (r.outputTokens > 1 && r.e2eMs !== undefined && r.ttftMs !== undefined ? toModelSec((r.e2eMs - r.ttftMs) / (r.outputTokens - 1)) : NaN)),
  );
  const e2e = summarize(ok.map((r) => toModelSec(r.e2eMs ?? NaN)));
  let first = Infinity;
  let last = -Infinity;
  let outTok = 0;
  for (const r of results) if (Number.isFinite(r.sentMs)) first = Math.min(first, r.sentMs);
  for (const r of ok) {
    last = Math.max(last, r.sentMs + (r.e2eMs ?? 0));
    outTok += r.outputTokens;
  }
  const span = ok.length ? toModelSec(last - first) : NaN;
  let prompt = 0;
  let cached = 0;
  for (const r of ok) {
    prompt += r.promptTokens;
    cached += r.cachedTokens ?? 0;
  }
  let imbalanceRequests = imbalance(pods.map((p) => p.requests));
  let imbalancePromptTokens = imbalance(pods.map((p) => p.promptTokens));
  let routedPerPod: number[] | undefined;
  const sent = results.filter((r) => r.status !== 0);
  if (addresses && sent.length > 0 && sent.every((r) => r.endpoint !== undefined)) {
    const idx = new Map(addresses.map((a, i) => [a, i]));
    routedPerPod = addresses.map(() => 0);
    const tokens = addresses.map(() => 0);
    for (const r of sent) {
      const i = idx.get(r.endpoint as string);
      if (i === undefined) continue;
      routedPerPod[i]++;
      tokens[i] += r.promptTokens;
    }
    imbalanceRequests = imbalance(routedPerPod);
    imbalancePromptTokens = imbalance(tokens);
  }
  const q = pods.reduce((a, p) => a + p.prefixQueries, 0);
  const h = pods.reduce((a, p) => a + p.prefixHits, 0);
  return {
    index,
    rate: stage.rate,
    duration: stage.duration,
    warmup: !!stage.warmup,
    sent: results.length,
    ok: ok.length,
    errors,
    shed,
    errorRate: results.length ? (errors + shed) / results.length : 0,
    ttft,
    itl,
    e2e,
    outputTokPerSec: span > 0 ? outTok / span : NaN,
    reqPerSec: span > 0 ? ok.length / span : NaN,
    hitRate: q > 0 ? h / q : NaN,
    clientHitRate: prompt > 0 ? cached / prompt : NaN,
    oracleHitRate: oracle.prompt > 0 ? oracle.cached / oracle.prompt : NaN,
    imbalanceRequests,
    imbalancePromptTokens,
    routedPerPod,
    perPod: pods,
  };
}

function zeroCounters(): PodCounters {
  return { prefixQueries: 0, prefixHits: 0, promptTokens: 0, generationTokens: 0, requests: 0, preemptions: 0 };
}

function sumCounters(a: PodCounters, b: PodCounters): PodCounters {
  const out = zeroCounters();
  for (const k of Object.keys(out) as (keyof PodCounters)[]) out[k] = a[k] + b[k];
  return out;
}

/**
 * One strategy's per-stage results and the total over its measured (non-warm-up) stages, from
 * its requests and its pods' counter deltas per stage. Shared by the real-time and virtual runners.
 */
export function assembleStrategy(
  stages: Stage[],
  all: RequestResult[],
  podDeltas: PodCounters[][],
  perStageOracle: { prompt: number; cached: number }[],
  addresses: string[],
  toModelSec: (ms: number) => number,
): Pick<StrategyResult, 'stages' | 'total' | 'sampleErrors'> {
  const byStage = stages.map((_s, i) => all.filter((r) => r.stage === i));
  const perStage = stages.map((st, i) => aggregateStage(i, st, byStage[i], toModelSec, podDeltas[i], perStageOracle[i], addresses));
  const measuredIdx = stages.map((s, i) => (s.warmup ? -1 : i)).filter((i) => i >= 0);
  const measured = all.filter((r) => !stages[r.stage].warmup);
  const podTotal = podDeltas[0].map((_p, k) => measuredIdx.reduce((acc, i) => sumCounters(acc, podDeltas[i][k]), zeroCounters()));
  const oracleTotal = measuredIdx.reduce(
    (a, i) => ({ prompt: a.prompt + perStageOracle[i].prompt, cached: a.cached + perStageOracle[i].cached }), { prompt: 0, cached: 0 });
  const dur = measuredIdx.reduce((a, i) => a + stages[i].duration, 0);
  const total = aggregateStage(-1, { rate: dur ? measured.length / dur : 0, duration: dur }, measured, toModelSec, podTotal, oracleTotal, addresses);
  const sampleErrors = [...new Set(all.filter((r) => !r.ok && r.error).map((r) => r.error as string))].slice(0, 5);
  return { stages: perStage, total, sampleErrors };
}
