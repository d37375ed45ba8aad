// Named benchmark shapes. Each preset is a full set of defaults; explicit CLI flags override.
import { fileURLToPath } from 'node:url';
import type { LoadType } from './load.js';
import type { SharedPrefixOrder } from './workloads/shared-prefix.js';
import { schedulerPresets } from './scheduler-presets.js';

export interface Preset {
  description: string;
  workload: 'shared_prefix' | 'multi_round' | 'trace';
  shared?: { numGroups: number; promptsPerGroup: number; systemPromptLen: number; questionLen: number; outputLen: number; multiTurn?: boolean };
  multiRound?: { numUsers: number; numRounds: number; sharedSystemPromptLen: number; userHistoryPromptLen: number; questionLen: number; answerLen: number };
  /** Trace replay: a file in this repository (path from its root; .gz is decompressed). */
  trace?: { file: string; speed?: number; maxOutputLen?: number };
  loadType: LoadType;
  rates: number[];
  stageDuration: number;
  /** Per-stage model seconds (same length as `rates`); overrides `stageDuration`. */
  stageDurations?: number[];
  warmup?: { rate: number; duration: number };
  pods: number;
  blockSize: number;
  numGpuBlocks: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  /** Simulated context limit (vLLM --max-model-len); default the profile's. */
  maxModelLen?: number;
  profile: string;
  timeScale: number;
  /** The clock this preset is meant for: `virtual` presets are too long for the scaled real clock. */
  clock?: 'real' | 'virtual';
  /** Named scenarios (scenarios.ts), as for --scenario. */
  scenario?: string;
  strategies: string[];
  inProcessPods: boolean;
  drainTimeoutSec: number;
  /** inference-perf client semantics the preset reproduces (CLI flags override). */
  client?: PresetClient;
  notes: string[];
}

/** The load generator's behaviour (`--order`, `--drain-stages`, `--stage-interval`, `--request-timeout`). */
export interface PresetClient {
  order?: SharedPrefixOrder;
  drainStages?: boolean;
  /** Model seconds between a stage's end (drained) and the next stage's start. */
  stageIntervalSec?: number;
  /** Model seconds from a request's send to the client giving up on it (virtual clock). */
  requestTimeoutSec?: number;
}

/*
 * inference-perf as llm-d ran it for 73-capacity (kubernetes-sigs/inference-perf, September 2025,
 * e.g. commit 5b1da4d; the same in v0.2.0):
 *  - loadgen/load_generator.py run_stage: a stage enqueues int(rate x duration) requests numbered
 *    from 0, then waits until every one has finished (no stage timeout outside the sweep
 *    pre-stage), and mp_run sleeps LoadConfig.interval (default 1.0 s) before the next stage;
 *  - datagen/shared_prefix_datagen.py: prompts shuffled once, request n gets prompt n mod 750;
 *  - client/modelserver/openai_client.py: one aiohttp.ClientSession per request with no timeout
 *    argument, so aiohttp's default ClientTimeout(total=300 s) bounds the whole request including
 *    the streamed body; a timed-out request is recorded with an error, and reportgen/base.py
 *    summarize_requests leaves errored requests out of TTFT and output tokens.
 * The client's concurrency cap (num_workers x worker_max_concurrency) is left off: the published
 * Requests/s (requests / send window) stays within Poisson noise of the offered rate at every
 * stage for every scheduler, which a binding cap would have stretched (docs/bench/llm-d-73.md).
 */
export const INFERENCE_PERF_CLIENT: PresetClient = { order: 'stage-cyclic', drainStages: true, stageIntervalSec: 1, requestTimeoutSec: 300 };

/**
 * Hook for the virtual-clock runner (src/bench/virtual): when it lands, set this to true and
 * presets whose `clock` is `virtual` run on it by default. Until then they need `--clock real`
 * (and run at full length in scaled real time) or their `-short` variant.
 */
export const VIRTUAL_CLOCK_READY = true;

/** Every strategy a full comparison shows (the table order). */
export const FULL_COMPARISON = [
  'precise-3-2-2', 'precise-1-1-1', 'approximate-llmd73', 'approximate', 'load-only', 'random', 'round-robin', 'sglang-cache-aware', 'dynamo-kv',
];

