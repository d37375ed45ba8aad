// llm-d-router v0.10 "sticky until saturated" token-aware routing, RE-IMPLEMENTED for the
// benchmark from its published descriptions (not llm-d code), registered only by the bench:
//   - llm-d/llm-d-router pkg/epp/framework/plugins/requestcontrol/dataproducer/inflightload/
//     README.md: in-flight tokens per endpoint count only the uncached part of each prompt
//     (prefix-cache discounted), added at PreRequest, released at the first streamed chunk
//     (StartOfStream) or at the end of the response;
//   - pkg/epp/framework/plugins/scheduling/filter/prefixcacheaffinity/{README.md,plugin.go}
//     (v0.10, commit 066c20e): keep only "sticky" endpoints (prefix score >= affinityThreshold
//     0.80; all when none is), unless the best sticky endpoint's estimated TTFT exceeds the best
//     non-sticky one's by more than maxTTFTPenaltyMs (18,000), TTFT = in-flight tokens /
//     peakPrefillThroughput (15,928 tokens/s: the calibration for Qwen3-32B on 2 x H100 TP2,
//     vLLM 0.19, one unloaded 8,192-token chunk); i.e. tau = R_peak x T_max tokens
//     (llm-d/llm-d guides/optimized-baseline/calibration/calibrate-tau.yaml);
//   - pkg/epp/framework/plugins/scheduling/scorer/tokenload/token_load.go: score =
//     1 - min(1, (in-flight tokens + this request's uncached tokens) / queueThresholdTokens),
//     queueThresholdTokens 4,194,304;
//   - composition (guides/optimized-baseline/calibration/calibration.values.template.yaml):
//     approx-prefix-cache-producer -> prefix-cache-affinity-filter -> token-load-scorer, with
//     max-score-picker (random ties) and no weighted prefix scorer.
// The prefix match comes from the prefix plugin named by `prefixScorer` (GIE's approximate
// `prefix-cache-scorer` as in the guide, or the precise scorer), run by the filter inside the
// scheduling critical section so it sees the previous decisions, as llm-d's producer does.
import { z } from 'zod';
import { registerPlugin } from '../../scheduler/registry.js';
import { parseParams } from '../../scheduler/plugins/params.js';
import {
  PREFIX_MATCH_STATE,
  StateKey,
  type CycleState,
  type Endpoint,
  type Filter,
  type InferenceRequest,
  type Plugin,
  type PluginContext,
  type PreRequest,
  type ResponseHooks,
  type Scorer,
  type SchedulingResult,
} from '../../scheduler/types.js';

/** Per-cycle result of the load producer: this request's uncached tokens per endpoint. */
const CURRENT_LOAD_STATE = new StateKey<Map<string, number>>('llmd-current-request-load');

interface Flight {
  address: string;
  tokens: number;
  released: boolean;
}

/** `inflight-load-producer`: cache-discounted in-flight prompt tokens per endpoint. */
export class InflightLoadProducer implements PreRequest, ResponseHooks {
  private readonly prefixName: string;
  private readonly tokens = new Map<string, number>();
  private readonly flights = new WeakMap<InferenceRequest, Flight>();
  private readonly pending = new WeakMap<InferenceRequest, Map<string, number>>();
  private firstTokenHooks = false;
  readonly needsTokens = true;

  constructor(
    readonly type: string,
    readonly name: string,
    raw: unknown,
    private readonly getPlugin: (name: string) => Plugin | undefined,
  ) {
    this.prefixName = parseParams(z.object({ prefixScorer: z.string().min(1).default('prefix-cache-scorer') }).strict(), raw).prefixScorer;
  }

  inflight(address: string): number {
    return this.tokens.get(address) ?? 0;
  }

  /** Runs the prefix plugin (once per cycle) and this request's uncached tokens per endpoint. */
  async produce(state: CycleState, req: InferenceRequest, endpoints: Endpoint[]): Promise<Map<string, number>> {
    const done = state.get(CURRENT_LOAD_STATE);
    if (done) return done;
    const prefix = this.getPlugin(this.prefixName) as Scorer | undefined;
    if (!prefix || typeof prefix.score !== 'function') throw new Error(`${this.name}: prefixScorer "${this.prefixName}" is not a prefix scorer in this config`);
    await prefix.score(state, req, endpoints);
    const info = state.get(PREFIX_MATCH_STATE);
    const tokens = (await req.getTokens())?.length ?? req.estimatedTokens;
    const out = new Map<string, number>();
    for (const e of endpoints) {
      const hit = info && info.totalBlocks > 0 ? Math.min(1, (info.matched.get(e.address) ?? 0) / info.totalBlocks) : 0;
      out.set(e.address, Math.round(tokens * (1 - hit)));
    }
    state.set(CURRENT_LOAD_STATE, out);
    this.pending.set(req, out);
    return out;
  }

  preRequest(req: InferenceRequest, result: SchedulingResult): void {
    const cur = this.pending.get(req);
    const t = result.targets[0];
    if (!cur || !t) return;
    this.pending.delete(req);
    const prev = this.flights.get(req);
    if (prev) this.release(prev);
    const tokens = cur.get(t.address) ?? 0;
    this.tokens.set(t.address, this.inflight(t.address) + tokens);
    this.flights.set(req, { address: t.address, tokens, released: false });
  }

  responseFirstToken(req: InferenceRequest): void {
    this.firstTokenHooks = true;
    const f = this.flights.get(req);
    if (f) this.release(f);
  }

