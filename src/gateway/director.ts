// The Director: transport-independent request orchestration, as llm-d's director.go does it:
// candidates (ready, serving the model, inside the subset hint) -> admission (shedding when
// every candidate is saturated) -> data producers (tokens) -> Scheduler -> PreRequest hooks
// (speculative indexing, LRU learning). The HTTP gateway and the Envoy ext-proc server both
// call `schedule`, then report the response's life through `requestSent` / `responseStarted`
// / `requestFinished` so in-flight counters and response hooks stay exact.
import type { Logger } from 'pino';
import type { EndpointPool, PoolEndpoint } from '../endpoints/pool.js';
import type { OutlierDetector } from '../endpoints/outlier.js';
import type { LoadedSchedulerConfig } from '../scheduler/config.js';
import { Scheduler } from '../scheduler/scheduler.js';
import {
  CycleState,
  SchedulingError,
  type DataProducer,
  type Endpoint,
  type InferenceRequest,
  type ResponseInfo,
  type SchedulingResult,
} from '../scheduler/types.js';
import { GatewayError } from './errors.js';
import type { RouterMetrics } from './metrics.js';
import { realClock, type Clock } from '../util/clock.js';
import { withDefaults } from '../util/options.js';

export interface SaturationConfig {
  /** Shed (429) when every candidate is saturated. Off by default. */
  enabled: boolean;
  /** llm-d utilization-detector thresholds. */
  queueDepthThreshold: number;
  kvCacheUtilThreshold: number;
}

const SUCCESS = () => ({ status: 'success' });
const SETTLED: Promise<unknown> = Promise.resolve();
const FAILURE = () => ({ status: 'failure' });

export const DEFAULT_SATURATION: SaturationConfig = { enabled: false, queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8 };

export interface DirectorOptions {
  config: LoadedSchedulerConfig;
  pool: EndpointPool;
  logger: Logger;
  metrics?: RouterMetrics;
  saturation?: Partial<SaturationConfig>;
  /** Ejected endpoints leave the candidates; returning ones are capped while they warm up. */
  outlier?: OutlierDetector;
  /**
   * Another clock (the virtual bench's) runs the deferred PreRequest flush as a 0 ms timer on it;
   * the real clock keeps setImmediate (two event-loop turns).
   */
  clock?: Clock;
}

/** In-flight accounting per request (what was added, so exactly that is removed). */
interface Flight {
  endpoint: PoolEndpoint;
  tokens: number;
}

export class Director {
  readonly scheduler: Scheduler;
  private readonly producers: DataProducer[];
  private readonly saturation: SaturationConfig;
  private readonly log: Logger;
  private readonly flights = new WeakMap<InferenceRequest, Flight>();
  private readonly needsTokens: boolean;
  /** Tail of the scheduling critical section (see schedule). */
  private cycle: Promise<unknown> = SETTLED;
  /** Decisions queued or running in the critical section: none, and the next one needs no queue. */
  private deciding = 0;
  /** The last decision whose PreRequest hooks have not started yet (see decide). */
  private pendingReq: InferenceRequest | null = null;
  private pendingResult: SchedulingResult | null = null;
  /**
   * Starts the pending hooks two event-loop turns after a decision. Made once: a closure made
   * in decide would keep decide's whole context (the request, its body) alive until it runs.
   */
  private readonly flushLater = () => setImmediate(this.flushNow);
  private readonly flushNow = () => void this.flushPreRequest();
  /** How decide defers the flush: setImmediate twice (real clock) or a 0 ms timer on `o.clock`. */
  private readonly defer: () => void;
  /** The PreRequest hooks running or last run (never rejects). */
  private preRequestDone: Promise<void> = Promise.resolve();

