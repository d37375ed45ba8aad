// `predicted-latency-scorer`: kvrouter's own scheduler. For every candidate pod it predicts this
// request's TTFT (model.ts) from
//   (a) the prefill work queued ahead of it there: uncached tokens of the requests this router
//       sent that have not produced a first token (tracked by PreRequest and the first-token /
//       response hooks), plus the pod's scraped waiting queue beyond those (other routers);
//   (b) this request's uncached tokens there, from the precise KV-event index with tier weights
//       (the precise-prefix-cache-scorer named by `prefixScorer`, which owns index and events);
//   (c) the step time of the pod's running decode batch,
// with per-pod prefill and step multipliers learned online from the TTFT and ITL it observes.
//
// Locality is priced, not just this request's latency: the argmin of predicted TTFT alone
// spreads a prefix group over pods (a cold idle pod often looks faster than a warm busy one),
// and the copies it makes evict other groups' prefixes, so hit rate and capacity collapse under
// load. Each pod is charged the extra prefill it would do over the best-cached candidate, once
// more (`localityWeight`), for the block it will evict from a full cache and someone will
// recompute. A warm pod is left only when its queue costs more than that: a hot prefix gets a
// second copy exactly when its holder saturates. With `ttftSLO` / `itlSLO`, pods predicted to
// meet them are preferred, so a saturated holder's group is replicated to keep the SLO.
// Under congestion the copy is charged once more per request waiting per pod (its extra prefill
// delays them all), and more as the target's KV fills (predicted: what its sequences will hold).
// The evicted block is needed again only as often as prefixes are reused: where groups draw
// fewer than one follow-up each (the Mooncake traces), the copy is charged that fraction.
//
// The decode side is priced too (`decodeWeight`, model.ts externality): this request's own decode
// time and the delay its prefill chunks and KV reads add to the sequences decoding on the pod.
// A prefix no pod holds gets its first home by this decision, and its group's next requests
// follow it (about "sequences per group" of them within a request lifetime, by Little's law), so
// a new group is priced at the decode batch the pod will carry: the prefix groups it serves x
// the sequences a group keeps busy, not the Poisson-noisy count running this instant (which
// spread llm-d-73's 150 groups 13-23 per pod; priced this way, 18-21). When a pod's queue is
// KV-bound, its wait is the requests ahead x the observed gap between first tokens (Little's
// law), not their prefill compute, or the predicted KV wait (a pod's KV demand once its decoding
// sequences finish their outputs and its queue is admitted, beyond capacity) when that is longer;
// `kvWaitWeight` (default 0) adds the KV wait to the cost once more. A prefix no pod caches gets a
// home among the pods that would then carry the least committed prompt work (the prompt tokens
// of the groups they serve; `balanceGroups`, `groupSlack`), and predicted to have KV room for it
// while any does, as long as groups recur: once the groups that expired (no request for a
// request lifetime) drew fewer than one follow-up each on average, the home commits no future
// load and the cost alone places the request.
// For a request lifetime after the pool changed (a pod joined, left or failed a request mid-stream), a
// prefill's delay to the decoding sequences is counted once (the pod time it takes), not once per
// sequence: that per-sequence price is what anchors groups to their homes, and the homes then
// reflect the old pool.
// Near-ties (`tieMs`) go to the pod with more of the prompt cached, then the
// lighter pod, then the pod a rendezvous hash of the prompt's first tokens prefers. Learned
// multipliers apply per pod only when they stand out from the pods' median (`podDeviation`).
//
// Outputs one score per pod: 1 for the choice, below 1 in order of cost for the fallbacks (use
// it alone with max-score-picker). The prediction and its parts are in the "Got pod scores"
// debug line, `detail()` (the /score_completions API) and the metrics.
import { z } from 'zod';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { FastHistogram, Tally, type HistogramSeries } from '../../../util/fast-metrics.js';
import { realClock, type Clock } from '../../../util/clock.js';
import { parseParams } from '../params.js';
import { parseDuration } from '../../../util/duration.js';
import type { KvIndexProvider } from '../../kv-services.js';
import type { BlockKeys } from '../../../index/types.js';
import {
  PREFIX_MATCH_STATE,
  type CycleState,
  type Endpoint,
  type InferenceRequest,
  type PluginContext,
  type PreRequest,
  type PrefixMatchInfo,
  type ResponseHooks,
  type ResponseInfo,
  type Scorer,
  type SchedulingResult,
} from '../../types.js';
import { Multiplier, copyCostMs, externality, kvWaitMs, predict, rendezvous, withKvWait, type PodLoad, type Prediction, type StepCosts } from './model.js';

/** Go duration syntax ("2s", "150ms"), as llm-d writes durations. */
const duration = z.string().min(1);