  responseStart(req: InferenceRequest): void {
    if (this.firstTokenHooks) return;
    const f = this.flights.get(req);
    if (f) this.release(f);
  }

  responseComplete(req: InferenceRequest): void {
    const f = this.flights.get(req);
    if (!f) return;
    this.flights.delete(req);
    this.release(f);
  }

  private release(f: Flight): void {
    if (f.released) return;
    f.released = true;
    this.tokens.set(f.address, Math.max(0, this.inflight(f.address) - f.tokens));
  }

  forget(address: string): void {
    this.tokens.delete(address);
  }
}

function producerOf(getPlugin: (n: string) => Plugin | undefined, name: string, self: string): InflightLoadProducer {
  const p = getPlugin(name);
  if (!(p instanceof InflightLoadProducer)) throw new Error(`${self}: inFlightLoadProducerName "${name}" is not an llmd-inflight-load-producer`);
  return p;
}

const filterParams = z
  .object({
    affinityThreshold: z.number().min(0).max(1).default(0.8),
    explorationProbability: z.number().min(0).max(1).default(0),
    maxTTFTPenaltyMs: z.number().nonnegative().default(18_000),
    peakPrefillThroughput: z.number().positive().default(15_928),
    inFlightLoadProducerName: z.string().default('llmd-inflight-load-producer'),
  })
  .strict();

/** `prefix-cache-affinity-filter` with the prefill-throughput TTFT gate. */
export class PrefixCacheAffinityFilter implements Filter {
  readonly p: z.infer<typeof filterParams>;
  /** Decisions by outcome (sticky, load_override, no_match, exploration), for reports. */
  readonly outcomes = { sticky: 0, load_override: 0, no_match: 0, exploration: 0 };
  constructor(
    readonly type: string,
    readonly name: string,
    raw: unknown,
    private readonly getPlugin: (name: string) => Plugin | undefined,
    private readonly rand: () => number = Math.random,
  ) {
    this.p = parseParams(filterParams, raw);
  }

  async filter(state: CycleState, req: InferenceRequest, endpoints: Endpoint[]): Promise<Endpoint[]> {
    const producer = producerOf(this.getPlugin, this.p.inFlightLoadProducerName, this.name);
    await producer.produce(state, req, endpoints);
    if (endpoints.length <= 1 || this.p.affinityThreshold <= 0) return endpoints;
    if (this.rand() < this.p.explorationProbability) {
      this.outcomes.exploration++;
      return endpoints;
    }
    const info = state.get(PREFIX_MATCH_STATE);
    const score = (e: Endpoint) => (info && info.totalBlocks > 0 ? (info.matched.get(e.address) ?? 0) / info.totalBlocks : 0);
    const sticky: Endpoint[] = [];
    let bestSticky = Infinity;
    let bestOther = Infinity;
    for (const e of endpoints) {
      const ttftMs = (producer.inflight(e.address) / this.p.peakPrefillThroughput) * 1000;
      if (score(e) >= this.p.affinityThreshold) {
        sticky.push(e);
        bestSticky = Math.min(bestSticky, ttftMs);
      } else bestOther = Math.min(bestOther, ttftMs);
    }
    if (sticky.length === 0) {
      this.outcomes.no_match++;
      return endpoints;
    }
    if (this.p.maxTTFTPenaltyMs > 0 && sticky.length < endpoints.length && bestSticky - bestOther > this.p.maxTTFTPenaltyMs) {
      this.outcomes.load_override++;
      return endpoints;
    }
    this.outcomes.sticky++;
    return sticky;
  }
}

/** `token-load-scorer`: 1 - min(1, (in-flight + this request's uncached tokens) / threshold). */
export class LlmdTokenLoadScorer implements Scorer {
  private readonly threshold: number;
  private readonly producerName: string;
  constructor(
    readonly type: string,
    readonly name: string,
    raw: unknown,
    private readonly getPlugin: (name: string) => Plugin | undefined,
  ) {
    const p = parseParams(
      z.object({ queueThresholdTokens: z.number().positive().default(4_194_304), inFlightLoadProducerName: z.string().default('llmd-inflight-load-producer') }).strict(),
      raw,
    );
    this.threshold = p.queueThresholdTokens;
    this.producerName = p.inFlightLoadProducerName;
  }

  async score(state: CycleState, req: InferenceRequest, endpoints: Endpoint[]): Promise<number[]> {
    const producer = producerOf(this.getPlugin, this.producerName, this.name);
    const current = await producer.produce(state, req, endpoints);
    return endpoints.map((e) => {
      const load = producer.inflight(e.address) + (current.get(e.address) ?? 0);
      return load <= 0 ? 1 : 1 - Math.min(load, this.threshold) / this.threshold;
    });
  }
}

let done = false;

/** Registers the bench-only types (prefixed `llmd-` so they never shadow a production plugin). */
export function registerStickyUntilSaturatedPlugins(): void {
  if (done) return;
  done = true;
  const lookup = (c: PluginContext) => (n: string) => c.getPlugin?.(n);
  registerPlugin('llmd-inflight-load-producer', (p, c) => new InflightLoadProducer(c.type, c.name, p, lookup(c)));
  registerPlugin('llmd-prefix-cache-affinity-filter', (p, c) => new PrefixCacheAffinityFilter(c.type, c.name, p, lookup(c)));
  registerPlugin('llmd-token-load-scorer', (p, c) => new LlmdTokenLoadScorer(c.type, c.name, p, lookup(c)));
}
