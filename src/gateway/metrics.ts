// Router Prometheus metrics, named as llm-d's EPP names them where one exists
// (shared/reference/scheduler-and-gateway.md §9), plus per-endpoint gauges.
import { Counter, Gauge, type Registry } from 'prom-client';
import { FastHistogram, Tally, type HistogramSeries } from '../util/fast-metrics.js';
import type { EndpointPool } from '../endpoints/pool.js';
import type { OutlierDetector } from '../endpoints/outlier.js';

const LATENCY_BUCKETS = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600];
const TTFT_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640];
const SCHED_BUCKETS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];
const PLUGIN_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

export { FastHistogram, HistogramSeries, Tally } from '../util/fast-metrics.js';

/** The per-(model, target model) series the gateway observes once per request. */
export interface ModelSeries {
  duration: HistogramSeries;
  ttft: HistogramSeries;
  inputTokens: HistogramSeries;
  outputTokens: HistogramSeries;
}

export class RouterMetrics {
  readonly requests: Tally<'model_name' | 'target_model_name'>;
  readonly errors: Tally<'model_name' | 'target_model_name' | 'error_code'>;
  readonly duration: FastHistogram<'model_name' | 'target_model_name'>;
  readonly ttft: FastHistogram<'model_name' | 'target_model_name'>;
  readonly running: Tally<'model_name'>;
  readonly inputTokens: FastHistogram<'model_name' | 'target_model_name'>;
  readonly outputTokens: FastHistogram<'model_name' | 'target_model_name'>;
  readonly schedulerE2e: HistogramSeries;
  readonly schedulerAttempts: Tally<'status'>;
  readonly pluginDuration: FastHistogram<'extension_point' | 'plugin_type' | 'plugin_name'>;
  private readonly byModel = new Map<string, ModelSeries>();
  readonly routed: Tally<'endpoint'>;
  readonly retries: Counter<'endpoint' | 'reason'>;
  readonly ejections: Counter<'endpoint'>;
  private outlier: OutlierDetector | undefined;

  constructor(registry: Registry, pool: EndpointPool) {
    const r = [registry];
    this.requests = new Tally('inference_objective_request_total', 'Requests received', ['model_name', 'target_model_name'], registry);
    this.errors = new Tally('inference_objective_request_error_total', 'Requests that ended in an error, by status code', ['model_name', 'target_model_name', 'error_code'], registry);
    this.duration = new FastHistogram('inference_objective_request_duration_seconds', 'End-to-end request latency through the router', LATENCY_BUCKETS, registry);
    this.ttft = new FastHistogram('inference_objective_request_ttft_seconds', 'Time from request arrival to the first response body byte', TTFT_BUCKETS, registry);
    this.running = new Tally('inference_objective_running_requests', 'Requests in flight through the router', ['model_name'], registry, 'gauge');
    const tokenBuckets = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072];
    this.inputTokens = new FastHistogram('inference_objective_input_tokens', 'Prompt tokens (from upstream usage)', tokenBuckets, registry);
    this.outputTokens = new FastHistogram('inference_objective_output_tokens', 'Completion tokens (from upstream usage)', tokenBuckets, registry);
    this.schedulerE2e = new FastHistogram('inference_extension_scheduler_e2e_duration_seconds', 'Scheduling latency the request waits for (candidates, tokens, filters, scorers, picker; pre-request hooks run off its path)', SCHED_BUCKETS, registry).unlabelled();
    this.schedulerAttempts = new Tally('inference_extension_scheduler_attempts_total', 'Scheduling attempts by outcome', ['status'], registry);
    this.pluginDuration = new FastHistogram('inference_extension_plugin_duration_seconds', 'Time spent in each scheduler plugin', PLUGIN_BUCKETS, registry);
    this.routed = new Tally('kvrouter_endpoint_requests_total', 'Requests sent to each endpoint', ['endpoint'], registry);
    this.retries = new Counter({
      name: 'kvrouter_upstream_retries_total',
      help: 'Requests retried on the next-best endpoint, by the failed endpoint and why (connect, reset, status_502, status_503)',
      labelNames: ['endpoint', 'reason'],
      registers: r,
    });
    this.ejections = new Counter({ name: 'kvrouter_endpoint_ejections_total', help: 'Outlier ejections of each endpoint (consecutive 5xx, resets, timeouts)', labelNames: ['endpoint'], registers: r });
    const outlier = () => this.outlier;

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
    perEndpoint('kvrouter_endpoint_ejected', '1 while the endpoint is ejected as an outlier', (e) => (outlier()?.isEjected(e.address) ? 1 : 0));
    perEndpoint('kvrouter_endpoint_slow_start_factor', 'Share of its peers\' concurrency the endpoint may take (below 1 in slow start)', (e) => outlier()?.slowStartFactor(e.address) ?? 1);
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

  /** Reads ejection and slow-start state from `o` for the per-endpoint gauges. */
  watchOutliers(o: OutlierDetector): void {
    this.outlier = o;
  }

  /** The request-path series of one (model, target model) pair, created on first use. */
  forModel(model: string, target: string): ModelSeries {
    const key = model + '\u0000' + target;
    let m = this.byModel.get(key);
    if (!m) {
      const labels = () => ({ model_name: model, target_model_name: target });
      m = {
        duration: this.duration.labelled(key, labels),
        ttft: this.ttft.labelled(key, labels),
        inputTokens: this.inputTokens.labelled(key, labels),
        outputTokens: this.outputTokens.labelled(key, labels),
      };
      this.byModel.set(key, m);
    }
    return m;
  }
}
