// The scheduler's contract: endpoints as the scheduler sees them, the parsed request, the
// plugin extension points and the result. Modelled on llm-d's plugin framework
// (gateway-api-inference-extension pkg/epp/framework: Filter, Scorer, Picker, ProfileHandler,
// PrepareData with Produces/Consumes, PreRequest, ResponseReceived/ResponseComplete): filters ->
// clamped, weighted scorers -> one picker, profile handlers around profiles, hooks around the
// request. A plugin implements any set of extension points; the config loader and the router
// find them through the type guards at the end of this file, never through a concrete class.
// Shared services go through a typed ServiceRegistry (./services.ts) with declared dependencies.
//
// Shared by `kvrouter serve` (src/gateway), the Envoy ext-proc picker (src/k8s) and the
// benchmark strategies (src/bench), so all of them schedule exactly the same way.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Clock } from '../util/clock.js';
import type { ServiceKey, ServiceRegistry } from './services.js';

/** Load snapshot of one endpoint, refreshed by the /metrics scraper (src/endpoints). */
export interface EndpointMetrics {
  /** vllm:num_requests_waiting */
  waiting: number;
  /** vllm:num_requests_running */
  running: number;
  /** vllm:kv_cache_usage_perc, 0..1 */
  kvUsage: number;
  /** vllm:cache_config_info{block_size}; undefined until scraped. */
  blockSize?: number;
  /** vllm:cache_config_info{num_gpu_blocks} */
  numGpuBlocks?: number;
  /** vllm:lora_requests_info (newest series). */
  runningLoras: string[];
  waitingLoras: string[];
  maxLora: number;
  /** Date.now() of the last successful scrape, 0 when never scraped. */
  updatedAt: number;
}

/** One routable endpoint (a vLLM server or one of its data-parallel ranks). */
export interface Endpoint {
  /** Stable display name (defaults to the address). */
  readonly name: string;
  /** `ip:port`; also the pod identity in KV-event topics and in the block index. */
  readonly address: string;
  /** Labels such as `llm-d.ai/role`, used by filters. */
  readonly labels: Readonly<Record<string, string>>;
  /** Latest scraped load (mutated in place by the scraper; read it, do not keep it). */
  readonly metrics: EndpointMetrics;
  /** Requests this router currently has in flight to the endpoint. */
  inflightRequests: number;
  /** Prompt tokens (estimated when not tokenized) of those requests. */
  inflightTokens: number;
  /** Answering its /metrics (or not scraped at all) and not drained. */
  ready: boolean;
}

export type ApiKind = 'completions' | 'chat';

export interface ChatMessage {
  role: string;
  content?: unknown;
  [k: string]: unknown;
}

/** A parsed OpenAI-style request, independent of the transport (HTTP proxy or ext-proc). */
export interface InferenceRequest {
  /** x-request-id (taken from the client or generated). */
  requestId: string;
  /** Model name the client asked for (may be a LoRA adapter). */
  model: string;
  /** Model the request is routed and keyed for (after rewrites; equals `model` by default). */
  targetModel: string;
  /** Base model whose tokenizer applies (differs from targetModel for a LoRA adapter). */
  baseModel: string;
  /** LoRA adapter name when targetModel is an adapter: it replaces the model at the key root. */
  lora?: string;
  api: ApiKind;
  /** Request path as received (e.g. `/v1/chat/completions`). */
  path: string;
  /** The parsed JSON body. */
  body: Record<string, unknown>;
  /** Lower-cased request headers (first value of each). */
  headers: Record<string, string>;
  stream: boolean;
  /** vLLM `cache_salt`: enters block 0's key. */
  cacheSalt?: string;
  /** Completions prompt (string, string[], or token ids) as sent. */
  prompt?: unknown;
  /** Chat messages as sent. */
  messages?: ChatMessage[];
  /** Envoy subset hint: only these addresses may be picked (null/undefined: no restriction). */
  subset?: string[] | null;
  /** Tokens when already known (set by getTokens, or by the caller). */
  tokens?: Uint32Array;
  /**
   * The prompt's token ids exactly as vLLM would compute them, computed at most once and
   * shared by every plugin; null when the model has no tokenizer available.
   */
  getTokens(): Promise<Uint32Array | null>;
  /** Cheap size estimate (tokens) used for in-flight accounting before tokenization. */
  estimatedTokens: number;
}

