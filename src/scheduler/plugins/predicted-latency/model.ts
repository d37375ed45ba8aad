// The cost model behind `predicted-latency-scorer`: per pod, this request's TTFT predicted from
// the prefill work queued ahead of it, its own uncached tokens there, and the step time of the
// pod's running decode batch; plus the price of the prefill work a pod without the prefix would
// add (the cost of a second copy). Per-pod multipliers on the prefill and step costs are learned
// online from observed TTFT and ITL, so a pod that is twice as slow predicts twice the time.
//
// vLLM's engine step (chunked prefill, V1 scheduler): decoding sequences take one token of the
// step's budget (max_num_batched_tokens) each, prefill chunks fill the rest, and a step costs
// roughly overhead + prefill tokens x per-token + decoding sequences x per-sequence. So X prefill
// tokens with D sequences decoding need about X / (B - D) steps of (overhead + D x perSeq) plus
// X x perToken of compute, and the first token comes one step after the last chunk.
// Pure arithmetic, no I/O: the plugin (scorer.ts) feeds it what the router knows.

/** Prior step costs; learning scales them per pod. */
export interface StepCosts {
  /** Compute per prefill token, ms. */
  prefillMsPerToken: number;
  /** Fixed cost of one engine step (weights read, launch), ms. */
  stepOverheadMs: number;
  /** Extra step cost per decoding sequence (its KV read), ms. */
  decodeMsPerSeq: number;
  /** vLLM max_num_batched_tokens: the token budget of one step. */
  maxNumBatchedTokens: number;
}

/** What a pod looks like to the predictor at decision time. */
export interface PodLoad {
  /** Uncached prompt tokens of requests sent to the pod that have not produced a first token. */
  queuedTokens: number;
  /** Sequences decoding on the pod (the larger of the scraped running count and the router's own). */
  decoding: number;
  /** Learned multiplier on prefill compute (1 = the prior). */
  kPrefill: number;
  /** Learned multiplier on the step time (1 = the prior). */
  kStep: number;
}

/** One pod's prediction for one request, in ms, with its parts (they sum to ttftMs). */
export interface Prediction {
  ttftMs: number;
  /** Waiting for the prefill work queued ahead (compute and the steps it spans). */
  queueMs: number;
  /** This request's own uncached tokens. */
  prefillMs: number;
  /** Part of queueMs + prefillMs that the running decode batch adds to every step. */
  decodeSlowdownMs: number;
  /** Predicted time per output token once it decodes there. */
  itlMs: number;
}

/** Steps needed for `tokens` of prefill with `decoding` sequences taking budget. */
function steps(c: StepCosts, tokens: number, decoding: number): number {
  const room = Math.max(1, c.maxNumBatchedTokens - decoding);
  return tokens / room;
}

export function predict(c: StepCosts, pod: PodLoad, uncachedTokens: number): Prediction {
  const step = pod.kStep * (c.stepOverheadMs + pod.decoding * c.decodeMsPerSeq);
  const decodePart = pod.kStep * pod.decoding * c.decodeMsPerSeq;
  const perToken = pod.kPrefill * c.prefillMsPerToken;
  const qSteps = steps(c, pod.queuedTokens, pod.decoding);
  // +1: the step that produces the first token (and, on average, the rest of the one in flight).
  const ownSteps = steps(c, uncachedTokens, pod.decoding) + 1;
  const queueMs = pod.queuedTokens * perToken + qSteps * step;
  const prefillMs = uncachedTokens * perToken + ownSteps * step;
  return {
    ttftMs: queueMs + prefillMs,
    queueMs,
    prefillMs,
    decodeSlowdownMs: (qSteps + ownSteps) * decodePart,
    itlMs: pod.kStep * (c.stepOverheadMs + (pod.decoding + 1) * c.decodeMsPerSeq),
  };
}

/**
 * Price of the extra prefill work a pod adds over the best-cached candidate: a second copy of
 * blocks another pod already holds. Once warm, vLLM's cache is full (freed blocks stay cached
 * until reused), so every new block evicts one, and in a workload that reuses its prefixes the
 * evicted block is needed again later: the copy costs its prefill once more, `weight` times.
 */
export function copyCostMs(c: StepCosts, pod: PodLoad, extraTokens: number, weight: number): number {
  if (!(extraTokens > 0) || !(weight > 0)) return 0;
  return weight * extraTokens * pod.kPrefill * c.prefillMsPerToken;
}

/** Exponentially weighted mean of log-ratios: a multiplier that follows observed/predicted. */
export class Multiplier {
  private logK = 0;
  samples = 0;
  constructor(
    private readonly alpha: number,
    private readonly min: number,
    private readonly max: number,
  ) {}
  get value(): number {
    return Math.exp(this.logK);
  }
  /** One observation of observed / predicted-at-k=1; ignored unless finite and positive. */
  observe(ratio: number): void {
    if (!(ratio > 0) || !Number.isFinite(ratio)) return;
    const r = Math.min(this.max, Math.max(this.min, ratio));
    // The first samples weigh more so a pod's real speed shows within a few requests.
    const a = Math.max(this.alpha, 1 / (this.samples + 2));
    this.logK += a * (Math.log(r) - this.logK);
    this.samples++;
  }
}

/** 32-bit mix of a prefix identity and a pod address: rendezvous hashing for ties. */
export function rendezvous(prefix: number, address: string): number {
  let h = (prefix ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < address.length; i++) h = Math.imul(h ^ address.charCodeAt(i), 0x01000193) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}