export const predictedLatencyParamsSchema = z
  .object({
    /** Name of the precise-prefix-cache-scorer instance whose index gives the cached tokens. */
    prefixScorer: z.string().min(1).default('precise-prefix-cache-scorer'),
    // Priors, scaled per pod by what is observed. Defaults: Qwen3-32B on 2 x H100 (TP 2):
    // 15,928 prefill tokens/s (llm-d-router prefixcacheaffinity README, v0.10 calibration);
    // ~10 ms to read the weights per step and ~0.3 ms of KV per decoding sequence (roofline).
    prefillMsPerToken: z.number().positive().default(1000 / 15928),
    stepOverheadMs: z.number().nonnegative().default(10),
    decodeMsPerSeq: z.number().nonnegative().default(0.3),
    maxNumBatchedTokens: z.number().int().positive().default(8192),
    /** Times the extra prefill of a second copy is charged again (0 = myopic TTFT). */
    localityWeight: z.number().nonnegative().default(1),
    /**
     * Weight of the decode side against TTFT: this request's own decode time and the delay its
     * prefill and its KV reads add to the sequences decoding on the pod (model.ts externality).
     * 1 counts a second of anyone's decode like a second of TTFT (total latency); 0 prices only
     * this request's TTFT and the copy.
     */
    decodeWeight: z.number().nonnegative().default(1),
    /** Expected output tokens before any response was seen (then: the observed mean, capped by max_tokens). */
    defaultOutputTokens: z.number().int().positive().default(256),
    /** Costs within this many ms of the best count as ties. */
    tieMs: z.number().nonnegative().default(5),
    /**
     * A pod's own learned multiplier is used only when it differs from the pods' median by more
     * than this factor: identical pods then predict alike (noise in one pod's samples must not
     * move its groups), while a really slower pod (2x) stands out.
     */
    podDeviation: z.number().min(1).default(1.25),
    /**
     * Weight of the predicted KV wait (model.ts kvWaitMs: the pod's KV demand once its decoding
     * sequences finish their outputs and its queue is admitted, beyond its capacity) added to the
     * cost, on top of the predicted TTFT (whose queue wait is already at least the KV wait).
     * 0 (default); docs/bench/scheduler.md has what it did when used.
     */
    kvWaitWeight: z.number().nonnegative().default(0),
    /**
     * A prefix no pod caches goes to a pod that then carries the least committed prompt work (the
     * prompt tokens of the prefix groups it serves), within `groupSlack` mean groups' worth; the
     * cost decides among those. Applies while groups recur (at least one follow-up per group).
     */
    balanceGroups: z.boolean().default(true),
    groupSlack: z.number().nonnegative().default(1),
    ttftSLO: duration.optional(),
    itlSLO: duration.optional(),
    /** Learn per-pod multipliers from observed TTFT and ITL. */
    learn: z.boolean().default(true),
    /** Weight of one observation in the learned multipliers (after the first few). */
    learningRate: z.number().positive().max(1).default(0.05),
  })
  .strict();
export type PredictedLatencyParams = z.infer<typeof predictedLatencyParamsSchema>;

/** Router-side state of one pod. */
interface PodState {
  queuedTokens: number;
  queuedCount: number;
  decoding: number;
  /** Uncached tokens of this router's requests that reached their first token here, ever. */
  prefilled: number;
  /** EWMA of the ms between first tokens observed while others waited behind (0: none yet). */
  admitGapMs: number;
  lastFirstAt: number;
  /** Sum of the first-token times of this router's sequences decoding here (their outputs so far). */
  firstSum: number;
  /** EWMA of first token -> completion on this pod, ms (0: none yet). */
  decodeLifeMs: number;
  /** Prefix groups routed here (group id -> last time and prompt tokens), oldest first; pruned after a request lifetime. */
  groups: Map<number, GroupEntry>;
  /** Sum of the prompt tokens of `groups`: the prefix work committed to the pod. */
  groupTokens: number;
  /** At most the time of the oldest entry in `groups` (Infinity: empty), so most decisions skip pruning. */
  oldestAt: number;
  kPrefill: Multiplier;
  kStep: Multiplier;
}

/** A prefix group routed to a pod: when its last request was, and that request's prompt tokens. */
interface GroupEntry {
  at: number;
  tokens: number;
  /** Requests that found the group cached after it got this home. */
  hits: number;
}

/** One request's decision, kept until its PreRequest hook (the chosen pod is known then). */
interface Decision {
  endpoints: readonly Endpoint[];
  group: number;
  /** Prompt tokens (the group's weight in the balance of homes). */
  tokens: number;
  /** Some pod caches the group's part of the prompt (false: this decision gives it a home). */
  homed: boolean;
  preds: Prediction[];
  uncached: Float64Array;
  /** Prefill compute at kPrefill = 1 and step time at kStep = 1, per pod, for learning. */
  prefillBasis: Float64Array;
  stepBasis: Float64Array;
}

/** A request in flight on a pod. */
interface Flight {
  pod: PodState;
  address: string;
  tokens: number;
  sentAt: number;
  predictedMs: number;
  prefillBasis: number;
  stepBasis: number;
  firstAt: number;
  /** Requests this router had queued on the pod when it was sent. */
  queuedAhead: number;
  decodingAtFirst: number;
  prefilledAtFirst: number;
}

export interface PodPrediction extends Prediction {
  address: string;
  cachedTokens: number;
  uncachedTokens: number;
  /** Price of the extra prefill over the best-cached pod (the second copy). */
  copyMs: number;
  /** Expected decode time of this request there and the delay it adds to the pod's decoding sequences (model.ts externality), weighted. */
  decodeCostMs: number;
  /** Predicted wait for KV room (model.ts kvWaitMs), before any backlog exists: the queue wait when longest; in costMs again x kvWaitWeight. */
  kvWaitMs: number;
  /** ttftMs + copyMs + decodeCostMs + kvWaitWeight x kvWaitMs: what the choice minimizes. */
  costMs: number;
  meetsSLO: boolean;
  kPrefill: number;
  kStep: number;
}

export interface PredictedLatencyDetail {
  tokens: number;
  chosen: string | null;
  endpoints: PodPrediction[];
}

/** Lifetime assumed before any request completed: a ~1,000-token answer at ~30 ms per token. */
const DEFAULT_LIFETIME_MS = 30_000;

/** Weight of one expired group in the mean follow-ups per group: about the last 20 groups. */
const FOLLOW_UPS_ALPHA = 0.05;

/** Weight of one gap in the admission-pace average: about the last 10 admissions. */
const ADMIT_GAP_ALPHA = 0.1;

const ERROR_BUCKETS = [-30, -10, -5, -2, -1, -0.5, -0.2, -0.1, -0.05, -0.02, -0.01, 0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30];

/** One set per registry: several scorer instances on one router share the series. */
const metricsByRegistry = new WeakMap<Registry, PredictionMetrics>();