/*
 * llm-d 73-capacity (llm-d/llm-d-kv-cache benchmarking/73-capacity/README.md, September 2025):
 * Qwen3-32B TP2 on 8 pods of 2x H100 with 307,328 KV tokens each (/ 64 = 4,802 blocks);
 * inference-perf shared_prefix 150 groups x 5 prompts, 6,000-token system prompt + 1,200-token
 * question, 1,000 output tokens; Poisson; warm-up 15 QPS x 50 s; then these stages (QPS x s).
 * The resident set, 150 x 6,000 + 750 x 1,200 = 1.8M tokens, is 73 % of the 8-pod cluster.
 */
const LLMD_73_RATES = [3, 10, 15, 20, 22, 25, 30, 35, 40, 43, 46, 49, 52, 55, 57, 60];
const LLMD_73_DURATIONS = [20, 20, 20, 38, 34, 30, 25, 21, 38, 36, 33, 30, 29, 27, 26, 25];

const llmd73 = (k: number): Preset => ({
  description:
    k === 1
      ? "llm-d's 73-capacity benchmark at full length: 8 pods, 150 groups x 5 prompts, 6,000 + 1,200 -> 1,000 tokens, warm-up 15 QPS x 50 s, 16 Poisson stages 3 -> 60 QPS of 20-38 s"
      : `llm-d's 73-capacity shape scaled ${k}x: ${8 * k} pods, ${150 * k} groups x 5 prompts, every stage at ${k}x the QPS (resident set still 73 % of cluster KV)`,
  workload: 'shared_prefix',
  shared: { numGroups: 150 * k, promptsPerGroup: 5, systemPromptLen: 6000, questionLen: 1200, outputLen: 1000 },
  loadType: 'poisson',
  rates: LLMD_73_RATES.map((r) => r * k),
  stageDuration: 20,
  stageDurations: LLMD_73_DURATIONS,
  warmup: { rate: 15 * k, duration: 50 },
  pods: 8 * k,
  blockSize: 64,
  numGpuBlocks: 4802,
  profile: 'h100-tp2-qwen3-32b',
  timeScale: 5,
  clock: 'virtual',
  strategies: k === 1 ? FULL_COMPARISON : ['precise-3-2-2', 'approximate-llmd73', 'load-only'],
  inProcessPods: false,
  drainTimeoutSec: 600,
  // The full ladder replays llm-d's client; the scale presets keep the plain open-loop ladder.
  ...(k === 1 ? { client: INFERENCE_PERF_CLIENT } : {}),
  notes: [
    "llm-d-73 source: llm-d/llm-d-kv-cache benchmarking/73-capacity/README.md (September 2025): same workload, ladder and stage durations, pod count, KV capacity per pod (4,802 x 64-token blocks) and H100 TP2 Qwen3-32B; the simulator's step costs are derived in src/sim/timing.ts (see Time model).",
    ...(k === 1
      ? ["llm-d-73 client: inference-perf's semantics as llm-d ran it (September 2025): prompts cycled from the first one at every stage, each stage drained, 1 s between stages, a request abandoned 300 s after its send (aiohttp's default total timeout) and then left out of TTFT and throughput; no client concurrency cap (see docs/bench/llm-d-73.md)."]
      : []),
    ...(k === 1 ? [] : [`Scale: ${k}x llm-d-73 (pods, groups and every stage's QPS multiplied by ${k}), so load per pod and the resident-set fraction are llm-d's.`]),
  ],
});

