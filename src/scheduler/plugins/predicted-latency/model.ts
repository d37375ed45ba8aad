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
  /** Requests waiting ahead of this one on the pod (the router's own and others it scraped). */
  queuedCount: number;
  /**
   * Observed ms between first tokens on the pod while requests waited there (0: not seen). When
   * the pod's KV is full, a waiting request is admitted only as running ones finish, so the
   * queue drains at this pace however little prefill it holds.
   */
  admitGapMs: number;
  /**
   * The decode batch expected over this request's life there: the prefix groups the pod keeps
   * serving x the sequences a group keeps busy (scorer.ts); 0: unknown, use decoding + queued.
   */
  futureBatch: number;
  /** Learned multiplier on prefill compute (1 = the prior). */
  kPrefill: number;
  /** Learned multiplier on the step time (1 = the prior). */
  kStep: number;
}

/** One pod's prediction for one request, in ms, with its parts (they sum to ttftMs). */
export interface Prediction {
  ttftMs: number;
  /** Waiting for the requests queued ahead: their prefill compute and the steps it spans, their admission pace or the wait for KV room (withKvWait), whichever is longest. */
  queueMs: number;
  /** The admission-pace estimate of the wait (requests ahead x the observed gap between first tokens). */
  admissionMs: number;
  /** This request's own uncached tokens. */
  prefillMs: number;
  /** Part of queueMs + prefillMs that the running decode batch adds to every step. */
  decodeSlowdownMs: number;
  /** Predicted time per output token once it decodes there. */
  itlMs: number;
}

/**
 * Wait for KV room on a pod, in ms. vLLM admits a request only when its blocks fit, and running
 * sequences keep growing by one token per step until they finish, so a pod whose KV demand
 * (what its sequences will hold at the end of their outputs, plus the queued requests and this
 * one) exceeds its capacity will make the excess wait (or preempt running sequences, which then
 * wait) until sequences complete; the running set turns over once per decode lifetime. This sees
 * saturation coming while the KV still has room, before any request waits.
 */
export function kvWaitMs(demandTokens: number, capacityTokens: number, decodeLifeMs: number): number {
  if (!(capacityTokens > 0) || !(demandTokens > capacityTokens)) return 0;
  return ((demandTokens - capacityTokens) / capacityTokens) * decodeLifeMs;
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
  const computeMs = pod.queuedTokens * perToken + qSteps * step;
  // Little's law on the pod's queue: requests ahead leave at the observed admission pace.
  const admissionMs = pod.queuedCount * pod.admitGapMs;
  const queueMs = Math.max(computeMs, admissionMs);
  const prefillMs = uncachedTokens * perToken + ownSteps * step;
  return {
    ttftMs: queueMs + prefillMs,
    queueMs,
    admissionMs,
    prefillMs,
    decodeSlowdownMs: (qSteps + ownSteps) * decodePart,
    itlMs: pod.kStep * (c.stepOverheadMs + (pod.decoding + 1) * c.decodeMsPerSeq),
  };
}

/**
 * The prediction with its queue wait at least `kvWait` (kvWaitMs): three estimates of one wait,
 * each from the bottleneck it sees (prefill compute, the admission pace while requests wait, the
 * KV demand beyond capacity), so the binding one is the longest. On a pod whose KV is full the
 * admission pace between first tokens under-predicts the wait (2-7 s predicted, 30-50 s observed
 * on sched-churn: docs/bench/scheduler.md).
 */
export function withKvWait(pr: Prediction, kvWait: number): Prediction {
  if (!(kvWait > pr.queueMs)) return pr;
  return { ...pr, ttftMs: pr.ttftMs + kvWait - pr.queueMs, queueMs: kvWait };
}

/** What a placement costs the other requests on the pod, and its own decode, in ms (summed over requests). */
export interface Externality {
  /** Its prefill chunks lengthen the steps of every sequence decoding there: uncached x per-token x decoding (x 1 with stallOnce: the pod time). */
  prefillDelayMs: number;
  /** Its own decode: expected output tokens x the pod's step time with it in the batch. */
  decodeMs: number;
  /** Its KV read lengthens every step of the sequences decoding there while it decodes. */
  decodeDelayMs: number;
}

/**
 * The social cost of a placement beyond this request's TTFT: what it makes the pod's decoding
 * sequences wait (its prefill, then its share of every step) and its own decode time. Summed
 * over requests, so choosing the minimum of TTFT + these minimizes the total latency the
 * placement adds, not just this request's: a pod with a bigger decode batch pays for it, which
 * keeps the pods' batches balanced without a separate load scorer.
 */
export function externality(c: StepCosts, pod: PodLoad, uncachedTokens: number, outputTokens: number, stallOnce = false): Externality {
  const perSeq = pod.kStep * c.decodeMsPerSeq;
  // The batch it decodes in: what the groups committed to the pod keep there over its life;
  // without that, the sequences decoding now and the requests queued ahead of it (which start
  // decoding first: counting only the former herds a burst onto one pod).
  const batch = pod.futureBatch > 0 ? pod.futureBatch : pod.decoding + pod.queuedCount;
  return {
    prefillDelayMs: uncachedTokens * pod.kPrefill * c.prefillMsPerToken * (stallOnce ? Math.min(1, pod.decoding) : pod.decoding),
    decodeMs: outputTokens * pod.kStep * (c.stepOverheadMs + (batch + 1) * c.decodeMsPerSeq),
    decodeDelayMs: outputTokens * perSeq * batch,
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
  /** exp(logK), kept with it: read for every pod of every decision. */
  private k = 1;
  samples = 0;
  constructor(
    private readonly alpha: number,
    private readonly min: number,
    private readonly max: number,
  ) {}
  get value(): number {
    return this.k;
  }
  /** One observation of observed / predicted-at-k=1; ignored unless finite and positive. */
  observe(ratio: number): void {
    if (!(ratio > 0) || !Number.isFinite(ratio)) return;
    const r = Math.min(this.max, Math.max(this.min, ratio));
    // The first samples weigh more so a pod's real speed shows within a few requests.
    const a = Math.max(this.alpha, 1 / (this.samples + 2));
    this.logK += a * (Math.log(r) - this.logK);
    this.k = Math.exp(this.logK);
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