class PredictionMetrics {
  readonly error: HistogramSeries;
  readonly decisions: Tally<'outcome'>;
  private readonly multipliers = new Map<string, { prefill: number; step: number }>();
  static for(registry: Registry): PredictionMetrics {
    let m = metricsByRegistry.get(registry);
    if (!m) metricsByRegistry.set(registry, (m = new PredictionMetrics(registry)));
    return m;
  }
  private constructor(registry: Registry) {
    this.error = new FastHistogram('kvrouter_predicted_ttft_error_seconds', 'Observed minus predicted TTFT of the chosen pod (predicted-latency-scorer), seconds', ERROR_BUCKETS, registry).unlabelled();
    this.decisions = new Tally(
      'kvrouter_predicted_latency_decisions_total',
      'predicted-latency decisions by outcome (cache: a best-cached pod; copy: a second copy of a prefix another pod holds; cold: no pod held it)',
      ['outcome'],
      registry,
    );
    const mults = this.multipliers;
    new Gauge({
      name: 'kvrouter_predicted_latency_cost_multiplier',
      help: 'Learned per-pod multiplier on the prior prefill and step costs (predicted-latency-scorer)',
      labelNames: ['endpoint', 'cost'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [endpoint, m] of mults) {
          this.set({ endpoint, cost: 'prefill' }, m.prefill);
          this.set({ endpoint, cost: 'step' }, m.step);
        }
      },
    });
  }
  /** Called per first token and completion: updates the pod's entry in place. */
  setMultipliers(address: string, prefill: number, step: number): void {
    const m = this.multipliers.get(address);
    if (m) {
      m.prefill = prefill;
      m.step = step;
    } else this.multipliers.set(address, { prefill, step });
  }
  forget(address: string): void {
    this.multipliers.delete(address);
  }
}

/** The pod's KV capacity in tokens (vLLM cache_config_info: num_gpu_blocks x block_size); 0: unknown. */
function kvCapacity(e: Endpoint): number {
  return (e.metrics.numGpuBlocks ?? 0) * (e.metrics.blockSize ?? 0);
}

/**
 * A prompt's prefix group: FNV-1a over the whole blocks of its first half. Prompts of one group
 * (a shared system prompt, one chat's history) share their first half; a question, a new turn
 * or a per-user document after a common system prompt then tells groups apart.
 */
export function groupId(tokens: Uint32Array | undefined, blockSize: number): number {
  let h = 0x811c9dc5;
  if (!tokens) return h;
  const n = Math.floor(tokens.length / 2 / blockSize) * blockSize;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ tokens[i], 0x01000193);
  return h >>> 0;
}

/**
 * groupId's partition from the request's block keys, without a pass over the tokens: the keys
 * are chained, so the key of the first half's last whole block identifies all of it.
 */
export function groupFromKeys(keys: BlockKeys, tokens: number, blockSize: number): number {
  const j = Math.floor(tokens / 2 / blockSize) - 1;
  if (j < 0 || j >= keys.length) return 0x811c9dc5;
  const k = keys[j];
  return (Number(k >> 32n) ^ Number(k & 0xffffffffn)) >>> 0;
}

// Per-decision helpers are module functions, not closures: no allocation per decision.

/** Median of `xs` (sorted in place); 1 when empty. */
function median(xs: Float64Array): number {
  if (xs.length === 0) return 1;
  xs.sort();
  const h = xs.length >> 1;
  return xs.length % 2 ? xs[h] : (xs[h - 1] + xs[h]) / 2;
}

/** Forget a group on a pod (its tokens leave the pod's committed work). */
function dropGroup(s: PodState, g: number): void {
  const e = s.groups.get(g);
  if (!e) return;
  s.groups.delete(g);
  s.groupTokens = s.groups.size > 0 ? s.groupTokens - e.tokens : 0;
}

/** A pod's queued prefill and decode batch, ms at its multipliers (the tie-break's "lighter"). */
function loadWeight(c: StepCosts, l: PodLoad): number {
  return l.queuedTokens * l.kPrefill * c.prefillMsPerToken + l.decoding * l.kStep * c.decodeMsPerSeq;
}

const OUTCOME_LABELS = { cold: () => ({ outcome: 'cold' }), cache: () => ({ outcome: 'cache' }), copy: () => ({ outcome: 'copy' }) } as const;

/** FNV-1a over the first tokens: a stable identity of the prompt's prefix for tie-breaks. */
function prefixId(tokens: Uint32Array | undefined, blockSize: number): number {
  let h = 0x811c9dc5;
  if (!tokens) return h;
  const n = Math.min(tokens.length, blockSize);
  for (let i = 0; i < n; i++) h = Math.imul(h ^ tokens[i], 0x01000193);
  return h >>> 0;
}

export class PredictedLatencyScorer implements Scorer, PreRequest, ResponseHooks {
  readonly needsTokens = true;
  readonly p: PredictedLatencyParams;
  readonly costs: StepCosts;
  readonly ttftSloMs: number | undefined;
  readonly itlSloMs: number | undefined;
  private readonly pods = new Map<string, PodState>();
  private readonly decisions = new WeakMap<InferenceRequest, Decision>();
  private readonly flights = new WeakMap<InferenceRequest, Flight>();
  /** Once a first-token hook has been seen, responseStart (response headers) is not a first token. */
  private firstTokenHooks = false;
  /** Mean uncached tokens per request, for waiting requests the router did not send. */
  private meanUncached = 0;
  /** Mean completion tokens of finished requests (0: none yet). */
  private meanOutput = 0;
  /** Mean ms from a request's send to its completion (how long a placement's group stays committed). */
  private meanLifetimeMs = DEFAULT_LIFETIME_MS;
  /** Mean requests that followed a group to its home, over groups that expired (1 before any did: groups are assumed to recur). */
  private followUps = 1;
  /** Mean ms between output tokens of finished requests (0: none yet). */
  private meanItlMs = 0;
  private prefix: KvIndexProvider | undefined;
  /** Medians of the pods' multipliers, recomputed after learning (NaN: stale). */
  private medianPrefill = NaN;
  private medianStep = NaN;
  /**
   * When the pool last changed: a pod joined after the first decision, left (forget), or failed
   * a request mid-stream (5xx after its first token: a restart aborts its in-flight requests). -Infinity: never.
   */
  private poolChangedAt = -Infinity;
  /** A decision has been made: pods first seen after it joined the pool. */
  private decided = false;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly metrics: PredictionMetrics;