  constructor(private readonly o: DirectorOptions) {
    const pd = o.metrics?.pluginDuration;
    this.scheduler = new Scheduler(o.config.profiles, o.config.profileHandler, {
      pluginDuration: pd
        ? (point, type, name) => pd.labelled(`${point}\u0000${type}\u0000${name}`, () => ({ extension_point: point, plugin_type: type, plugin_name: name }))
        : undefined,
    });
    const seen = new Set<DataProducer>();
    for (const p of o.config.profiles.values()) for (const d of p.producers) seen.add(d);
    this.producers = [...seen];
    this.needsTokens = [...o.config.plugins.values()].some((p) => p.needsTokens);
    this.saturation = withDefaults(DEFAULT_SATURATION, o.saturation ?? {});
    this.log = o.logger.child({ component: 'director' });
    const clock = o.clock;
    // The timer returns the hooks' promise so a virtual clock can settle them before moving on.
    this.defer = clock && clock !== realClock ? () => void clock.setTimeout(() => this.flushPreRequest(), 0) : () => void setImmediate(this.flushLater);
  }

  get pool(): EndpointPool {
    return this.o.pool;
  }

  /**
   * Ready endpoints that serve the request's model and lie inside its subset hint, less the
   * ejected ones and those in slow start holding their share (never emptied by ejection).
   */
  candidates(req: InferenceRequest): PoolEndpoint[] {
    const pool = this.o.pool;
    let out = pool.ready().filter((e) => pool.serves(e, req.targetModel));
    if (req.subset) {
      const allowed = new Set(req.subset);
      out = out.filter((e) => allowed.has(e.address));
      if (out.length === 0) {
        throw new GatewayError(503, `no ready endpoint in the subset [${req.subset.join(', ')}]`, 'service_unavailable_error', 'no_endpoints_in_subset');
      }
    }
    return this.o.outlier ? this.o.outlier.filter(out) : out;
  }

  private saturated(e: Endpoint): boolean {
    return e.metrics.waiting >= this.saturation.queueDepthThreshold || e.metrics.kvUsage >= this.saturation.kvCacheUtilThreshold;
  }

  /**
   * Decide where `req` goes. Throws GatewayError 503 (no candidate), 429 (all saturated with
   * shedding on, or the filters left none), 500 (a plugin failed).
   */
  async schedule(req: InferenceRequest): Promise<SchedulingResult> {
    const t0 = performance.now();
    try {
      const candidates = this.candidates(req);
      if (candidates.length === 0) {
        throw new GatewayError(503, `no ready endpoint serves model "${req.targetModel}"`, 'service_unavailable_error', 'no_ready_endpoint');
      }
      if (this.saturation.enabled && candidates.every((e) => this.saturated(e))) {
        throw new GatewayError(429, 'every endpoint is saturated; request shed', 'rate_limit_error', 'saturated', null, {
          'x-llm-d-request-dropped-reason': 'saturated',
        });
      }
      const state = new CycleState();
      // Slow, independent work first and concurrently: tokens and data producers.
      if (this.needsTokens) await req.getTokens();
      for (const p of this.producers) await p.produce(state, req, candidates);
      // Then score -> pick as one critical section, one request at a time, after the previous
      // decision's pre-request hooks, so a burst sharing a new prefix sees the speculative
      // entries of the decisions before it.
      // With no decision queued or running, the section is free: decide now, without a then().
      this.deciding++;
      let result: SchedulingResult;
      try {
        let run: Promise<SchedulingResult>;
        if (this.deciding === 1) run = this.decide(req, candidates, state);
        else {
          const next = () => this.decide(req, candidates, state);
          run = this.cycle.then(next, next);
        }
        this.cycle = run;
        result = await run;
      } finally {
        // The last decision's promise is not kept past the queue (it holds its result).
        if (--this.deciding === 0) this.cycle = SETTLED;
      }
      this.o.metrics?.schedulerAttempts.add('success', SUCCESS);
      if (this.log.isLevelEnabled('debug')) this.logDecision(req, result);
      return result;
    } catch (err) {
      this.o.metrics?.schedulerAttempts.add('failure', FAILURE);
      if (err instanceof GatewayError) throw err;
      this.log.error({ err, 'x-request-id': req.requestId }, 'scheduling failed');
      throw new GatewayError(500, `scheduling failed: ${(err as Error).message}`, 'internal_error', 'scheduling_error');
    } finally {
      this.o.metrics?.schedulerE2e.observe((performance.now() - t0) / 1000);
    }
  }

