// `kvrouter epp`: the router's scheduling stack (the same startRouter as `kvrouter serve`:
// endpoint pool + /metrics scraping, tokenizers, block index, KV-event subscriber, Director)
// behind Envoy's ext_proc protocol instead of an HTTP proxy. Ports as llm-d's EPP: ext-proc
// gRPC 9002, gRPC health 9003 (services liveness, readiness and the ext_proc service), Prometheus
// 9090. Endpoints come from pod discovery (InferencePool or label selector) or a static list.
//
// startRouter also opens its HTTP API; the picker binds it to loopback on a free port, where
// the scoring and /tokenize endpoints stay useful for debugging (kubectl port-forward).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { Registry } from 'prom-client';
import type { EndpointSpec } from '../endpoints/pool.js';
import { startRouter, type Router } from '../gateway/router.js';
import type { SaturationConfig } from '../gateway/director.js';
import { KV_EVENTS_ENDPOINT_LABEL, KV_EVENTS_REPLAY_LABEL } from '../scheduler/plugins/precise-prefix.js';
import type { EndpointPickerConfig } from '../scheduler/config.js';
import { DirectorPicker } from './director-picker.js';
import { PodDiscovery, type DiscoveredEndpoint, type PodDiscoveryOptions } from './discovery.js';
import { extProcImplementation, type ExtProcOptions } from './extproc-server.js';
import { startGrpcServer, type GrpcServerHandle } from './grpc-server.js';
import { HealthStatus } from './health.js';
import { EppMetrics } from './metrics.js';
import { EXT_PROC_SERVICE_NAME, extProcServerService, healthService } from './proto.js';

export interface EppOptions {
  config?: EndpointPickerConfig | string;
  configPath?: string;
  /** Static endpoints (no Kubernetes). Ignored when `discovery` is given. */
  endpoints?: EndpointSpec[];
  /** Pod discovery (InferencePool or label selector) through the Kubernetes API. */
  discovery?: Omit<PodDiscoveryOptions, 'logger' | 'onAdd' | 'onRemove' | 'onUpdate' | 'onSynced' | 'kvEvents'>;
  host?: string;
  /** 0 = any free port. */
  grpcPort?: number;
  grpcHealthPort?: number;
  /** Prometheus port; -1 disables the metrics server. */
  metricsPort?: number;
  /** /metrics scrape period of each endpoint in ms (llm-d --refresh-metrics-interval, 50). */
  refreshMetricsIntervalMs?: number;
  logger?: Logger;
  logLevel?: string;
  registry?: Registry;
  /** Overrides the precise scorer's zmqEndpoint (central mode bind address). */
  zmqEndpoint?: string;
  speculativeIndexing?: boolean;
  shedding?: boolean | Partial<SaturationConfig>;
  metricsBeatMs?: number;
  maxBodyBytes?: number;
  /** GIE conformance test hooks (see ExtProcOptions.conformanceHooks). */
  conformanceHooks?: boolean;
  /** Router options passed through (tests share tokenizers). */
  tokenizers?: Parameters<typeof startRouter>[0]['tokenizers'];
}

export interface Epp {
  readonly router: Router;
  readonly health: HealthStatus;
  readonly discovery: PodDiscovery | undefined;
  readonly grpcPort: number;
  readonly grpcHealthPort: number;
  /** -1 when disabled. */
  readonly metricsPort: number;
  readonly metrics: EppMetrics;
  /** The picker's registry (the router's is router.registry); /metrics serves both. */
  readonly registry: Registry;
  close(): Promise<void>;
}

function host(h: string): string {
  return h.includes(':') && !h.startsWith('[') ? `[${h}]` : h;
}

/** Pool labels for a discovered endpoint; data-parallel rank r publishes on socketPort + r. */
function endpointSpec(ep: DiscoveredEndpoint, router: Router): EndpointSpec {
  const labels: Record<string, string> = { ...ep.labels };
  const pd = router.kvIndex?.podDiscovery;
  if (ep.rank > 0) {
    labels[KV_EVENTS_ENDPOINT_LABEL] = `tcp://${host(ep.podIP)}:${(pd?.socketPort ?? 5557) + ep.rank}`;
    if (pd?.replaySocketPort) labels[KV_EVENTS_REPLAY_LABEL] = `tcp://${host(ep.podIP)}:${pd.replaySocketPort + ep.rank}`;
  }
  return { address: ep.address, name: ep.name, labels };
}

/** Prometheus text of `primary` plus every family of `secondary` that `primary` lacks. */
export async function exposition(primary: Registry, secondary: Registry): Promise<string> {
  let text = await primary.metrics();
  for (const m of secondary.getMetricsAsArray()) {
    const name = (m as unknown as { name: string }).name;
    if (primary.getSingleMetric(name)) continue;
    text += (await secondary.getSingleMetricAsString(name)) + '\n\n';
  }
  return text;
}