  constructor(
    readonly type: string,
    readonly name: string,
    raw: unknown,
    private readonly ctx: PluginContext,
  ) {
    const p = parseParams(predictedLatencyParamsSchema, raw);
    this.p = p;
    this.costs = { prefillMsPerToken: p.prefillMsPerToken, stepOverheadMs: p.stepOverheadMs, decodeMsPerSeq: p.decodeMsPerSeq, maxNumBatchedTokens: p.maxNumBatchedTokens };
    this.ttftSloMs = p.ttftSLO === undefined ? undefined : parseDuration(p.ttftSLO, 'ttftSLO');
    this.itlSloMs = p.itlSLO === undefined ? undefined : parseDuration(p.itlSLO, 'itlSLO');
    this.clock = ctx.clock ?? realClock;
    this.log = ctx.logger.child({ plugin: name });
    this.metrics = PredictionMetrics.for(ctx.registry);
  }

  /** The precise scorer that owns the index (resolved lazily: plugins are built in config order). */
  private prefixScorer(): KvIndexProvider {
    if (this.prefix) return this.prefix;
    const found = this.ctx.getPlugin?.(this.p.prefixScorer) as Partial<KvIndexProvider> | undefined;
    if (!found || typeof found.match !== 'function') {
      throw new Error(`predicted-latency-scorer "${this.name}": prefixScorer "${this.p.prefixScorer}" is not a precise-prefix-cache-scorer in this config`);
    }
    return (this.prefix = found as KvIndexProvider);
  }

  start(): void {
    this.prefixScorer();
  }

  private pod(address: string): PodState {
    let s = this.pods.get(address);
    if (!s) {
      const lr = this.p.learningRate;
      s = { queuedTokens: 0, queuedCount: 0, decoding: 0, prefilled: 0, admitGapMs: 0, lastFirstAt: -1, firstSum: 0, decodeLifeMs: 0, groups: new Map(), groupTokens: 0, oldestAt: Infinity, kPrefill: new Multiplier(lr, 0.05, 20), kStep: new Multiplier(lr, 0.05, 20) };
      this.pods.set(address, s);
      if (this.decided) this.poolChangedAt = this.clock.now();
    }
    return s;
  }

  /** A pod's multiplier, or the pods' median when it is within `podDeviation` of it. */
  private effective(k: number, median: number): number {
    const dev = this.p.podDeviation;
    return k > median * dev || k < median / dev ? k : median;
  }

  private medians(): void {
    if (!Number.isNaN(this.medianPrefill) && !Number.isNaN(this.medianStep)) return;
    const pre = new Float64Array(this.pods.size);
    const st = new Float64Array(this.pods.size);
    let j = 0;
    for (const s of this.pods.values()) {
      pre[j] = s.kPrefill.value;
      st[j++] = s.kStep.value;
    }
    this.medianPrefill = median(pre);
    this.medianStep = median(st);
  }

  private load(e: Endpoint, s: PodState): PodLoad {
    const m = e.metrics;
    // Requests waiting on the pod that this router did not send (another replica's, or sent
    // before a restart) count at the mean size; the scrape may lag by one interval.
    const foreign = Math.max(0, m.waiting - s.queuedCount);
    return {
      queuedTokens: s.queuedTokens + foreign * this.meanUncached,
      decoding: Math.max(s.decoding, m.running),
      queuedCount: s.queuedCount + foreign,
      admitGapMs: s.admitGapMs,
      futureBatch: 0,
      kPrefill: this.effective(s.kPrefill.value, this.medianPrefill),
      kStep: this.effective(s.kStep.value, this.medianStep),
    };
  }

