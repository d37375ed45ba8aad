// CLI flags (+ preset) -> BenchOptions. Kept apart from the command so tests can build runs.
import { ladder, parseRates, type LoadShape, type LoadType, type Stage } from './load.js';
import { PRESETS, VIRTUAL_CLOCK_READY, presetByName, presetTracePath, type Preset } from './presets.js';
import { parseScenario } from './scenarios.js';
import type { BenchOptions } from './runner.js';
import { DEFAULT_STRATEGIES, strategyByName } from './strategies.js';
import { MULTI_ROUND_DEFAULTS, multiRoundWorkload } from './workloads/multi-round.js';
import { SHARED_PREFIX_DEFAULTS, SHARED_PREFIX_ORDERS, sharedPrefixWorkload, type SharedPrefixOrder } from './workloads/shared-prefix.js';
import { traceWorkload } from './workloads/trace.js';
import type { Workload } from './workloads/types.js';

export interface BenchFlags {
  preset?: string;
  workload?: string;
  strategies?: string;
  pods?: number;
  qps?: string;
  stageDuration?: number;
  load?: string;
  warmup?: string;
  seed?: number;
  timeScale?: number;
  trace?: string;
  traceSpeed?: number;
  maxRequests?: number;
  maxOutputLen?: number;
  groups?: number;
  promptsPerGroup?: number;
  systemLen?: number;
  questionLen?: number;
  outputLen?: number;
  multiTurn?: boolean;
  users?: number;
  rounds?: number;
  historyLen?: number;
  blockSize?: number;
  numGpuBlocks?: number;
  maxNumSeqs?: number;
  profile?: string;
  model?: string;
  drainTimeout?: number;
  inProcessPods?: boolean;
  /** `real` (default): scaled wall time; `virtual`: discrete-event model time (src/bench/virtual). */
  clock?: string;
  eventDelayMs?: number;
  scrapeIntervalMs?: number;
  routerOverheadMs?: number;
  /** inference-perf semantics: prompt order, stage draining, per-stage durations, concurrency cap. */
  order?: string;
  drainStages?: boolean;
  stageDurations?: string;
  maxInflight?: number;
  /** Model seconds between stages (inference-perf's load.interval). Virtual clock. */
  stageInterval?: number;
  /** Model seconds after its send at which the client abandons a request (aiohttp's total timeout). Virtual clock. */
  requestTimeout?: number;
  maxNumBatchedTokens?: number;
  maxModelLen?: number;
  /** Time-model constants (ms), src/sim/timing.ts. */
  stepOverheadMs?: number;
  prefillMsPerToken?: number;
  decodeMsPerSeq?: number;
  kvReadMsPerToken?: number;
  prefillAttnMsPerPair?: number;
  /** Per-pod step-cost multipliers, e.g. "1,1,2,2". */
  podTimingMultipliers?: string;
  /** Named scenarios, e.g. "restart@120:pod=1,hetero" (scenarios.ts). */
  scenario?: string;
}

const GENERIC: Preset = {
  description: 'defaults',
  workload: 'shared_prefix',
  shared: { ...SHARED_PREFIX_DEFAULTS },
  multiRound: { ...MULTI_ROUND_DEFAULTS },
  loadType: 'poisson',
  rates: [2, 5, 10],
  stageDuration: 10,
  pods: 4,
  blockSize: 16,
  numGpuBlocks: 2048,
  profile: 'h100-tp2-qwen3-32b',
  timeScale: 1,
  strategies: DEFAULT_STRATEGIES,
  inProcessPods: false,
  drainTimeoutSec: 300,
  notes: [],
};

export interface ResolvedBench {
  options: BenchOptions;
  inProcessPods: boolean;
}

function nonNegative(name: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!(v >= 0) || !Number.isFinite(v)) throw new Error(`--${name} must be a number >= 0 (got ${v})`);
  return v;
}

/** `20,20,30` -> one positive duration per stage (a single value applies to every stage). */
export function parseDurations(text: string, stages: number): number[] {
  const d = text.split(',').map((s) => Number(s.trim()));
  if (d.length === 0 || d.some((x) => !(x > 0) || !Number.isFinite(x))) throw new Error(`--stage-durations: expected positive seconds separated by commas, got "${text}"`);
  if (d.length === 1) return Array.from({ length: stages }, () => d[0]);
  if (d.length !== stages) throw new Error(`--stage-durations: ${d.length} durations for ${stages} stages`);
  return d;
}