const mooncake = (which: 'conversation' | 'synthetic'): Preset => ({
  description:
    which === 'conversation'
      ? 'Mooncake FAST\'25 conversation trace, replayed whole at its timestamps (12,031 requests over 59 min, mean input 12k tokens, up to 126k)'
      : 'Mooncake FAST\'25 synthetic trace, replayed whole at its timestamps (3,993 requests over 17 min, mean input 15k tokens, up to 191k)',
  workload: 'trace',
  trace: { file: `data/mooncake/${which}_trace.jsonl.gz` },
  loadType: 'poisson',
  rates: [1],
  stageDuration: 1,
  pods: 8,
  blockSize: 64,
  numGpuBlocks: 4802,
  // Longest request of the trace, input + output: 126,527 (conversation), 191,386 (synthetic).
  maxModelLen: which === 'conversation' ? 131_072 : 196_608,
  profile: 'h100-tp2-qwen3-32b',
  timeScale: 5,
  clock: 'virtual',
  strategies: FULL_COMPARISON,
  inProcessPods: false,
  drainTimeoutSec: 600,
  notes: [
    `Mooncake ${which} trace: kvcache-ai/Mooncake FAST25-release/traces/${which}_trace.jsonl (Apache-2.0; copy in data/mooncake/); each hash id is 512 deterministic tokens, so shared hash ids are shared prefixes.`,
    which === 'conversation'
      ? 'Context: Qwen3-32B serves 40,960 tokens natively and 131,072 with YaRN (Qwen/Qwen3-32B model card); --max-model-len 131,072 serves every request of this trace whole.'
      : 'Context: this trace reaches 191,386 tokens, beyond Qwen3-32B\'s 131,072 (YaRN); --max-model-len 196,608 serves it whole, extrapolating the time model past the model\'s real limit.',
  ],
});

export const PRESETS: Record<string, Preset> = {
  smoke: {
    description: 'a small shared-prefix run that finishes in under a minute on 2 cores',
    workload: 'shared_prefix',
    shared: { numGroups: 6, promptsPerGroup: 4, systemPromptLen: 512, questionLen: 64, outputLen: 16 },
    loadType: 'poisson',
    rates: [4, 8],
    stageDuration: 2.5,
    pods: 2,
    blockSize: 16,
    // 2 x 256 blocks of 16 = 8,192 token slots; the resident set (6 x 512 + 24 x 64 = 4,608 tokens)
    // is ~56 % of the cluster, so a pod cannot hold every group and placement matters.
    numGpuBlocks: 256,
    profile: 'h100-tp2-qwen3-32b',
    timeScale: 1,
    strategies: ['precise', 'approximate', 'load-only', 'random', 'round-robin', 'sglang-cache-aware', 'dynamo-kv'],
    inProcessPods: true,
    drainTimeoutSec: 30,
    notes: ['Smoke preset: tiny shapes for a quick end-to-end check; not a performance comparison.'],
  },
  'llm-d-73': llmd73(1),
  'llm-d-73-short': {
    ...llmd73(1),
    description: "llm-d's 73-capacity shape on a shortened ladder for the scaled real clock (warm-up 15 QPS x 5 s, 7 stages of 3 s, 3 -> 60 QPS)",
    rates: [3, 10, 20, 30, 40, 50, 60],
    stageDuration: 3,
    stageDurations: undefined,
    warmup: { rate: 15, duration: 5 },
    // At 3 the simulator fell 7-13 model-ms behind per timer on this 2-core machine when it was
    // shared, which distorted every figure; at 5 lag was < 1 ms. About 5 min wall per strategy.
    timeScale: 5,
    clock: 'real',
    drainTimeoutSec: 200,
    client: undefined,
    strategies: ['precise-3-2-2', 'approximate-llmd73', 'load-only', 'random'],
    notes: [
      ...llmd73(1).notes.filter((n) => !n.startsWith('llm-d-73 client:')),
      "llm-d-73-short: the ladder keeps its 3 -> 60 QPS range with fewer, shorter stages (llm-d: 16 stages of 20-38 s after a 50 s warm-up at 15 QPS; here a 5 s warm-up and 7 stages of 3 model seconds), so stages overlap (a request decodes for ~50-90 s) and caches are far from steady state; absolute figures are not comparable to llm-d's. For the full ladder use llm-d-73 (virtual clock).",
    ],
  },
  'mooncake-conversation': mooncake('conversation'),
  'mooncake-synthetic': mooncake('synthetic'),
  'scale-64': llmd73(8),
  'scale-256': llmd73(32),
  // Scheduler comparison workloads (issue 16, docs/bench/scheduler.md).
  ...schedulerPresets(llmd73(1)),
};

/** A preset's trace file, resolved against the repository root (works from any cwd). */
export function presetTracePath(file: string): string {
  return fileURLToPath(new URL(`../../${file}`, import.meta.url));
}

export function presetByName(name: string): Preset {
  const p = PRESETS[name];
  if (!p) throw new Error(`unknown preset "${name}" (known: ${Object.keys(PRESETS).join(', ')})`);
  return p;
}