  /** Predictions for every endpoint and the index of the choice. */
  private async evaluate(req: InferenceRequest, endpoints: readonly Endpoint[]): Promise<{ d: Decision; costs: Float64Array; copy: Float64Array; decode: Float64Array; kvWait: Float64Array; meets: Uint8Array; cached: Float64Array; chosen: number; tokens: number; info: PrefixMatchInfo }> {
    const precise = this.prefixScorer();
    const { matches, totalBlocks, tokens: matchedTokens, keys } = await precise.match(req, endpoints);
    const tokens = matchedTokens || req.tokens?.length || req.estimatedTokens;
    const bs = precise.blockSize;
    const n = endpoints.length;
    // vLLM never serves the last prompt token from cache: at most floor((N - 1) / B) blocks hit.
    const maxCached = Math.max(0, Math.floor((tokens - 1) / bs) * bs);
    const cached = new Float64Array(n);
    const uncached = new Float64Array(n);
    const matched = new Map<string, number>();
    let minUncached = Infinity;
    for (let i = 0; i < n; i++) {
      const m = matches.get(endpoints[i].address);
      if (m) matched.set(endpoints[i].address, m.blocks);
      cached[i] = Math.min(maxCached, (m?.weighted ?? 0) * bs);
      uncached[i] = tokens - cached[i];
      if (uncached[i] < minUncached) minUncached = uncached[i];
    }
    const preds: Prediction[] = new Array<Prediction>(n);
    const prefillBasis = new Float64Array(n);
    const stepBasis = new Float64Array(n);
    const costs = new Float64Array(n);
    const copy = new Float64Array(n);
    const decode = new Float64Array(n);
    const meets = new Uint8Array(n);
    const outTokens = this.expectedOutput(req);
    let anyMeets = false;
    const c = this.costs;
    const states: PodState[] = new Array<PodState>(n);
    for (let i = 0; i < n; i++) states[i] = this.pod(endpoints[i].address);
    this.decided = true;
    this.medians();
    // Congestion: requests waiting per pod. A copy's extra prefill delays everyone queued behind
    // it, so under load it is charged once per waiting request too.
    let waiting = 0;
    for (let i = 0; i < n; i++) waiting += Math.max(states[i].queuedCount, endpoints[i].metrics.waiting);
    const congestion = 1 + waiting / n;
    // A prefix group keeps going where its prefix is cached, so a placement commits the group's
    // future requests to the pod: the batch a pod will decode is its share of the groups it
    // serves x the sequences a group keeps busy, not only what is running at this instant
    // (a Poisson count, noisy by its square root, that spreads new groups unevenly).
    const group = keys ? groupFromKeys(keys, req.tokens?.length ?? 0, bs) : groupId(req.tokens, bs);
    const now = this.clock.now();
    let seqs = 0;
    let groupsAll = 0;
    let groupTokensAll = 0;
    const committed = new Float64Array(n);
    const committedTokens = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const s = states[i];
      const own = this.committedGroups(s, now);
      const has = s.groups.has(group);
      committed[i] = own + (has ? 0 : 1);
      committedTokens[i] = s.groupTokens + (has ? 0 : tokens);
      groupsAll += own;
      groupTokensAll += s.groupTokens;
      seqs += s.decoding + s.queuedCount;
    }
    const seqsPerGroup = groupsAll > 0 ? seqs / groupsAll : 0;
    // The group has a home when some pod caches its part of the prompt (the first half, as groupId).
    let homed = false;
    for (let i = 0; i < n; i++) if (cached[i] > 0 && cached[i] >= Math.floor(tokens / 2 / bs) * bs) homed = true;
    const future = homed ? 0 : seqsPerGroup;
    // How often a group's prefix is needed again: follow-ups per group (below 1: most prefixes
    // are used once, as in the Mooncake traces), capped at 1.
    const reuse = Math.min(1, this.followUps);
    const loads: PodLoad[] = new Array<PodLoad>(n);
    const kvw = new Float64Array(n);
    // A prefill stalls each sequence decoding on the pod once, for its length: summed, that is
    // once per sequence (total latency), but it costs the pod only its own time once, and the
    // stalled sequences' TTFTs are long past. Per sequence, it is most of what a copy costs and
    // anchors a group to its home; in a stable pool that keeps the balanced homes (counted once
    // always, copies spread sched-knee's groups: p90 0.26 -> 35 s). Within a request lifetime
    // after the pool changed the homes reflect the old pool (a restarted pod lost its groups, a
    // joined one has none, the others carry their load), so it is counted once and groups can
    // move to the new capacity (docs/bench/scheduler.md).
    const stallOnce = now - this.poolChangedAt < this.meanLifetimeMs;
    for (let i = 0; i < n; i++) {
      const load = this.load(endpoints[i], states[i]);
      load.futureBatch = committed[i] * seqsPerGroup;
      kvw[i] = this.kvWait(endpoints[i], states[i], load, uncached[i], outTokens, now);
      loads[i] = load;
      const compute = predict(c, load, uncached[i]);
      const pr = withKvWait(compute, kvw[i]);
      preds[i] = pr;
      const work = load.queuedTokens + uncached[i];
      prefillBasis[i] = work * c.prefillMsPerToken;
      stepBasis[i] = (compute.ttftMs - work * load.kPrefill * c.prefillMsPerToken) / load.kStep;
      // A full cache evicts for every copied block; the fuller it is with its sequences' KV, the
      // more of what is left is other groups' reused prefixes. That fill is predicted (the KV its
      // decoding sequences will hold at the end of their outputs and its queued requests will
      // take), not only scraped (vLLM's kv_cache_usage): a pod that just joined or restarted
      // reads nearly empty while a burst of copies queues on it, and drew them all.
      const room = Math.max(0.05, 1 - this.kvFill(endpoints[i], states[i], load, outTokens, now));
      copy[i] = copyCostMs(c, load, uncached[i] - minUncached, (reuse * this.p.localityWeight * congestion) / room);
      if (this.p.decodeWeight > 0) {
        const ext = externality(c, load, uncached[i], outTokens, stallOnce);
        // A prefix no pod holds gets its first home here: its group's next requests follow it,
        // about seqsPerGroup of them within a request lifetime (Little's law), each paying that
        // pod's decode batch. (A warm prefix keeps its home; a copy only adds a second one.)
        decode[i] = this.p.decodeWeight * (ext.prefillDelayMs + (ext.decodeMs + ext.decodeDelayMs) * (1 + future));
      }
      costs[i] = pr.ttftMs + copy[i] + decode[i] + this.p.kvWaitWeight * kvw[i];
      const ok = (this.ttftSloMs === undefined || pr.ttftMs <= this.ttftSloMs) && (this.itlSloMs === undefined || pr.itlMs <= this.itlSloMs);
      meets[i] = ok ? 1 : 0;
      if (ok) anyMeets = true;
    }
    // The choice: lowest cost among the pods predicted to meet the SLOs (all, when none does).
    const eligible = new Uint8Array(n);
    for (let i = 0; i < n; i++) eligible[i] = !anyMeets || meets[i] ? 1 : 0;
    if (!homed && this.p.balanceGroups && this.followUps >= 1) {
      // A new group's home. Its next requests follow it, so the home decides where the group's
      // load goes for as long as it lives: only the pods that would then carry the least prompt
      // work (within `groupSlack` mean groups) are eligible; the cost decides among them, and it already
      // charges a slower pod its slower prefill and decode. The cost alone let this instant's
      // queues and batches decide (llm-d-73's 150 groups ended 17-20 per pod, and the pods with
      // 20 saturated first past the knee). Counts were once weighted by the pods' learned step
      // multipliers: that priced speed twice (on sched-hetero the fast pods passed their knee
      // first: TTFT p90 6.7 s, 0.52 s with plain counts) and, on identical pods, turned the
      // slack of one group into 1 / multiplier of one (docs/bench/scheduler.md). Groups weigh their
      // prompt tokens: on the Mooncake traces (prompts of 100 to 191,000 tokens) a pod that had
      // just taken one huge prompt counted as lightly committed and drew the next ones.
      // Where groups do not recur (followUps < 1), a home commits nothing to balance and the
      // filter only made requests queue (Mooncake synthetic, seed 42: TTFT p90 9.4 s with the
      // filter by counts, 5.7 s by prompt tokens, 4.6 s with this rule too).
      // A home commits KV for the group's life: while some eligible pod is predicted to have room
      // for it (no KV wait), pods predicted to wait for KV are not homes (a restarted or joining
      // pod takes new and re-homed groups first, not the saturated ones).
      let roomy = false;
      for (let i = 0; i < n; i++) if (eligible[i] && kvw[i] === 0) roomy = true;
      if (roomy) for (let i = 0; i < n; i++) if (kvw[i] > 0) eligible[i] = 0;
      let fewest = Infinity;
      for (let i = 0; i < n; i++) if (eligible[i] && committedTokens[i] < fewest) fewest = committedTokens[i];
      const slack = this.p.groupSlack * (groupsAll > 0 ? groupTokensAll / groupsAll : tokens);
      for (let i = 0; i < n; i++) if (committedTokens[i] > fewest + slack) eligible[i] = 0;
    }
    let best = -1;
    for (let i = 0; i < n; i++) if (eligible[i] && (best < 0 || costs[i] < costs[best])) best = i;
    let chosen = best;
    if (best >= 0 && n > 1) {
      // Near-ties: the most cached prompt, then the lightest pod (queued prefill and decode
      // batch), then the pod a rendezvous hash of the prompt's first tokens prefers.
      const limit = costs[best] + this.p.tieMs;
      // The hashes (-1: not computed) only decide exact ties of cache and load, so they are
      // computed then: most decisions have none.
      let id = -1;
      let bestHash = -1;
      for (let i = 0; i < n; i++) {
        if (i === chosen || !eligible[i] || costs[i] > limit) continue;
        const dc = cached[i] - cached[chosen];
        const dw = loadWeight(c, loads[i]) - loadWeight(c, loads[chosen]);
        let h = -1;
        if (dc === 0 && dw === 0) {
          if (id < 0) id = prefixId(req.tokens, bs);
          if (bestHash < 0) bestHash = rendezvous(id, endpoints[chosen].address);
          h = rendezvous(id, endpoints[i].address);
        }
        if (dc > 0 || (dc === 0 && (dw < 0 || (dw === 0 && h > bestHash)))) {
          chosen = i;
          bestHash = h;
        }
      }
    }
    return { d: { endpoints, group, tokens, homed, preds, uncached, prefillBasis, stepBasis }, costs, copy, decode, kvWait: kvw, meets, cached, chosen, tokens, info: { matched, totalBlocks } };
  }

  async score(state: CycleState, req: InferenceRequest, endpoints: Endpoint[]): Promise<Float64Array> {
    const n = endpoints.length;
    if (n === 0) return new Float64Array(0);
    const ev = await this.evaluate(req, endpoints);
    state.set(PREFIX_MATCH_STATE, ev.info);
    this.decisions.set(req, ev.d);
    const { costs, chosen, meets } = ev;
    const anyMeets = meets.includes(1);
    // A Float64Array: the scheduler reads it as is (an array it copies first).
    const out = new Float64Array(n);
    const bestCost = chosen >= 0 ? costs[chosen] : 0;
    for (let i = 0; i < n; i++) {
      if (i === chosen) out[i] = 1;
      else {
        // Fallbacks in order of cost, pods that miss the SLO below those that meet it.
        const s = (bestCost + 1) / (costs[i] + 1);
        out[i] = 0.99 * Math.min(1, s) * (anyMeets && !meets[i] ? 0.5 : 1);
      }
    }
    let maxCached = 0;
    for (let i = 0; i < n; i++) if (ev.cached[i] > maxCached) maxCached = ev.cached[i];
    const outcome = maxCached === 0 ? 'cold' : ev.cached[chosen] >= maxCached ? 'cache' : 'copy';
    this.metrics.decisions.add(outcome, OUTCOME_LABELS[outcome]);
    if (this.log.isLevelEnabled('debug')) {
      const detail = this.describe(ev, endpoints);
      this.log.debug(
        {
          'x-request-id': req.requestId,
          model: req.model,
          resolvedTargetModel: req.targetModel,
          scores: Object.fromEntries(detail.map((d) => [d.address, Math.round(d.ttftMs * 1000) / 1000])),
          predictions: Object.fromEntries(detail.map(({ address, ...rest }) => [address, rest])),
          chosen: chosen >= 0 ? endpoints[chosen].address : null,
          totalBlocks: ev.info.totalBlocks,
        },
        'Got pod scores',
      );
    }
    return out;
  }

  private describe(ev: Awaited<ReturnType<PredictedLatencyScorer['evaluate']>>, endpoints: readonly Endpoint[]): PodPrediction[] {
    const r = (x: number) => Math.round(x * 1000) / 1000;
    return endpoints.map((e, i) => {
      const pr = ev.d.preds[i];
      const s = this.pod(e.address);
      return {
        address: e.address,
        ttftMs: r(pr.ttftMs),
        queueMs: r(pr.queueMs),
        admissionMs: r(pr.admissionMs),
        kvWaitMs: r(ev.kvWait[i]),
        prefillMs: r(pr.prefillMs),
        decodeSlowdownMs: r(pr.decodeSlowdownMs),
        itlMs: r(pr.itlMs),
        cachedTokens: ev.cached[i],
        uncachedTokens: ev.d.uncached[i],
        copyMs: r(ev.copy[i]),
        decodeCostMs: r(ev.decode[i]),
        costMs: r(ev.costs[i]),
        meetsSLO: ev.meets[i] === 1,
        kPrefill: r(s.kPrefill.value),
        kStep: r(s.kStep.value),
      };
    });
  }

  /**
   * Predicted wait for KV room (model.ts kvWaitMs): the pod's KV in use now (scraped), the
   * growth its decoding sequences still have ahead (expected output minus what they produced
   * since their first token, at the observed ITL), the requests queued there and this one, each
   * with its uncached prompt and expected output, against its KV capacity (cache_config_info).
   */
  private kvWait(e: Endpoint, s: PodState, load: PodLoad, uncached: number, outTokens: number, now: number): number {
    const cap = kvCapacity(e);
    if (!(cap > 0)) return 0;
    const demand = this.kvDemand(e, s, load, outTokens, now) + outTokens + uncached;
    return kvWaitMs(demand, cap, s.decodeLifeMs > 0 ? s.decodeLifeMs : this.meanLifetimeMs);
  }

  /** Tokens of KV the pod's sequences will hold: in use now, its decoding sequences' remaining outputs, its queued requests. */
  private kvDemand(e: Endpoint, s: PodState, load: PodLoad, outTokens: number, now: number): number {
    const produced = this.meanItlMs > 0 ? (s.decoding * now - s.firstSum) / this.meanItlMs : (s.decoding * outTokens) / 2;
    const growth = Math.max(0, s.decoding * outTokens - produced);
    return e.metrics.kvUsage * kvCapacity(e) + growth + load.queuedTokens + load.queuedCount * outTokens;
  }

  /** Predicted fraction of the pod's KV its sequences will hold (kvDemand), or the scraped usage when its capacity is unknown. */
  private kvFill(e: Endpoint, s: PodState, load: PodLoad, outTokens: number, now: number): number {
    const cap = kvCapacity(e);
    if (!(cap > 0)) return e.metrics.kvUsage;
    return Math.min(1, this.kvDemand(e, s, load, outTokens, now) / cap);
  }

  /** Groups routed to the pod within the last request lifetime (older ones pruned; their follow-ups feed `followUps`). */
  private committedGroups(s: PodState, now: number): number {
    const horizon = now - this.meanLifetimeMs;
    if (s.oldestAt >= horizon) return s.groups.size;
    s.oldestAt = Infinity;
    for (const [g, e] of s.groups) {
      if (e.at >= horizon) {
        s.oldestAt = e.at;
        break;
      }
      dropGroup(s, g);
      this.followUps += FOLLOW_UPS_ALPHA * (e.hits - this.followUps);
    }
    return s.groups.size;
  }

  /** Output tokens this request is expected to generate: the observed mean, at most its max_tokens. */
  private expectedOutput(req: InferenceRequest): number {
    const b = req.body;
    const cap = typeof b?.max_completion_tokens === 'number' ? b.max_completion_tokens : typeof b?.max_tokens === 'number' ? b.max_tokens : Infinity;
    const mean = this.meanOutput > 0 ? this.meanOutput : this.p.defaultOutputTokens;
    return Math.max(1, Math.min(mean, cap));
  }

  /** The scoring API's view (no side effects on the decision state). */
  async detail(req: InferenceRequest, endpoints: readonly Endpoint[]): Promise<PredictedLatencyDetail> {
    const ev = await this.evaluate(req, endpoints);
    return { tokens: ev.tokens, chosen: ev.chosen >= 0 ? endpoints[ev.chosen].address : null, endpoints: this.describe(ev, endpoints) };
  }

  preRequest(req: InferenceRequest, result: SchedulingResult): void {
    const d = this.decisions.get(req);
    const target = result.targets[0];
    if (!d || !target) return;
    this.decisions.delete(req);
    let i = 0;
    while (i < d.endpoints.length && d.endpoints[i].address !== target.address) i++;
    if (i === d.endpoints.length) return;
    const pod = this.pod(target.address);
    const prev = this.flights.get(req);
    if (prev) this.settle(prev);
    const tokens = d.uncached[i];
    const queuedAhead = pod.queuedCount;
    // A group no pod caches has one home, the one it gets now: other pods stop counting it.
    if (!d.homed) for (const s of this.pods.values()) if (s !== pod) dropGroup(s, d.group);
    const hits = (pod.groups.get(d.group)?.hits ?? 0) + (d.homed ? 1 : 0);
    dropGroup(pod, d.group);
    const at = this.clock.now();
    pod.groups.set(d.group, { at, tokens: d.tokens, hits });
    pod.groupTokens += d.tokens;
    if (at < pod.oldestAt) pod.oldestAt = at;
    pod.queuedTokens += tokens;
    pod.queuedCount++;
    this.meanUncached = this.meanUncached === 0 ? tokens : this.meanUncached + 0.02 * (tokens - this.meanUncached);
    this.flights.set(req, {
      pod,
      address: target.address,
      tokens,
      sentAt: at,
      predictedMs: d.preds[i].ttftMs,
      prefillBasis: d.prefillBasis[i],
      stepBasis: d.stepBasis[i],
      firstAt: -1,
      queuedAhead,
      decodingAtFirst: 0,
      prefilledAtFirst: 0,
    });
  }

  /** The request's first token left `endpoint`: its prefill is done. */
  responseFirstToken(req: InferenceRequest, endpoint: Endpoint): void {
    this.firstTokenHooks = true;
    this.firstToken(req, endpoint);
  }

  /** Response headers; a first token only where no first-token hook is wired (llm-d: StartOfStream). */
  responseStart(req: InferenceRequest, endpoint: Endpoint): void {
    if (!this.firstTokenHooks) this.firstToken(req, endpoint);
  }

  private firstToken(req: InferenceRequest, endpoint: Endpoint): void {
    const f = this.flights.get(req);
    if (!f || f.firstAt >= 0) return;
    const now = this.clock.now();
    f.firstAt = now;
    const pod = f.pod;
    // The admission pace, measured only while a backlog waits (others still queued behind and

    // (this request already waited when the previous one started: the pod was never idle between).
    if (pod.lastFirstAt >= f.sentAt && pod.queuedCount >= 2) {
      const gap = now - pod.lastFirstAt;
      pod.admitGapMs = pod.admitGapMs === 0 ? gap : pod.admitGapMs + ADMIT_GAP_ALPHA * (gap - pod.admitGapMs);
    }
    pod.lastFirstAt = now;
    pod.queuedTokens = Math.max(0, pod.queuedTokens - f.tokens);
    pod.queuedCount = Math.max(0, pod.queuedCount - 1);
    pod.decoding++;
    pod.firstSum += now;
    pod.prefilled += f.tokens;
    f.prefilledAtFirst = pod.prefilled;
    f.decodingAtFirst = Math.max(pod.decoding, endpoint.metrics.running);
    const observed = now - f.sentAt;
    this.metrics.error.observe((observed - f.predictedMs) / 1000);
    if (!this.p.learn) return;
    // What the step multiplier does not explain is prefill compute; learn its multiplier when
    // prefill is a real part of the prediction (a cache hit's TTFT is mostly one step).
    const stepPart = pod.kStep.value * f.stepBasis;
    // Only from requests that found no queue there: behind others, how chunked prefill batches
    // them and when the KV admits them is noise in a per-pod estimate (one pod learned 0.5x
    // in a homogeneous pool, looked fast and drew groups it could not serve).
    if (f.queuedAhead === 0 && f.prefillBasis > 0.25 * f.predictedMs && f.prefillBasis > 1) {
      pod.kPrefill.observe((observed - stepPart) / f.prefillBasis);
      this.medianPrefill = NaN;
    }
    this.metrics.setMultipliers(f.address, pod.kPrefill.value, pod.kStep.value);
  }

  responseComplete(req: InferenceRequest, endpoint: Endpoint, info: ResponseInfo): void {
    const f = this.flights.get(req);
    if (!f) return;
    this.flights.delete(req);
    const now = this.clock.now();
    const first = f.firstAt >= 0;
    this.settle(f);
    const n = info.completionTokens ?? 0;
    // The pod failed a request that was already decoding: its engine stopped (a restart aborts
    // its in-flight requests and comes back with an empty cache; nothing else tells the router).
    // A 5xx before the first token can be about the request alone, so it is not taken as one.
    if (info.status >= 500 && first) this.poolChangedAt = now;
    if (info.status === 200) {
      const life = now - f.sentAt;
      this.meanLifetimeMs = this.meanLifetimeMs + 0.02 * (life - this.meanLifetimeMs);
    }
    if (info.status === 200 && first) {
      const life = now - f.firstAt;
      f.pod.decodeLifeMs = f.pod.decodeLifeMs === 0 ? life : f.pod.decodeLifeMs + 0.05 * (life - f.pod.decodeLifeMs);
      if (n > 1) {
        const itl = life / (n - 1);
        this.meanItlMs = this.meanItlMs === 0 ? itl : this.meanItlMs + 0.02 * (itl - this.meanItlMs);
      }
    }
    if (info.status === 200 && n > 0) this.meanOutput = this.meanOutput === 0 ? n : this.meanOutput + 0.02 * (n - this.meanOutput);
    if (!first || !this.p.learn || n < 3 || info.status !== 200) return;
    // The decode time is its steps at the mean batch, plus the prefill chunks of the requests
    // that reached their first token on the pod meanwhile (interleaved into the same steps).
    const elapsed = now - f.firstAt;
    const interleaved = (f.pod.prefilled - f.prefilledAtFirst) * f.pod.kPrefill.value * this.costs.prefillMsPerToken;
    const batch = (f.decodingAtFirst + Math.max(f.pod.decoding + 1, endpoint.metrics.running)) / 2;
    const basis = (n - 1) * (this.costs.stepOverheadMs + batch * this.costs.decodeMsPerSeq);
    if (elapsed > interleaved) {
      f.pod.kStep.observe((elapsed - interleaved) / basis);
      this.medianStep = NaN;
    }
    this.metrics.setMultipliers(f.address, f.pod.kPrefill.value, f.pod.kStep.value);
  }

  /** Remove a flight's contribution to its pod's queue or decode batch. */
  private settle(f: Flight): void {
    if (f.firstAt < 0) {
      f.pod.queuedTokens = Math.max(0, f.pod.queuedTokens - f.tokens);
      f.pod.queuedCount = Math.max(0, f.pod.queuedCount - 1);
    } else if (f.pod.decoding > 0) {
      f.pod.decoding--;
      f.pod.firstSum = f.pod.decoding > 0 ? f.pod.firstSum - f.firstAt : 0;
    }
  }

  /** An endpoint left the pool. */
  forget(address: string): void {
    this.pods.delete(address);
    this.poolChangedAt = this.clock.now();
    this.metrics.forget(address);
  }

  /** Router-side state of a pod (tests, diagnostics). */
  podState(address: string): Readonly<{ queuedTokens: number; queuedCount: number; decoding: number; kPrefill: number; kStep: number }> {
    const s = this.pod(address);
    return { queuedTokens: s.queuedTokens, queuedCount: s.queuedCount, decoding: s.decoding, kPrefill: s.kPrefill.value, kStep: s.kStep.value };
  }
}
