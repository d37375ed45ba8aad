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
// delays them all). Near-ties (`tieMs`) go to the pod with more of the prompt cached, then the
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
import { Multiplier, copyCostMs, predict, rendezvous, type PodLoad, type Prediction, type StepCosts } from './model.js';

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
    /** Costs within this many ms of the best count as ties. */
    tieMs: z.number().nonnegative().default(5),
    /**
     * A pod's own learned multiplier is used only when it differs from the pods' median by more
     * than this factor: identical pods then predict alike (noise in one pod's samples must not
     * move its groups), while a really slower pod (2x) stands out.
     */
    podDeviation: z.number().min(1).default(1.25),
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
  kPrefill: Multiplier;
  kStep: Multiplier;
}

/** One request's decision, kept until its PreRequest hook (the chosen pod is known then). */
interface Decision {
  endpoints: readonly Endpoint[];
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
  decodingAtFirst: number;
  prefilledAtFirst: number;
}

export interface PodPrediction extends Prediction {
  address: string;
  cachedTokens: number;
  uncachedTokens: number;
  /** Price of the extra prefill over the best-cached pod (the second copy). */
  copyMs: number;
  /** ttftMs + copyMs: what the choice minimizes. */
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
  setMultipliers(address: string, prefill: number, step: number): void {
    this.multipliers.set(address, { prefill, step });
  }
  forget(address: string): void {
    this.multipliers.delete(address);
  }
}

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
  private prefix: KvIndexProvider | undefined;
  /** Medians of the pods' multipliers, recomputed after learning (NaN: stale). */
  private medianPrefill = NaN;
  private medianStep = NaN;
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
      s = { queuedTokens: 0, queuedCount: 0, decoding: 0, prefilled: 0, kPrefill: new Multiplier(lr, 0.05, 20), kStep: new Multiplier(lr, 0.05, 20) };
      this.pods.set(address, s);
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
    const pre: number[] = [];
    const st: number[] = [];
    for (const s of this.pods.values()) {
      pre.push(s.kPrefill.value);
      st.push(s.kStep.value);
    }
    const med = (xs: number[]) => {
      if (xs.length === 0) return 1;
      xs.sort((a, b) => a - b);
      const h = xs.length >> 1;
      return xs.length % 2 ? xs[h] : (xs[h - 1] + xs[h]) / 2;
    };
    this.medianPrefill = med(pre);
    this.medianStep = med(st);
  }

  private load(e: Endpoint, s: PodState): PodLoad {
    const m = e.metrics;
    // Requests waiting on the pod that this router did not send (another replica's, or sent
    // before a restart) count at the mean size; the scrape may lag by one interval.
    const foreign = Math.max(0, m.waiting - s.queuedCount);
    return {
      queuedTokens: s.queuedTokens + foreign * this.meanUncached,
      decoding: Math.max(s.decoding, m.running),
      kPrefill: this.effective(s.kPrefill.value, this.medianPrefill),
      kStep: this.effective(s.kStep.value, this.medianStep),
    };
  }

  /** Predictions for every endpoint and the index of the choice. */
  private async evaluate(req: InferenceRequest, endpoints: readonly Endpoint[]): Promise<{ d: Decision; costs: Float64Array; copy: Float64Array; meets: Uint8Array; cached: Float64Array; chosen: number; tokens: number; info: PrefixMatchInfo }> {
    const precise = this.prefixScorer();
    const { matches, totalBlocks, tokens: matchedTokens } = await precise.match(req, endpoints);
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
    const meets = new Uint8Array(n);
    let anyMeets = false;
    const c = this.costs;
    for (let i = 0; i < n; i++) this.pod(endpoints[i].address);
    this.medians();
    // Congestion: requests waiting per pod. A copy's extra prefill delays everyone queued behind
    // it, so under load it is charged once per waiting request too.
    let waiting = 0;
    for (let i = 0; i < n; i++) waiting += Math.max(this.pod(endpoints[i].address).queuedCount, endpoints[i].metrics.waiting);
    const congestion = 1 + waiting / n;
    const loads: PodLoad[] = new Array<PodLoad>(n);
    for (let i = 0; i < n; i++) {
      const load = this.load(endpoints[i], this.pod(endpoints[i].address));
      loads[i] = load;
      const pr = predict(c, load, uncached[i]);
      preds[i] = pr;
      const work = load.queuedTokens + uncached[i];
      prefillBasis[i] = work * c.prefillMsPerToken;
      stepBasis[i] = (pr.ttftMs - work * load.kPrefill * c.prefillMsPerToken) / load.kStep;
      // A full cache evicts for every copied block; the fuller it is with running requests' KV
      // (vLLM's kv_cache_usage), the more of what is left is other groups' reused prefixes.
      const room = Math.max(0.05, 1 - endpoints[i].metrics.kvUsage);
      copy[i] = copyCostMs(c, load, uncached[i] - minUncached, (this.p.localityWeight * congestion) / room);
      costs[i] = pr.ttftMs + copy[i];
      const ok = (this.ttftSloMs === undefined || pr.ttftMs <= this.ttftSloMs) && (this.itlSloMs === undefined || pr.itlMs <= this.itlSloMs);
      meets[i] = ok ? 1 : 0;
      if (ok) anyMeets = true;
    }
    // The choice: lowest cost among the pods predicted to meet the SLOs (all, when none does).
    let best = -1;
    for (let i = 0; i < n; i++) if ((!anyMeets || meets[i]) && (best < 0 || costs[i] < costs[best])) best = i;
    let chosen = best;
    if (best >= 0 && n > 1) {
      // Near-ties: the most cached prompt, then the lightest pod (queued prefill and decode
      // batch), then the pod a rendezvous hash of the prompt's first tokens prefers.
      const limit = costs[best] + this.p.tieMs;
      const id = prefixId(req.tokens, bs);
      const weight = (l: PodLoad) => l.queuedTokens * l.kPrefill * c.prefillMsPerToken + l.decoding * l.kStep * c.decodeMsPerSeq;
      let bestHash = rendezvous(id, endpoints[best].address);
      for (let i = 0; i < n; i++) {
        if (i === chosen || (anyMeets && !meets[i]) || costs[i] > limit) continue;
        const dc = cached[i] - cached[chosen];
        const dw = weight(loads[i]) - weight(loads[chosen]);
        const h = rendezvous(id, endpoints[i].address);
        if (dc > 0 || (dc === 0 && (dw < 0 || (dw === 0 && h > bestHash)))) {
          chosen = i;
          bestHash = h;
        }
      }
    }
    return { d: { endpoints, preds, uncached, prefillBasis, stepBasis }, costs, copy, meets, cached, chosen, tokens, info: { matched, totalBlocks } };
  }

  async score(state: CycleState, req: InferenceRequest, endpoints: Endpoint[]): Promise<number[]> {
    const n = endpoints.length;
    if (n === 0) return [];
    const ev = await this.evaluate(req, endpoints);
    state.set(PREFIX_MATCH_STATE, ev.info);
    this.decisions.set(req, ev.d);
    const { costs, chosen, meets } = ev;
    const anyMeets = meets.some((m) => m === 1);
    const out = new Array<number>(n);
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
    this.metrics.decisions.add(outcome, () => ({ outcome }));
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
        prefillMs: r(pr.prefillMs),
        decodeSlowdownMs: r(pr.decodeSlowdownMs),
        itlMs: r(pr.itlMs),
        cachedTokens: ev.cached[i],
        uncachedTokens: ev.d.uncached[i],
        copyMs: r(ev.copy[i]),
        costMs: r(ev.costs[i]),
        meetsSLO: ev.meets[i] === 1,
        kPrefill: r(s.kPrefill.value),
        kStep: r(s.kStep.value),
      };
    });
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
    const i = d.endpoints.findIndex((e) => e.address === target.address);
    if (i < 0) return;
    const pod = this.pod(target.address);
    const prev = this.flights.get(req);
    if (prev) this.settle(prev);
    const tokens = d.uncached[i];
    pod.queuedTokens += tokens;
    pod.queuedCount++;
    this.meanUncached = this.meanUncached === 0 ? tokens : this.meanUncached + 0.02 * (tokens - this.meanUncached);
    this.flights.set(req, {
      pod,
      address: target.address,
      tokens,
      sentAt: this.clock.now(),
      predictedMs: d.preds[i].ttftMs,
      prefillBasis: d.prefillBasis[i],
      stepBasis: d.stepBasis[i],
      firstAt: -1,
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
    pod.queuedTokens = Math.max(0, pod.queuedTokens - f.tokens);
    pod.queuedCount = Math.max(0, pod.queuedCount - 1);
    pod.decoding++;
    pod.prefilled += f.tokens;
    f.prefilledAtFirst = pod.prefilled;
    f.decodingAtFirst = Math.max(pod.decoding, endpoint.metrics.running);
    const observed = now - f.sentAt;
    this.metrics.error.observe((observed - f.predictedMs) / 1000);
    if (!this.p.learn) return;
    // What the step multiplier does not explain is prefill compute; learn its multiplier when
    // prefill is a real part of the prediction (a cache hit's TTFT is mostly one step).
    const stepPart = pod.kStep.value * f.stepBasis;
    if (f.prefillBasis > 0.25 * f.predictedMs && f.prefillBasis > 1) {
      pod.kPrefill.observe((observed - stepPart) / f.prefillBasis);
      this.medianPrefill = NaN;
    }
    this.metrics.setMultipliers(f.address, pod.kPrefill.value, pod.kStep.value);
  }

  responseComplete(req: InferenceRequest, endpoint: Endpoint, info: ResponseInfo): void {
    const f = this.flights.get(req);
    if (!f) return;
    this.flights.delete(req);
    const first = f.firstAt >= 0;
    this.settle(f);
    const n = info.completionTokens ?? 0;
    if (!first || !this.p.learn || n < 3 || info.status !== 200) return;
    // The decode time is its steps at the mean batch, plus the prefill chunks of the requests
    // that reached their first token on the pod meanwhile (interleaved into the same steps).
    const elapsed = this.clock.now() - f.firstAt;
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
    } else f.pod.decoding = Math.max(0, f.pod.decoding - 1);
  }

  /** An endpoint left the pool. */
  forget(address: string): void {
    this.pods.delete(address);
    this.metrics.forget(address);
  }

  /** Router-side state of a pod (tests, diagnostics). */
  podState(address: string): Readonly<{ queuedTokens: number; queuedCount: number; decoding: number; kPrefill: number; kStep: number }> {
    const s = this.pod(address);
    return { queuedTokens: s.queuedTokens, queuedCount: s.queuedCount, decoding: s.decoding, kPrefill: s.kPrefill.value, kStep: s.kStep.value };
  }
}
