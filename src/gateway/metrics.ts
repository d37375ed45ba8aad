// Router Prometheus metrics, named as llm-d's EPP names them where one exists
// (shared/reference/scheduler-and-gateway.md §9), plus per-endpoint gauges.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EndpointPool } from '../endpoints/pool.js';

const LATENCY_BUCKETS = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600];
const TTFT_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640];
const SCHED_BUCKETS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];
const PLUGIN_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

/**
 * A labelled counter whose hot path is a Map lookup on a caller-built key; prom-client reads
 * the totals at scrape time (label hashing per request would cost more than the routing).
 */
export class Tally<L extends string> {
  private readonly counts = new Map<string, { labels: Partial<Record<L, string>>; n: number }>();
  constructor(name: string, help: string, labelNames: L[], registry: Registry, kind: 'counter' | 'gauge' = 'counter') {
    const counts = this.counts;
    const collect = function (this: Counter<L> | Gauge<L>) {
      this.reset();
      for (const { labels, n } of counts.values()) (this as Gauge<L>).set(labels, n);
    };
    if (kind === 'counter') {
      // Counter has no set(): read through a gauge-like collect by resetting and incrementing.
      new Counter({
        name,
        help,
        labelNames,
        registers: [registry],
        collect() {
          this.reset();
          for (const { labels, n } of counts.values()) if (n > 0) this.inc(labels, n);
        },
      });
    } else new Gauge({ name, help, labelNames, registers: [registry], collect });
  }
  add(key: string, labels: () => Partial<Record<L, string>>, delta = 1): void {
    let c = this.counts.get(key);
    if (!c) this.counts.set(key, (c = { labels: labels(), n: 0 }));
    c.n += delta;
  }
}

export class RouterMetrics {
  readonly requests: Tally<'model_name' | 'target_model_name'>;
  readonly errors: Tally<'model_name' | 'target_model_name' | 'error_code'>;
  readonly duration: Histogram<'model_name' | 'target_model_name'>;
  readonly ttft: Histogram<'model_name' | 'target_model_name'>;
  readonly running: Tally<'model_name'>;
  readonly inputTokens: Histogram<'model_name' | 'target_model_name'>;
  readonly outputTokens: Histogram<'model_name' | 'target_model_name'>;
  readonly schedulerE2e: Histogram;
  readonly schedulerAttempts: Counter<'status'>;
  readonly pluginDuration: Histogram<'extension_point' | 'plugin_type' | 'plugin_name'>;
  readonly routed: Tally<'endpoint'>;
  readonly retries: Counter<'endpoint' | 'reason'>;

  constructor(registry: Registry, pool: EndpointPool) {
    const r = [registry];
    this.requests = new Tally('inference_objective_request_total', 'Requests received', ['model_name', 'target_model_name'], registry);
    this.errors = new Tally('inference_objective_request_error_total', 'Requests that ended in an error, by status code', ['model_name', 'target_model_name', 'error_code'], registry);
    this.duration = new Histogram({
      name: 'inference_objective_request_duration_seconds',
      help: 'End-to-end request latency through the router',
      labelNames: ['model_name', 'target_model_name'],
      buckets: LATENCY_BUCKETS,
      registers: r,
    });
    this.ttft = new Histogram({
      name: 'inference_objective_request_ttft_seconds',
      help: 'Time from request arrival to the first response body byte',
      labelNames: ['model_name', 'target_model_name'],
      buckets: TTFT_BUCKETS,
      registers: r,
    });
    this.running = new Tally('inference_objective_running_requests', 'Requests in flight through the router', ['model_name'], registry, 'gauge');
    const tokenBuckets = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072];
    this.inputTokens = new Histogram({ name: 'inference_objective_input_tokens', help: 'Prompt tokens (from upstream usage)', labelNames: ['model_name', 'target_model_name'], buckets: tokenBuckets, registers: r });
    this.outputTokens = new Histogram({ name: 'inference_objective_output_tokens', help: 'Completion tokens (from upstream usage)', labelNames: ['model_name', 'target_model_name'], buckets: tokenBuckets, registers: r });
    this.schedulerE2e = new Histogram({ name: 'inference_extension_scheduler_e2e_duration_seconds', help: 'Scheduling latency (candidates, tokens, scorers, picker, pre-request)', buckets: SCHED_BUCKETS, registers: r });
    this.schedulerAttempts = new Counter({ name: 'inference_extension_scheduler_attempts_total', help: 'Scheduling attempts by outcome', labelNames: ['status'], registers: r });
    this.pluginDuration = new Histogram({
      name: 'inference_extension_plugin_duration_seconds',
      help: 'Time spent in each scheduler plugin',
      labelNames: ['extension_point', 'plugin_type', 'plugin_name'],
      buckets: PLUGIN_BUCKETS,
      registers: r,
    });
    this.routed = new Tally('kvrouter_endpoint_requests_total', 'Requests sent to each endpoint', ['endpoint'], registry);
    this.retries = new Counter({ name: 'kvrouter_upstream_retries_total', help: 'Requests retried on the next-best endpoint after a connect failure', labelNames: ['endpoint', 'reason'], registers: r });

    const perEndpoint = (name: string, help: string, read: (e: ReturnType<EndpointPool['all']>[number]) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['endpoint'],
        registers: r,
        collect() {
          this.reset();
          for (const e of pool.all()) this.set({ endpoint: e.address }, read(e));
        },
      });
    perEndpoint('kvrouter_endpoint_ready', '1 when the endpoint is a routing candidate', (e) => (e.ready ? 1 : 0));
    perEndpoint('kvrouter_endpoint_queue_size', 'Waiting requests (vllm:num_requests_waiting)', (e) => e.metrics.waiting);
    perEndpoint('kvrouter_endpoint_running_requests', 'Running requests (vllm:num_requests_running)', (e) => e.metrics.running);
    perEndpoint('kvrouter_endpoint_kv_cache_usage', 'KV cache usage 0-1 (vllm:kv_cache_usage_perc)', (e) => e.metrics.kvUsage);
    perEndpoint('kvrouter_endpoint_inflight_requests', 'Requests this router has in flight to the endpoint', (e) => e.inflightRequests);
    perEndpoint('kvrouter_endpoint_inflight_tokens', 'Prompt tokens this router has in flight to the endpoint', (e) => e.inflightTokens);
    new Gauge({
      name: 'inference_pool_ready_pods',
      help: 'Endpoints ready for routing',
      registers: r,
      collect() {
        this.set(pool.ready().length);
      },
    });
    new Gauge({
      name: 'inference_pool_per_pod_queue_size',
      help: 'Waiting queue per endpoint',
      labelNames: ['name', 'model_server_pod'],
      registers: r,
      collect() {
        this.reset();
        for (const e of pool.all()) this.set({ name: 'kvrouter', model_server_pod: e.name }, e.metrics.waiting);
      },
    });
    const avg = (name: string, help: string, read: (e: ReturnType<EndpointPool['all']>[number]) => number) =>
      new Gauge({
        name,
        help,
        registers: r,
        collect() {
          const ready = pool.ready();
          this.set(ready.length ? ready.reduce((s, e) => s + read(e), 0) / ready.length : 0);
        },
      });
    avg('inference_pool_average_kv_cache_utilization', 'Mean KV cache usage of ready endpoints', (e) => e.metrics.kvUsage);
    avg('inference_pool_average_queue_size', 'Mean waiting queue of ready endpoints', (e) => e.metrics.waiting);
    avg('inference_pool_average_running_requests', 'Mean running requests of ready endpoints', (e) => e.metrics.running);
  }
}