  private async decide(req: InferenceRequest, candidates: PoolEndpoint[], state: CycleState): Promise<SchedulingResult> {
    await this.flushPreRequest();
    let result: SchedulingResult;
    try {
      result = await this.scheduler.schedule(req, candidates, state);
    } catch (err) {
      if (err instanceof SchedulingError) {
        const type = err.status === 429 ? 'rate_limit_error' : err.status === 503 ? 'service_unavailable_error' : 'internal_error';
        throw new GatewayError(err.status, err.message, type, err.code);
      }
      throw err;
    }
    if (this.o.config.preRequest.length > 0) {
      // The hooks (speculative indexing, LRU learning) only matter to later decisions, so this
      // request does not wait for them: they run two event-loop turns from now, once the proxy
      // has written the request upstream, or at the start of the next decision if it comes first.
      this.pendingReq = req;
      this.pendingResult = result;
      this.defer();
    }
    return result;
  }

  /** Starts the pending PreRequest hooks, if any; resolves when the hooks last started are done. */
  flushPreRequest(): Promise<void> {
    const req = this.pendingReq;
    const result = this.pendingResult;
    if (req && result) {
      this.pendingReq = this.pendingResult = null;
      this.preRequestDone = this.preRequest(req, result);
    }
    return this.preRequestDone;
  }

  private async preRequest(req: InferenceRequest, result: SchedulingResult): Promise<void> {
    for (const hook of this.o.config.preRequest) {
      try {
        await hook.preRequest(req, result);
      } catch (err) {
        this.log.warn({ err, plugin: hook.name, 'x-request-id': req.requestId }, 'pre-request hook failed');
      }
    }
  }

  private logDecision(req: InferenceRequest, result: SchedulingResult): void {
    const primary = result.profileResults.get(result.primaryProfileName);
    const scores: Record<string, Record<string, number>> = {};
    if (primary) {
      for (const [plugin, byAddr] of primary.perScorer) scores[plugin] = Object.fromEntries(byAddr);
      scores.total = Object.fromEntries(primary.totals);
    }
    this.log.debug(
      { 'x-request-id': req.requestId, model: req.model, targets: result.targets.map((e) => e.address), scores },
      'Scheduled request',
    );
  }

  /** The request is on its way to `endpoint` (counts it in flight). */
  requestSent(req: InferenceRequest, endpoint: Endpoint): void {
    const e = endpoint as PoolEndpoint;
    const prev = this.flights.get(req);
    if (prev) this.release(prev);
    const tokens = req.tokens?.length ?? req.estimatedTokens;
    e.inflightRequests++;
    e.inflightTokens += tokens;
    e.routed++;
    this.flights.set(req, { endpoint: e, tokens });
    this.o.metrics?.routed.add(e.address, () => ({ endpoint: e.address }));
  }

  /** Headers the response hooks want on the client's response. */
  responseHeaders(req: InferenceRequest, endpoint: Endpoint): Record<string, string> {
    let out: Record<string, string> | undefined;
    for (const h of this.o.config.responseHooks) {
      const add = h.responseHeaders?.(req, endpoint);
      if (add) out = { ...out, ...add };
    }
    return out ?? {};
  }

  responseStarted(req: InferenceRequest, endpoint: Endpoint): void {
    for (const h of this.o.config.responseHooks) h.responseStart?.(req, endpoint);
  }

  /** The first body chunk arrived (for a streamed response, the first token: prefill is done). */
  firstToken(req: InferenceRequest, endpoint: Endpoint): void {
    for (const h of this.o.config.responseHooks) h.responseFirstToken?.(req, endpoint);
  }

  /** The exchange with `endpoint` ended (success, upstream error or client abort). */
  requestFinished(req: InferenceRequest, endpoint: Endpoint, info: ResponseInfo): void {
    const f = this.flights.get(req);
    if (f) {
      this.release(f);
      this.flights.delete(req);
    }
    for (const h of this.o.config.responseHooks) {
      try {
        h.responseComplete?.(req, endpoint, info);
      } catch (err) {
        this.log.warn({ err, plugin: h.name }, 'response hook failed');
      }
    }
  }

  private release(f: Flight): void {
    f.endpoint.inflightRequests = Math.max(0, f.endpoint.inflightRequests - 1);
    f.endpoint.inflightTokens = Math.max(0, f.endpoint.inflightTokens - f.tokens);
  }
}