export async function startEpp(o: EppOptions): Promise<Epp> {
  if (o.maxBodyBytes !== undefined && !(Number.isSafeInteger(o.maxBodyBytes) && o.maxBodyBytes > 0)) {
    throw new Error(`--max-body-bytes must be a positive integer, got ${String(o.maxBodyBytes)}`);
  }
  const logger = o.logger ?? pino({ level: o.logLevel ?? 'info', base: { name: 'kvrouter-epp' } });
  // Two registries: the router's own (pool, index, events, scheduler metrics) and the picker's
  // request accounting. The router's request counters describe its HTTP proxy, idle here; where
  // both define a family, /metrics serves the picker's.
  const registry = o.registry ?? new Registry();
  const routerRegistry = new Registry();
  const bindHost = o.host ?? '0.0.0.0';
  const router = await startRouter({
    config: o.config,
    configPath: o.configPath,
    endpoints: o.discovery ? [] : (o.endpoints ?? []),
    port: 0,
    host: '127.0.0.1',
    logger,
    registry: routerRegistry,
    scrapeIntervalMs: o.refreshMetricsIntervalMs,
    zmqEndpoint: o.zmqEndpoint,
    speculativeIndexing: o.speculativeIndexing,
    shedding: o.shedding,
    metricsBeatMs: o.metricsBeatMs,
    tokenizers: o.tokenizers,
  });
  const health = new HealthStatus();
  const metrics = new EppMetrics(registry);
  let discovery: PodDiscovery | undefined;
  let grpc: GrpcServerHandle | undefined;
  let grpcHealth: GrpcServerHandle | undefined;
  let metricsServer: Server | undefined;

  const setReady = (ready: boolean) => {
    health.set('readiness', ready);
    health.set(EXT_PROC_SERVICE_NAME, ready);
  };
  health.set('', true);
  health.set('liveness', true);
  setReady(false);

  const cleanup = async () => {
    setReady(false);
    health.close();
    await discovery?.stop();
    await grpc?.close();
    await grpcHealth?.close();
    if (metricsServer) await new Promise<void>((r) => metricsServer!.close(() => r()));
    await router.close();
  };

  try {
    const picker = new DirectorPicker({ director: router.director, pool: router.pool, parse: router.parseOptions, ready: () => !discovery || discovery.synced });
    const xp: ExtProcOptions = { picker, logger, metrics, maxBodyBytes: o.maxBodyBytes, conformanceHooks: o.conformanceHooks };
    grpc = await startGrpcServer(bindHost, o.grpcPort ?? 9002, [{ definition: extProcServerService(), implementation: extProcImplementation(xp) }]);
    grpcHealth = await startGrpcServer(bindHost, o.grpcHealthPort ?? 9003, [{ definition: healthService(), implementation: health.implementation() }]);

    if ((o.metricsPort ?? 9090) >= 0) {
      metricsServer = createServer((req, res) => {
        if (req.url?.split('?')[0] !== '/metrics') {
          res.writeHead(404).end();
          return;
        }
        exposition(registry, routerRegistry).then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (err: unknown) => res.writeHead(500).end(String(err)),
        );
      });
      await new Promise<void>((resolve, reject) => {
        metricsServer!.once('error', reject);
        metricsServer!.listen(o.metricsPort ?? 9090, bindHost, resolve);
      });
    }

    if (o.discovery) {
      const pool = router.pool;
      discovery = new PodDiscovery({
        ...o.discovery,
        logger,
        onAdd: (ep) => pool.add(endpointSpec(ep, router)),
        onRemove: (ep) => pool.remove(ep.address),
        // Labels drive filters (llm-d.ai/role): replace the endpoint so they take effect.
        onUpdate: (ep) => {
          pool.remove(ep.address);
          pool.add(endpointSpec(ep, router));
        },
        onSynced: () => {
          logger.info({ endpoints: pool.all().map((e) => e.address) }, 'endpoint pool synced');
          setReady(true);
        },
      });
      discovery.start();
    } else {
      setReady(true);
    }
  } catch (err) {
    await cleanup();
    throw err;
  }

  logger.info(
    {
      grpcPort: grpc.port,
      grpcHealthPort: grpcHealth.port,
      metricsPort: metricsServer ? (metricsServer.address() as AddressInfo).port : -1,
      routerApi: router.url,
      mode: o.discovery ? (o.discovery.poolName ? `InferencePool ${o.discovery.namespace}/${o.discovery.poolName}` : 'label selector') : 'static endpoints',
    },
    'kvrouter endpoint picker serving Envoy ext_proc',
  );

  let closed = false;
  return {
    router,
    health,
    discovery,
    grpcPort: grpc.port,
    grpcHealthPort: grpcHealth.port,
    metricsPort: metricsServer ? (metricsServer.address() as AddressInfo).port : -1,
    metrics,
    registry,
    async close() {
      if (closed) return;
      closed = true;
      await cleanup();
    },
  };
}
