// `sglang-cache-aware`: the SGLang router's (sgl-model-gateway / SMG) `cache_aware` policy,
// re-implemented from its published algorithm for side-by-side benchmarks
// (shared/reference/peers-and-benchmarks.md §3). NOT SGLang code.
//
//   1. Imbalanced if (max_load - min_load > balance_abs_threshold AND
//      max_load > balance_rel_threshold * min_load) over this router's in-flight requests, or the
//      KV-usage spread exceeds balance_token_usage_threshold, or the hottest endpoint's usage
//      exceeds overload_token_usage_threshold -> shortest queue (still learned into the tree).
//   2. Otherwise match the request in the approximate radix tree: match_rate = matched/len;
//      match_rate > cache_threshold -> the best-matching endpoint, else the least loaded one.
//   3. The chosen endpoint is inserted into the tree; LRU leaves are evicted every
//      eviction_interval down to max_tree_size per endpoint.
//
// Defaults are SGLang's CLI defaults. The tree is over token ids when the router can tokenize
// (SGLang's gRPC mode) and over characters otherwise (its HTTP mode).
//
// It is a scorer that gives 1 to the endpoint the policy picks and 0 to the rest; use it alone
// with max-score-picker. Learning happens in preRequest for the endpoint actually chosen.
import { z } from 'zod';
import { parseParams } from '../../scheduler/plugins/params.js';
import { requestText } from '../../scheduler/plugins/approx-prefix.js';
import type { CycleState, Endpoint, InferenceRequest, PreRequest, Scorer, SchedulingResult } from '../../scheduler/types.js';
import { TenantRadixTree, charSeq, type Seq } from './radix-tree.js';
import { realClock, type Clock, type ClockTimer } from '../../util/clock.js';

export const sglangParamsSchema = z
  .object({
    cacheThreshold: z.number().min(0).max(1).default(0.3),
    balanceAbsThreshold: z.number().nonnegative().default(64),
    balanceRelThreshold: z.number().nonnegative().default(1.5),
    balanceTokenUsageThreshold: z.number().nonnegative().default(1.0),
    overloadTokenUsageThreshold: z.number().nonnegative().default(1.0),
    evictionIntervalSecs: z.number().positive().default(120),
    maxTreeSize: z.number().int().positive().default(67_108_864),
    /** "tokens" (gRPC-mode behaviour; falls back to characters without a tokenizer) or "chars". */
    matchOn: z.enum(['tokens', 'chars']).default('tokens'),
  })
  .strict();
export type SglangParams = z.infer<typeof sglangParamsSchema>;

export type SglangDecision = { endpoint: Endpoint; reason: 'imbalanced' | 'cache-hit' | 'min-load'; matchRate: number };

/** The policy itself, independent of the plugin plumbing (unit-testable). */
export class SglangCacheAwarePolicy {
  readonly trees = new Map<string, TenantRadixTree>();
  constructor(readonly p: SglangParams) {}

  tree(model: string): TenantRadixTree {
    let t = this.trees.get(model);
    if (!t) this.trees.set(model, (t = new TenantRadixTree()));
    return t;
  }

  decide(model: string, seq: Seq, endpoints: Endpoint[], now = Date.now()): SglangDecision {
    if (endpoints.length === 0) throw new Error('no endpoints');
    const load = (e: Endpoint) => e.inflightRequests;
    let minE = endpoints[0];
    let maxLoad = -Infinity;
    let minUsage = Infinity;
    let maxUsage = -Infinity;
    for (const e of endpoints) {
      if (load(e) < load(minE)) minE = e;
      maxLoad = Math.max(maxLoad, load(e));
      minUsage = Math.min(minUsage, e.metrics.kvUsage);
      maxUsage = Math.max(maxUsage, e.metrics.kvUsage);
    }
    const minLoad = load(minE);
    const imbalanced =
      (maxLoad - minLoad > this.p.balanceAbsThreshold && maxLoad > this.p.balanceRelThreshold * minLoad) ||
      (this.p.balanceTokenUsageThreshold < 1 && maxUsage - minUsage > this.p.balanceTokenUsageThreshold) ||
      (this.p.overloadTokenUsageThreshold < 1 && maxUsage > this.p.overloadTokenUsageThreshold);
    if (imbalanced) return { endpoint: minE, reason: 'imbalanced', matchRate: 0 };

    const allowed = new Set(endpoints.map((e) => e.address));
    const m = this.tree(model).match(seq, allowed, now);
    const matchRate = seq.length ? m.matched / seq.length : 0;
    if (m.tenant !== undefined && matchRate > this.p.cacheThreshold) {
      // Several endpoints may hold the same longest match: the least loaded of them.
      let best: Endpoint | undefined;
      for (const e of endpoints) {
        if (m.perTenant.get(e.address) !== m.matched) continue;
        if (!best || load(e) < load(best)) best = e;
      }
      return { endpoint: best!, reason: 'cache-hit', matchRate };
    }
    return { endpoint: minE, reason: 'min-load', matchRate };
  }

  learn(model: string, seq: Seq, endpoint: string, now = Date.now()): void {
    this.tree(model).insert(seq, endpoint, now);
  }

  evict(): void {
    for (const t of this.trees.values()) t.evict(this.p.maxTreeSize);
  }
}

export class SglangCacheAwareScorer implements Scorer, PreRequest {
  readonly policy: SglangCacheAwarePolicy;
  private readonly pending = new WeakMap<InferenceRequest, Seq>();
  private timer: ClockTimer | null = null;

  constructor(
    readonly type: string,
    readonly name: string,
    params: unknown,
    /** Timestamps of tree nodes (LRU) and the eviction interval (the virtual bench's clock). */
    private readonly clock: Clock = realClock,
  ) {
    this.policy = new SglangCacheAwarePolicy(parseParams(sglangParamsSchema, params));
  }

  start(): void {
    this.timer = this.clock.setInterval(() => this.policy.evict(), this.policy.p.evictionIntervalSecs * 1000);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) this.clock.clearInterval(this.timer);
    this.timer = null;
  }

  /** Node timestamps: wall ms since the epoch as before on the real clock, else the clock's ms. */
  private clockMs(): number {
    return this.clock === realClock ? Date.now() : this.clock.now();
  }

  private async sequence(req: InferenceRequest): Promise<Seq> {
    if (this.policy.p.matchOn === 'tokens') {
      const t = await req.getTokens();
      if (t) return t;
    }
    return charSeq(requestText(req));
  }

  async score(_state: CycleState, req: InferenceRequest, endpoints: Endpoint[]): Promise<number[]> {
    if (endpoints.length === 0) return [];
    const seq = await this.sequence(req);
    this.pending.set(req, seq);
    const d = this.policy.decide(req.targetModel, seq, endpoints, this.clockMs());
    return endpoints.map((e) => (e === d.endpoint ? 1 : 0));
  }

  preRequest(req: InferenceRequest, result: SchedulingResult): void {
    const seq = this.pending.get(req);
    const target = result.targets[0];
    if (seq && target) this.policy.learn(req.targetModel, seq, target.address, this.clockMs());
  }
}
