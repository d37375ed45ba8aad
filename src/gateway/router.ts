// Builds and starts a whole router in-process: endpoint pool + scraping, tokenizers, the
// scheduler config (which owns the block index and the KV-event subscriber), the Director,
// the proxy, the HTTP server and /metrics. Used by `kvrouter serve`, tests and benchmarks:
//   const r = await startRouter({ configPath, endpoints: [{ address: '127.0.0.1:8001' }], port: 0 });
//   r.url; await r.close();
import pino, { type Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { EndpointPool, type EndpointSpec, type PoolEndpoint } from '../endpoints/pool.js';
import {
  buildSchedulerConfig,
  parseEndpointPickerConfig,
  readEndpointPickerConfig,
  type EndpointPickerConfig,
  type EndpointPickerConfigInput,
  type LoadedSchedulerConfig,
} from '../scheduler/config.js';
import { PredictedLatencyScorer } from '../scheduler/plugins/predicted-latency/scorer.js';
import { KV_EVENT_SOURCE_FACTORY, KV_INDEX_PROVIDER, type KvEventSourceFactory, type KvIndexProvider } from '../scheduler/kv-services.js';
import { withPreciseScorerOverrides } from '../scheduler/plugins/precise-prefix.js';
import { ServiceRegistry } from '../scheduler/services.js';
import type { InferenceRequest, PluginContext } from '../scheduler/types.js';
import { KvEventSubscriber } from '../events/subscriber.js';
import { Director, type SaturationConfig } from './director.js';
import { checkTokenizeBody, poolMaxModelLen, RequestLimits, type RequestLimitOptions } from './request-limits.js';
import { RouterMetrics } from './metrics.js';
import type { ParseOptions } from './parse.js';
import { UpstreamProxy } from './proxy.js';
import type { HttpEdgeLimits } from './limits.js';
import { limitsFromConfig, resolveLimits } from './limit-settings.js';
import { OutlierDetector } from '../endpoints/outlier.js';
import { slowStartArrivals } from '../endpoints/arrivals.js';
import type { Clock } from '../util/clock.js';
import { GatewayServer, type ScoreApi, type TokenizeApi } from './server.js';
import { createRequestTokenizer, type RouterTokenizers } from './tokens.js';

export interface RouterOptions {
  /** An EndpointPickerConfig object or YAML text; or `configPath`. Neither: llm-d's defaults. */
  config?: EndpointPickerConfigInput | string;
  configPath?: string;
  /** Static endpoints; default: the config's `endpoints` list. */
  endpoints?: EndpointSpec[];
  /** HTTP port (0 = any free port). Default 8000. */
  port?: number;
  host?: string;
  logger?: Logger;
  logLevel?: string;
  registry?: Registry;
  /** /metrics scrape period (ms); 0 disables scraping (endpoints always ready). Default 50. */
  scrapeIntervalMs?: number;
  /** Without a good scrape for this long an endpoint leaves the candidates. Default 750. */
  unhealthyAfterMs?: number;
  /** Default of the precise scorer's `speculativeIndexing` when the config leaves it unset. Default true. */
  speculativeIndexing?: boolean;
  /** Overrides the precise scorer's kvEventsConfig.zmqEndpoint (e.g. a free port in tests). */
  zmqEndpoint?: string;
  /** "metrics beat" interval in ms (overrides the config's metricsLoggingInterval). */
  metricsBeatMs?: number;
  /** 429 shedding when every endpoint is saturated. */
  shedding?: boolean | Partial<SaturationConfig>;
  /** HTTP edge limits and timeouts, retries, outlier ejection (limits.ts: HTTP_EDGE_DEFAULTS). */
  limits?: Partial<HttpEdgeLimits>;
  /** Same as limits.maxBodyBytes. */
  maxBodyBytes?: number;
  /** Message count, prompt size and token caps (request-limits.ts: defaults, and the pods' max_model_len). */
  requestLimits?: RequestLimitOptions;
  /** Same as limits.upstreamFirstByteTimeoutMs. */
  upstreamHeadersTimeoutMs?: number;
  /** Clock of the outlier detector (ejection and slow-start times); default real time. */
  clock?: Clock;
  /** A tokenizer registry to share (tests, benchmarks); default: one created for this router. */
  tokenizers?: RouterTokenizers;
  /** Node process metrics on /metrics. Default true. */
  processMetrics?: boolean;
}

export interface Router {
  readonly url: string;
  readonly port: number;
  readonly pool: EndpointPool;
  readonly director: Director;
  readonly config: LoadedSchedulerConfig;
  readonly registry: Registry;
  readonly logger: Logger;
  /** The KV block index and its lookups, when a plugin provides one (the precise prefix scorer). */
  readonly kvIndex: KvIndexProvider | undefined;
  /** How requests are parsed (model resolution, tokenization): shared with the ext-proc picker. */
  readonly parseOptions: ParseOptions;
  /** Ejection and slow start of failing or returning endpoints. */
  readonly outlier: OutlierDetector;
  /** Loads a model's tokenizer now rather than on its first request. */
  warmTokenizer(model: string): Promise<void>;
  /** Shuts down; with `drainMs`, requests in flight get that long to finish first. */
  close(drainMs?: number): Promise<void>;
}

/** Builds the src/events subscriber for a precise scorer. */
const eventSourceFactory: KvEventSourceFactory = (o) => new KvEventSubscriber(o);

export async function startRouter(opts: RouterOptions): Promise<Router> {
  const logger = opts.logger ?? pino({ level: opts.logLevel ?? 'info', base: { name: 'kvrouter' } });
  const registry = opts.registry ?? new Registry();
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry });

  const written: EndpointPickerConfig = opts.configPath
    ? readEndpointPickerConfig(opts.configPath)
    : typeof opts.config === 'string'
      ? parseEndpointPickerConfig(opts.config)
      : parseEndpointPickerConfig(opts.config ?? {});
  // The router's flags are written into the plugins' parameters, where the plugin reads them.
  const source = withPreciseScorerOverrides(written, {
    zmqEndpoint: opts.zmqEndpoint,
    speculativeIndexing: opts.speculativeIndexing,
    metricsBeatMs: opts.metricsBeatMs,
  });

  const endpointSpecs = opts.endpoints?.length ? opts.endpoints : (source.endpoints ?? []);
  const pool = new EndpointPool(endpointSpecs, {
    logger,
    scrapeIntervalMs: opts.scrapeIntervalMs,
    unhealthyAfterMs: opts.unhealthyAfterMs,
  });
  const services = new ServiceRegistry();
  services.provide(KV_EVENT_SOURCE_FACTORY, eventSourceFactory, 'the router');
  const ctx: PluginContext = { logger, registry, services };
  const config = buildSchedulerConfig(source, ctx);
  const plugins = [...config.plugins.values()];
  const lifecycle = config.endpointLifecycle;

  const started: typeof plugins = [];
  const cleanup = async () => {
    for (const p of started.reverse()) await Promise.resolve(p.close?.()).catch(() => {});
    await pool.close();
  };
  try {
    for (const p of plugins) {
      await p.start?.();
      started.push(p);
    }
  } catch (err) {
    await cleanup();
    throw err;
  }

  // Plugins with per-endpoint state hear about endpoints as they come and go (the precise
  // scorer dials each endpoint's KV-event socket in discovery mode; LRUs drop a leaver's state).
  const notify = (hook: 'endpointAdded' | 'endpointRemoved', e: PoolEndpoint) => {
    for (const p of lifecycle) {
      Promise.resolve()
        .then(() => p[hook]?.(e))
        .catch((err: unknown) => logger.warn({ err, plugin: p.name, endpoint: e.address }, `${hook} failed`));
    }
  };
  for (const e of pool.all()) notify('endpointAdded', e);
  pool.on('added', (e: PoolEndpoint) => notify('endpointAdded', e));
  pool.on('removed', (e: PoolEndpoint) => notify('endpointRemoved', e));

  const metrics = new RouterMetrics(registry, pool);
  const tokenizers = opts.tokenizers ?? (await createDefaultTokenizers(registry, logger));
  const tokenize = tokenizers ? createRequestTokenizer(tokenizers, logger) : undefined;
  // Defaults < the config's `limits` section < the options (`serve` flags).
  const resolved = resolveLimits(limitsFromConfig(source.limits), {
    edge: { ...opts.limits, maxBodyBytes: opts.limits?.maxBodyBytes ?? opts.maxBodyBytes, upstreamFirstByteTimeoutMs: opts.limits?.upstreamFirstByteTimeoutMs ?? opts.upstreamHeadersTimeoutMs },
    request: opts.requestLimits ?? {},
  });
  const requestLimits = new RequestLimits(resolved.request, (m) => poolMaxModelLen(pool, m), registry);
  const parseOptions: ParseOptions = { resolveModel: (m) => pool.resolveModel(m), tokenize, limits: requestLimits };
  const saturation = typeof opts.shedding === 'boolean' ? { enabled: opts.shedding } : opts.shedding ? { enabled: true, ...opts.shedding } : undefined;
  const limits = resolved.edge;
  const outlier = new OutlierDetector({
    consecutiveFailures: limits.outlierConsecutiveFailures,
    baseEjectionMs: limits.outlierBaseEjectionMs,
    maxEjectionMs: limits.outlierMaxEjectionMs,
    slowStartMs: limits.slowStartMs,
    clock: opts.clock,
  });
  outlier.on((address, event, d) => {
    if (event === 'ejected') {
      metrics.ejections.inc({ endpoint: address });
      logger.warn({ endpoint: address, ejections: d.ejections, ejectedMs: d.ejectedMs }, 'endpoint ejected after consecutive failures');
    } else logger.info({ endpoint: address }, 'endpoint back from ejection: slow start');
  });
  metrics.watchOutliers(outlier);
  // A returning endpoint, or one that joins after startup, starts slow instead of drawing all traffic.
  slowStartArrivals(pool, outlier, logger);
  const director = new Director({ config, pool, logger, metrics, saturation, outlier });
  const proxy = new UpstreamProxy({
    logger,
    pool,
    director,
    metrics,
    outlier,
    connectTimeoutMs: limits.upstreamConnectTimeoutMs,
    firstByteTimeoutMs: limits.upstreamFirstByteTimeoutMs,
    idleTimeoutMs: limits.upstreamIdleTimeoutMs,
    retries: limits.upstreamRetries,
  });

  const kvIndex = services.get(KV_INDEX_PROVIDER);
  const predictors = [...config.plugins.values()].filter((p): p is PredictedLatencyScorer => p instanceof PredictedLatencyScorer);
  const scoreApi: ScoreApi | undefined = kvIndex
    ? {
        score: async (req: InferenceRequest) => {
          const endpoints = pool.all().filter((e) => pool.serves(e, req.targetModel));
          const d = await kvIndex.detail(req, endpoints);
          const ready = new Map(endpoints.map((e) => [e.address, e.ready]));
          // predicted-latency-scorer: each pod's predicted TTFT, its parts and the pod it would pick.
          const predicted = predictors.length ? await predictors[0].detail(req, endpoints) : undefined;
          return {
            ...d,
            ...(predicted ? { predicted } : {}),
            scores: Object.fromEntries(d.endpoints.map((e) => [e.address, e.score])),
            endpoints: d.endpoints.map((e) => ({ ...e, ready: ready.get(e.address) ?? false })),
          };
        },
      }
    : undefined;
  const tokenizeApi: TokenizeApi | undefined = tokenizers?.handleTokenize
    ? {
        handle: async (body) => {
          checkTokenizeBody(requestLimits, body); // /tokenize is held to the request limits too
          return tokenizers.handleTokenize!(body);
        },
      }
    : undefined;

  const server = new GatewayServer({
    logger,
    registry,
    pool,
    director,
    proxy,
    metrics,
    parseOptions,
    scoreApi,
    tokenizeApi,
    limits,
  });
  let addr;
  try {
    pool.start();
    addr = await server.listen(opts.port ?? 8000, opts.host ?? '127.0.0.1');
  } catch (err) {
    await proxy.close();
    await cleanup();
    if (!opts.tokenizers) await tokenizers?.close?.();
    throw err;
  }
  const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  const url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${addr.port}`;
  logger.info(
    { url, endpoints: pool.all().map((e) => e.address), profiles: [...config.profiles.keys()], plugins: plugins.map((p) => `${p.name}(${p.type})`) },
    'kvrouter listening',
  );

  let closed = false;
  return {
    url,
    port: addr.port,
    pool,
    director,
    config,
    registry,
    logger,
    kvIndex,
    parseOptions,
    outlier,
    async warmTokenizer(model: string) {
      await tokenizers?.encodeCompletion(model, 'warm up', true).catch((err: unknown) => logger.warn({ model, err: (err as Error).message }, 'tokenizer warm-up failed'));
    },
    async close(drainMs = 0) {
      if (closed) return;
      closed = true;
      await server.close(drainMs);
      await proxy.close();
      await cleanup();
      if (!opts.tokenizers) await tokenizers?.close?.();
    },
  };
}

type TokenizeModule = typeof import('../tokenize/index.js');
type TokenizerRegistryT = Awaited<ReturnType<TokenizeModule['TokenizerRegistry']['create']>>;

/** Adapts src/tokenize's TokenizerRegistry to what the router uses. */
export async function routerTokenizersFrom(reg: TokenizerRegistryT, ownsRegistry = true): Promise<RouterTokenizers> {
  const mod = await import('../tokenize/index.js');
  return {
    // Uint32Array ids: what the block keys are computed from, without a JS array in between.
    encodeCompletion: (m, p, a, e) => (typeof p === 'string' ? reg.encodeCompletionIds(m, p, a, e) : reg.encodeCompletion(m, p, a)),
    encodeChat: (m, msgs, o, e) => reg.encodeChatIds(m, msgs as Parameters<typeof reg.encodeChat>[1], o, e),
    handleTokenize: (body) => mod.handleTokenize(reg, body),
    close: ownsRegistry ? () => reg.close() : undefined,
  };
}

async function createDefaultTokenizers(registry: Registry, logger: Logger): Promise<RouterTokenizers | undefined> {
  try {
    const mod = await import('../tokenize/index.js');
    return await routerTokenizersFrom(await mod.TokenizerRegistry.create({ registry }));
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'tokenizers unavailable: precise prefix scores will be 0 for text prompts');
    return undefined;
  }
}
