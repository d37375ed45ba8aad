// Named workloads for comparing schedulers (issue 16: kvrouter's predicted-latency scheduler
// against the peers' policies). Each is the llm-d-73 shape (or a chat / long-output / 64-pod
// variant) on a short ladder that spans the cluster's knee, so one strategy runs in a few CPU
// minutes on the virtual clock. The ladders are fixed from each shape's capacity estimate
// (written next to it) before any strategy was run on them, not tuned toward a result.
import type { Preset } from './presets.js';

/** The strategies of the scheduler table (docs/bench/scheduler.md), in its column order. */
export const SCHEDULER_COMPARISON = [
  'predicted-latency', 'llmd-sticky', 'precise-3-2-2', 'dynamo-kv', 'sglang-cache-aware', 'approximate', 'round-robin',
];

/** The presets, built on the full llm-d-73 preset (workload, pods, KV, time profile). */
export function schedulerPresets(llmd73: Preset): Record<string, Preset> {
  // llm-d-73 on 8 pods: the uncapped open-loop ladder holds TTFT p90 ~0.2 s at 20 QPS and
  // queues without bound from 22 QPS (KV-bound, ~11k output tok/s), so the knee ladder runs
  // 16 -> 19 -> 22 QPS after a 15 QPS warm-up: below, at and just past the knee.
  const knee: Preset = {
    ...llmd73,
    description: 'llm-d-73 workload (8 pods, 150 groups x 5 prompts, 6,000 + 1,200 -> 1,000 tokens) on a short ladder across the knee: warm-up 15 QPS x 40 s, then 16, 19, 22 QPS (30, 30, 20 s)',
    rates: [16, 19, 22],
    stageDuration: 30,
    stageDurations: [30, 30, 20],
    warmup: { rate: 15, duration: 40 },
    // The open-loop client these ladders were fixed on (stages back to back, random prompt
    // order): llm-d-73's inference-perf replay drains every stage, so no stage would queue
    // past the knee and the ladder would not span it.
    client: undefined,
    strategies: SCHEDULER_COMPARISON,
    drainTimeoutSec: 600,
    notes: [
      ...llmd73.notes,
      'Scheduler comparison (src/bench/scheduler-presets.ts): the llm-d-73 workload on a ladder across the knee of the uncapped open-loop client (16, 19, 22 QPS).',
    ],
  };
  const variant = (description: string, over: Partial<Preset>, note: string): Preset => ({
    ...knee,
    ...over,
    description,
    notes: [...knee.notes, note],
  });
  return {
    'sched-knee': knee,
    'sched-hetero': variant(
      `${knee.description}; pods 1, 4 and 7 (3 of 8) take twice as long per step`,
      { scenario: 'hetero:x=2:every=3' },
      'Heterogeneous pods: 3 of 8 pods at half speed (scenario hetero:x=2:every=3), the same ladder, so the cluster (13/16 of the nominal capacity) is past its knee one stage earlier.',
    ),
    'sched-pressure': variant(
      `${knee.description}; KV per pod sized so the resident set is 130 % of the cluster's KV`,
      { scenario: 'pressure:f=1.3' },
      'Eviction pressure: each pod\'s KV is sized so the distinct prompt blocks (1.8M tokens) are 130 % of the cluster\'s (scenario pressure:f=1.3); the same ladder.',
    ),
    'sched-churn': variant(
      `${knee.description}; pod 0 restarts with an empty cache at 70 s and pod 7 joins the pool (empty) at 90 s`,
      { scenario: 'restart@70,join@90' },
      'Churn: the pool starts with 7 of the 8 pods; pod 0 restarts with an empty cache at model time 70 s (early in the 16 QPS stage) and pod 7 joins, empty, at 90 s (scale-up in the 19 QPS stage).',
    ),
    // 8,000 output tokens at ~40 ms per step decode for ~5 min and hold ~15k tokens of KV each,
    // about 25 sequences per pod: ~200 / 320 s = 0.6 QPS is the cluster's knee.
    'sched-long-output': {
      ...knee,
      description: 'reasoning-length outputs: the llm-d-73 prompts (6,000 + 1,200 tokens) with 8,000 output tokens each, 8 pods; warm-up 0.4 QPS x 60 s, then 0.5, 0.65, 0.8 QPS x 90 s',
      shared: { ...knee.shared!, outputLen: 8000 },
      rates: [0.5, 0.65, 0.8],
      stageDuration: 90,
      stageDurations: [90, 90, 90],
      warmup: { rate: 0.4, duration: 60 },
      drainTimeoutSec: 1800,
      notes: [...llmd73.notes, 'Long outputs: 8,000 output tokens per request (a reasoning model\'s length), so KV held by decoding sequences, not prefill, bounds the cluster (knee ~0.6 QPS).'],
    },
    // Chat: 256 concurrent users, 6 rounds each (a new user takes the seat after the last), a
    // 2,000-token system prompt shared by all, a 3,000-token per-user document, 150-token
    // questions and 350-token answers: round 6 carries ~8,000 tokens, ~2M tokens resident for
    // 256 users (83 % of the cluster's KV). Prefill is the new turn (~500 tokens) on a hit.
    'sched-chat': {
      ...knee,
      description: 'multi-turn chat with growing history: 256 users x 6 rounds (each round re-sends the whole history), 2,000-token shared system prompt + 3,000-token per-user document, 150-token questions, 350-token answers; warm-up 6 QPS x 40 s, then 8, 10, 12 QPS x 30 s',
      workload: 'multi_round',
      shared: undefined,
      multiRound: { numUsers: 256, numRounds: 6, sharedSystemPromptLen: 2000, userHistoryPromptLen: 3000, questionLen: 150, answerLen: 350 },
      rates: [8, 10, 12],
      stageDuration: 30,
      stageDurations: [30, 30, 30],
      warmup: { rate: 6, duration: 40 },
      notes: [...llmd73.notes.slice(0, 1), 'Chat (vLLM production-stack multi-round-qa shape): a user\'s next round is sent only after its previous answer finished, so a user\'s history grows on the pod that served it.'],
    },
    // 64 pods: llm-d-73 scaled 8x (1,200 groups, every rate x 8), the knee ladder shortened.
    'sched-64': {
      ...knee,
      description: "64 pods: llm-d-73 scaled 8x (1,200 groups x 5 prompts, rates x 8): warm-up 120 QPS x 15 s, then 128, 152, 176 QPS (15, 15, 10 s)",
      shared: { ...knee.shared!, numGroups: 1200 },
      pods: 64,
      rates: [128, 152, 176],
      stageDuration: 15,
      stageDurations: [15, 15, 10],
      warmup: { rate: 120, duration: 15 },
      notes: [...knee.notes, '64 pods: llm-d-73 scaled 8x (pods, groups, rates), so load per pod and the resident-set fraction are the knee preset\'s; shorter stages keep it to a few CPU minutes per strategy.'],
    },
  };
}