/** Names a value in the CycleState and carries its type, so readers need no cast. */
export class StateKey<T> {
  /** Never set: only ties the key to its type at compile time. */
  declare readonly type?: T;
  constructor(readonly id: string) {}
}

/** Per-request scratch space shared by the plugins of one scheduling cycle. */
export class CycleState {
  private readonly data = new Map<StateKey<unknown>, unknown>();
  get<T>(key: StateKey<T>): T | undefined {
    return this.data.get(key) as T | undefined;
  }
  set<T>(key: StateKey<T>, value: T): void {
    this.data.set(key, value);
  }
}

/** Where prefix scorers publish per-endpoint match info (read by no-hit-lru-scorer and the Dynamo peer). */
export const PREFIX_MATCH_STATE = new StateKey<PrefixMatchInfo>('prefix-cache-match-info');
export interface PrefixMatchInfo {
  /** Matched blocks per endpoint address. */
  matched: Map<string, number>;
  totalBlocks: number;
}

export interface Plugin {
  readonly type: string;
  readonly name: string;
  /** The plugin reads req.getTokens(): the director tokenizes before the scheduling cycle. */
  readonly needsTokens?: boolean;
  /** Services this plugin registers in `ctx.services` while it is constructed. */
  readonly provides?: readonly ServiceKey<unknown>[];
  /** Services it needs; the config loader fails, naming the service, when one is missing. */
  readonly requires?: readonly ServiceKey<unknown>[];
  /** Optional lifecycle: called once by the router after construction. */
  start?(): Promise<void> | void;
  close?(): Promise<void> | void;
}

/**
 * Plugins that keep per-endpoint state (an event subscription, an LRU per endpoint) hear about
 * endpoints joining and leaving the pool (llm-d: the datastore's endpoint add/delete events).
 */
export interface EndpointLifecycle extends Plugin {
  endpointAdded?(endpoint: Endpoint): void | Promise<void>;
  endpointRemoved?(endpoint: Endpoint): void | Promise<void>;
}

export interface Filter extends Plugin {
  filter(state: CycleState, req: InferenceRequest, endpoints: Endpoint[]): Endpoint[] | Promise<Endpoint[]>;
}

/** Returns one raw score per endpoint, aligned with `endpoints`; the scheduler clamps to [0,1]. */
export interface Scorer extends Plugin {
  score(state: CycleState, req: InferenceRequest, endpoints: Endpoint[]): ArrayLike<number> | Promise<ArrayLike<number>>;
}

export interface ScoredEndpoint {
  endpoint: Endpoint;
  score: number;
}

export interface Picker extends Plugin {
  /** Ranked targets, best first (more than one = fallbacks). */
  pick(state: CycleState, req: InferenceRequest, scored: ScoredEndpoint[]): Endpoint[];
}

/** Runs before scheduling (llm-d DataProducer), e.g. the tokenizer / token-producer plugin. */
export interface DataProducer extends Plugin {
  produce(state: CycleState, req: InferenceRequest, endpoints: Endpoint[]): Promise<void> | void;
}

/** After the decision, before the request is sent (speculative indexing, in-flight counters). */
export interface PreRequest extends Plugin {
  preRequest(req: InferenceRequest, result: SchedulingResult): Promise<void> | void;
}

export interface ResponseInfo {
  status: number;
  /** Milliseconds from the request's arrival to the first response byte. */
  ttftMs?: number;
  promptTokens?: number;
  completionTokens?: number;
  cachedTokens?: number;
  error?: string;
}

/** Response hooks (llm-d ResponseReceived / ResponseComplete). */
export interface ResponseHooks extends Plugin {
  responseStart?(req: InferenceRequest, endpoint: Endpoint): void;
  /** The first body chunk (the first token of a streamed response) arrived from `endpoint`. */
  responseFirstToken?(req: InferenceRequest, endpoint: Endpoint): void;
  responseComplete?(req: InferenceRequest, endpoint: Endpoint, info: ResponseInfo): void;
  /** Headers to add to the client's response (e.g. x-session-token). */
  responseHeaders?(req: InferenceRequest, endpoint: Endpoint): Record<string, string> | undefined;
}