function positiveInt(name: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer (got ${v})`);
  return v;
}

export function resolveBench(f: BenchFlags): ResolvedBench {
  const base = f.preset ? presetByName(f.preset) : GENERIC;
  const workloadKind = f.workload ?? base.workload;
  if (!['shared_prefix', 'multi_round', 'trace'].includes(workloadKind)) {
    throw new Error(`--workload must be shared_prefix, multi_round or trace (got "${workloadKind}")`);
  }
  const seed = f.seed ?? 42;
  if (!Number.isInteger(seed)) throw new Error('--seed must be an integer');
  let workload: Workload;
  if (workloadKind === 'shared_prefix') {
    const d = base.shared ?? SHARED_PREFIX_DEFAULTS;
    workload = sharedPrefixWorkload({
      numGroups: positiveInt('groups', f.groups) ?? d.numGroups,
      promptsPerGroup: positiveInt('prompts-per-group', f.promptsPerGroup) ?? d.promptsPerGroup,
      systemPromptLen: positiveInt('system-len', f.systemLen) ?? d.systemPromptLen,
      questionLen: f.questionLen ?? d.questionLen,
      outputLen: positiveInt('output-len', f.outputLen) ?? d.outputLen,
      multiTurn: f.multiTurn ?? d.multiTurn ?? false,
      ...(f.order !== undefined ? { order: parseOrder(f.order) } : base.client?.order !== undefined ? { order: base.client.order } : {}),
      seed,
    });
  } else if (workloadKind === 'multi_round') {
    const d = base.multiRound ?? MULTI_ROUND_DEFAULTS;
    workload = multiRoundWorkload({
      numUsers: positiveInt('users', f.users) ?? d.numUsers,
      numRounds: positiveInt('rounds', f.rounds) ?? d.numRounds,
      sharedSystemPromptLen: f.systemLen ?? d.sharedSystemPromptLen,
      userHistoryPromptLen: f.historyLen ?? d.userHistoryPromptLen,
      questionLen: positiveInt('question-len', f.questionLen) ?? d.questionLen,
      answerLen: positiveInt('output-len', f.outputLen) ?? d.answerLen,
      seed,
    });
  } else {
    const file = f.trace ?? (base.trace ? presetTracePath(base.trace.file) : undefined);
    if (!file) throw new Error('--workload trace needs --trace <file.jsonl>');
    workload = traceWorkload({
      file, seed, speed: f.traceSpeed ?? base.trace?.speed, maxRequests: f.maxRequests, maxOutputLen: f.maxOutputLen ?? base.trace?.maxOutputLen,
    });
  }

  const loadType = (f.load ?? base.loadType) as LoadType;
  if (loadType !== 'constant' && loadType !== 'poisson') throw new Error(`--load must be constant or poisson (got "${loadType}")`);
  const rates = f.qps ? parseRates(f.qps) : base.rates;
  const stageDuration = f.stageDuration ?? base.stageDuration;
  if (!(stageDuration > 0)) throw new Error('--stage-duration must be > 0');
  const stages: Stage[] = f.stageDurations
    ? parseDurations(f.stageDurations, rates.length).map((duration, i) => ({ rate: rates[i], duration }))
    : ladder(rates, stageDuration);
  // A preset's per-stage durations hold for its own ladder (not for --qps, --stage-duration or --stage-durations).
  if (base.stageDurations && !f.qps && f.stageDuration === undefined && !f.stageDurations) stages.forEach((st, i) => (st.duration = base.stageDurations![i]));
  let warm = base.warmup;
  if (f.warmup) {
    const [rate, duration] = f.warmup.split('x').map(Number);
    if (!(rate > 0) || !(duration > 0)) throw new Error('--warmup expects RATExSECONDS, e.g. 15x50');
    warm = { rate, duration };
  }
  if (warm) stages.unshift({ ...warm, warmup: true });
  const load: LoadShape = { type: loadType, stages };

  const strategies = f.strategies ? f.strategies.split(',').map((s) => s.trim()).filter(Boolean) : base.strategies;
  for (const s of strategies) strategyByName(s);
  if (strategies.length === 0) throw new Error('--strategies: name at least one');

  // Presets meant for the virtual clock are too long for the scaled real clock.
  const clock = clockOf(f.clock ?? (base.clock === 'virtual' && VIRTUAL_CLOCK_READY ? 'virtual' : 'real'));
  if (clock === 'virtual' && !VIRTUAL_CLOCK_READY) throw new Error('--clock virtual: the virtual-clock runner is not available in this build');
  if (base.clock === 'virtual' && clock === 'real' && f.clock !== 'real' && !f.maxRequests) {
    throw new Error(
      `preset ${f.preset} runs at full length on the virtual clock; give --clock real to run it in scaled real time anyway` +
        `${PRESETS[`${f.preset}-short`] ? `, or use ${f.preset}-short` : ''}, or cap it with --max-requests`,
    );
  }
  const timeScale = f.timeScale ?? base.timeScale;
  if (!(timeScale > 0)) throw new Error('--time-scale must be > 0');
  let maxRequests = f.maxRequests;
  if (workloadKind !== 'trace' && maxRequests !== undefined) maxRequests = positiveInt('max-requests', maxRequests);
  const scenarioSpec = f.scenario ?? base.scenario;
  const options: BenchOptions = {
    workload: maxRequests && workloadKind !== 'trace' ? capped(workload, maxRequests) : workload,
    load,
    strategies,
    sim: {
      pods: positiveInt('pods', f.pods) ?? base.pods,
      model: f.model ?? 'Qwen/Qwen3-0.6B',
      blockSize: positiveInt('block-size', f.blockSize) ?? base.blockSize,
      numGpuBlocks: positiveInt('num-gpu-blocks', f.numGpuBlocks) ?? base.numGpuBlocks,
      maxNumSeqs: positiveInt('max-num-seqs', f.maxNumSeqs) ?? base.maxNumSeqs,
      maxNumBatchedTokens: positiveInt('max-num-batched-tokens', f.maxNumBatchedTokens) ?? base.maxNumBatchedTokens,
      maxModelLen: positiveInt('max-model-len', f.maxModelLen) ?? base.maxModelLen,
      profile: f.profile ?? base.profile,
      timing: timingOverrides(f),
      podTimingMultipliers: multipliers(f.podTimingMultipliers, positiveInt('pods', f.pods) ?? base.pods),
    },
    clock,
    scenario: scenarioSpec === undefined ? undefined : parseScenario(scenarioSpec, positiveInt('pods', f.pods) ?? base.pods),
    timeScale,
    seed,
    preset: f.preset,
    drainTimeoutSec: f.drainTimeout ?? base.drainTimeoutSec,
    notes: [...base.notes],
    drainStages: f.drainStages ?? base.client?.drainStages,
    maxInflight: positiveInt('max-inflight', f.maxInflight),
    ...virtualClientTimes(f, base, clock),
    virtual: {
      eventDelayMs: nonNegative('event-delay-ms', f.eventDelayMs),
      scrapeIntervalMs: f.scrapeIntervalMs === undefined ? undefined : positiveNumber('scrape-interval-ms', f.scrapeIntervalMs),
      routerOverheadMs: nonNegative('router-overhead-ms', f.routerOverheadMs),
    },
  };
  return { options, inProcessPods: f.inProcessPods ?? base.inProcessPods };
}

/**
 * The stage interval and request timeout, which only the virtual runner implements: explicit
 * flags on the real clock are an error, a preset's are dropped there (its note says so).
 */
function virtualClientTimes(f: BenchFlags, base: Preset, clock: 'real' | 'virtual'): Pick<BenchOptions, 'stageIntervalSec' | 'requestTimeoutSec'> {
  if (clock === 'real') {
    if (f.stageInterval !== undefined || f.requestTimeout !== undefined) throw new Error('--stage-interval and --request-timeout need --clock virtual');
    return {};
  }
  const interval = nonNegative('stage-interval', f.stageInterval) ?? base.client?.stageIntervalSec;
  const timeout = f.requestTimeout === undefined ? base.client?.requestTimeoutSec : positiveNumber('request-timeout', f.requestTimeout);
  return { ...(interval !== undefined ? { stageIntervalSec: interval } : {}), ...(timeout !== undefined ? { requestTimeoutSec: timeout } : {}) };
}

function clockOf(v: string | undefined): 'real' | 'virtual' {
  const clock = v ?? 'real';
  if (clock !== 'real' && clock !== 'virtual') throw new Error(`--clock must be real or virtual (got "${clock}")`);
  return clock;
}

function positiveNumber(name: string, v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) throw new Error(`--${name} must be > 0 (got ${v})`);
  return v;
}

function parseOrder(v: string): SharedPrefixOrder {
  const order = SHARED_PREFIX_ORDERS.find((o) => o === v);
  if (order === undefined) throw new Error(`--order must be ${SHARED_PREFIX_ORDERS.join(', ')} (got "${v}")`);
  return order;
}

/** The time-model constants given on the command line (unset ones keep the profile's). */
function timingOverrides(f: BenchFlags): BenchOptions['sim']['timing'] {
  const t = {
    stepOverheadMs: nonNegative('step-overhead-ms', f.stepOverheadMs),
    prefillPerTokenMs: nonNegative('prefill-ms-per-token', f.prefillMsPerToken),
    decodePerSeqMs: nonNegative('decode-ms-per-seq', f.decodeMsPerSeq),
    kvReadPerTokenMs: nonNegative('kv-read-ms-per-token', f.kvReadMsPerToken),
    prefillAttnPerPairMs: nonNegative('prefill-attn-ms-per-pair', f.prefillAttnMsPerPair),
  };
  const set = Object.fromEntries(Object.entries(t).filter(([, v]) => v !== undefined));
  return Object.keys(set).length ? set : undefined;
}

function multipliers(spec: string | undefined, pods: number): number[] | undefined {
  if (spec === undefined) return undefined;
  const xs = spec.split(',').map((x) => Number(x.trim()));
  if (xs.length !== pods || xs.some((x) => !Number.isFinite(x) || x <= 0)) {
    throw new Error(`--pod-timing-multipliers expects ${pods} positive numbers, one per pod (got "${spec}")`);
  }
  return xs;
}

/** Limits a generated workload to its first n requests (the schedule stops early). */
function capped(w: Workload, n: number): Workload {
  return { ...w, take: (count: number, positions?: readonly number[]) => w.take(Math.min(count, n), positions) };
}

export const PRESET_NAMES = Object.keys(PRESETS);
