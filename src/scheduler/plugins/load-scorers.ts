// Load scorers with llm-d's formulas (llm-d/llm-d-router pkg/epp/framework/plugins/, registered in register.go, 2026).
import { z } from 'zod';
import { parseParams } from './params.js';
import type { CycleState, Endpoint, InferenceRequest, Scorer } from '../types.js';

const noParams = z.object({}).strict();

/**
 * Min-max over candidates of a "lower is better" quantity; all equal -> 1.0. Doubles in and out
 * (Float64Array): a plain array's elements kind followed the metrics (small ints, or doubles once
 * a pod reported one), and each change deoptimized this loop and its callers (--trace-deopt, "wrong map").
 */
function minMaxInverted(endpoints: Endpoint[], of: (e: Endpoint) => number): Float64Array {
  const n = endpoints.length;
  const values = new Float64Array(n);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = of(endpoints[i]);
    values[i] = v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (max === min) return values.fill(1);
  for (let i = 0; i < n; i++) values[i] = (max - values[i]) / (max - min);
  return values;
}

const waitingOf = (e: Endpoint): number => e.metrics.waiting;
const runningOf = (e: Endpoint): number => e.metrics.running;

/** `(maxQ − q)/(maxQ − minQ)` over the waiting queues. */
export class QueueScorer implements Scorer {
  constructor(
    readonly type: string,
    readonly name: string,
    params: unknown,
  ) {
    parseParams(noParams, params);
  }
  score(_s: CycleState, _r: InferenceRequest, endpoints: Endpoint[]): ArrayLike<number> {
    return minMaxInverted(endpoints, waitingOf);
  }
}

/** Same min-max over running requests. */
export class RunningRequestsSizeScorer extends QueueScorer {
  override score(_s: CycleState, _r: InferenceRequest, endpoints: Endpoint[]): ArrayLike<number> {
    return minMaxInverted(endpoints, runningOf);
  }
}

/** `1 − kvUsage`. */
export class KvCacheUtilizationScorer implements Scorer {
  constructor(
    readonly type: string,
    readonly name: string,
    params: unknown,
  ) {
    parseParams(noParams, params);
  }
  score(_s: CycleState, _r: InferenceRequest, endpoints: Endpoint[]): number[] {
    return endpoints.map((e) => 1 - e.metrics.kvUsage);
  }
}

/** q = 0 -> 0.5; else 0.5·(1 − min(q,T)/T). */
export class LoadAwareScorer implements Scorer {
  private readonly threshold: number;
  constructor(
    readonly type: string,
    readonly name: string,
    params: unknown,
  ) {
    this.threshold = parseParams(z.object({ threshold: z.number().int().positive().default(128) }).strict(), params).threshold;
  }
  score(_s: CycleState, _r: InferenceRequest, endpoints: Endpoint[]): number[] {
    const t = this.threshold;
    return endpoints.map((e) => {
      const q = e.metrics.waiting;
      return q === 0 ? 0.5 : 0.5 * (1 - Math.min(q, t) / t);
    });
  }
}

/**
 * Router-side in-flight requests (+1 when sent, −1 at response end):
 * count ≤ idleThreshold -> 1; else (max − c)/max · maxBusyScore.
 */
export class ActiveRequestScorer implements Scorer {
  private readonly idle: number;
  private readonly maxBusy: number;
  constructor(
    readonly type: string,
    readonly name: string,
    params: unknown,
  ) {
    const p = parseParams(
      z
        .object({
          idleThreshold: z.number().int().nonnegative().default(0),
          maxBusyScore: z.number().min(0).max(1).default(1),
          requestTimeout: z.union([z.string(), z.number()]).optional(),
        })
        .strict(),
      params,
    );
    this.idle = p.idleThreshold;
    this.maxBusy = p.maxBusyScore;
  }
  score(_s: CycleState, _r: InferenceRequest, endpoints: Endpoint[]): number[] {
    let max = 0;
    for (const e of endpoints) if (e.inflightRequests > max) max = e.inflightRequests;
    return endpoints.map((e) => {
      const c = e.inflightRequests;
      if (c <= this.idle) return 1;
      return ((max - c) / max) * this.maxBusy;
    });
  }
}

/** `1 − min(1, inflightTokens / capacity)`, capacity 4,194,304 tokens by default. */
export class TokenLoadScorer implements Scorer {
  private readonly capacity: number;
  constructor(
    readonly type: string,
    readonly name: string,
    params: unknown,
  ) {
    this.capacity = parseParams(z.object({ maxInflightTokens: z.number().positive().default(4_194_304) }).strict(), params).maxInflightTokens;
  }
  score(_s: CycleState, _r: InferenceRequest, endpoints: Endpoint[]): number[] {
    return endpoints.map((e) => 1 - Math.min(1, e.inflightTokens / this.capacity));
  }
}