/** A profile's plugins once resolved from the config. */
export interface WeightedScorer {
  scorer: Scorer;
  weight: number;
}

export interface SchedulerProfile {
  readonly name: string;
  readonly filters: Filter[];
  readonly scorers: WeightedScorer[];
  readonly picker: Picker;
  /** Producers referenced by the profile, run by the director before the cycle. */
  readonly producers: DataProducer[];
}

export interface ProfileRunResult {
  /** Ranked targets, best first. */
  targets: Endpoint[];
  /** Weighted total per address, for logs and scoring APIs. */
  totals: Map<string, number>;
  /** Clamped score per scorer name per address. */
  perScorer: Map<string, Map<string, number>>;
}

export interface ProfileHandler extends Plugin {
  /** Profiles to run next given results so far; an empty map ends the loop. */
  pickProfiles(
    state: CycleState,
    req: InferenceRequest,
    profiles: ReadonlyMap<string, SchedulerProfile>,
    results: ReadonlyMap<string, ProfileRunResult | null>,
  ): Map<string, SchedulerProfile>;
  processResults(state: CycleState, req: InferenceRequest, results: ReadonlyMap<string, ProfileRunResult | null>): SchedulingResult;
}

export interface SchedulingResult {
  primaryProfileName: string;
  profileResults: Map<string, ProfileRunResult | null>;
  /** Primary profile's ranked targets: [chosen, fallback1, ...]. */
  targets: Endpoint[];
  /** Extra headers a handler asks the proxy to set (e.g. x-prefiller-host-port). */
  headers?: Record<string, string>;
}

/**
 * Everything a plugin factory may use. A plugin's own settings live in its `parameters`, never
 * here; what the router hands plugins goes through `services`.
 */
export interface PluginContext {
  logger: Logger;
  registry: Registry;
  /** Shared services: provided by the router (e.g. the KV-event subscriber) or by plugins (the index). */
  services: ServiceRegistry;
  /** Time for plugins that read it or set timers; default realClock. */
  clock?: Clock;
  /** Looks up another plugin instance by name (for plugins that pair, e.g. producers). */
  getPlugin?(name: string): Plugin | undefined;
}

export type PluginFactory = (parameters: unknown, ctx: PluginContext & { name: string; type: string }) => Plugin;

/** Scheduling failures carry the HTTP status the gateway should return. */
export class SchedulingError extends Error {
  constructor(
    message: string,
    readonly status: 429 | 503 | 500,
    readonly code: string,
  ) {
    super(message);
    this.name = 'SchedulingError';
  }
}

export function isFilter(p: Plugin): p is Filter {
  return typeof (p as Filter).filter === 'function';
}
export function isScorer(p: Plugin): p is Scorer {
  return typeof (p as Scorer).score === 'function';
}
export function isPicker(p: Plugin): p is Picker {
  return typeof (p as Picker).pick === 'function';
}
export function isProfileHandler(p: Plugin): p is ProfileHandler {
  return typeof (p as ProfileHandler).pickProfiles === 'function';
}
export function isDataProducer(p: Plugin): p is DataProducer {
  return typeof (p as DataProducer).produce === 'function';
}
export function isPreRequest(p: Plugin): p is PreRequest {
  return typeof (p as PreRequest).preRequest === 'function';
}
export function isResponseHooks(p: Plugin): p is ResponseHooks {
  const h = p as ResponseHooks;
  return (
    typeof h.responseComplete === 'function' ||
    typeof h.responseStart === 'function' ||
    typeof h.responseFirstToken === 'function' ||
    typeof h.responseHeaders === 'function'
  );
}
export function isEndpointLifecycle(p: Plugin): p is EndpointLifecycle {
  const l = p as EndpointLifecycle;
  return typeof l.endpointAdded === 'function' || typeof l.endpointRemoved === 'function';
}
