// Endpoint-picker metrics under llm-d EPP's names (shared/reference/scheduler-and-gateway.md §9),
// registered on the caller's Registry (startEpp keeps them apart from the router's registry and
// serves both; see epp.ts). A metric already on the registry is reused, not registered twice.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

type Labels<T extends string> = T;

function reuse<M>(registry: Registry, name: string, make: () => M): M {
  const existing = registry.getSingleMetric(name);
  return (existing as M | undefined) ?? make();
}

const DURATION_BUCKETS = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600];
const TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536, 131072, 262144, 524288, 1048576];
const PICK_BUCKETS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];

/** Per-model metric children, bound once (prom-client hashes labels on every labelled call). */
export interface ModelMetrics {
  requests: { inc(): void };
  duration: { observe(v: number): void };
  ttft: { observe(v: number): void };
  inputTokens: { observe(v: number): void };
  outputTokens: { observe(v: number): void };
  cachedTokens: { observe(v: number): void };
  running: { inc(): void; dec(): void };
}

export class EppMetrics {
  private readonly byModel = new Map<string, ModelMetrics>();

  readonly requests: Counter<Labels<'model_name' | 'target_model_name'>>;
  readonly errors: Counter<Labels<'model_name' | 'target_model_name' | 'error_code'>>;
  readonly duration: Histogram<Labels<'model_name' | 'target_model_name'>>;
  readonly ttft: Histogram<Labels<'model_name' | 'target_model_name'>>;
  readonly inputTokens: Histogram<Labels<'model_name' | 'target_model_name'>>;
  readonly outputTokens: Histogram<Labels<'model_name' | 'target_model_name'>>;
  readonly cachedTokens: Histogram<Labels<'model_name' | 'target_model_name'>>;
  readonly running: Gauge<Labels<'model_name'>>;
  readonly pickDuration: Histogram<Labels<'result'>>;
  readonly streams: Counter<Labels<'kind'>>;
  /** Bound children of pickDuration and streams (no label hashing per request). */
  readonly pickOk: { observe(v: number): void };
  readonly pickError: { observe(v: number): void };
  readonly streamsBy: Record<'picked' | 'header_only' | 'rejected' | 'aborted', { inc(): void }>;

  constructor(registry: Registry) {
    const registers = [registry];
    const mt = ['model_name', 'target_model_name'] as const;
    this.requests = reuse(registry, 'inference_objective_request_total', () => new Counter({ name: 'inference_objective_request_total', help: 'Requests scheduled by the endpoint picker.', labelNames: mt, registers }));
    this.errors = reuse(registry, 'inference_objective_request_error_total', () => new Counter({ name: 'inference_objective_request_error_total', help: 'Requests answered with an error (picker ImmediateResponse or upstream status != 2xx).', labelNames: [...mt, 'error_code'], registers }));
    this.duration = reuse(registry, 'inference_objective_request_duration_seconds', () => new Histogram({ name: 'inference_objective_request_duration_seconds', help: 'Request headers to response end, seconds.', labelNames: mt, buckets: DURATION_BUCKETS, registers }));
    this.ttft = reuse(registry, 'inference_objective_request_ttft_seconds', () => new Histogram({ name: 'inference_objective_request_ttft_seconds', help: 'Request headers to the first response body byte, seconds.', labelNames: mt, buckets: DURATION_BUCKETS, registers }));
    this.inputTokens = reuse(registry, 'inference_objective_input_tokens', () => new Histogram({ name: 'inference_objective_input_tokens', help: 'Prompt tokens reported in the response usage.', labelNames: mt, buckets: TOKEN_BUCKETS, registers }));
    this.outputTokens = reuse(registry, 'inference_objective_output_tokens', () => new Histogram({ name: 'inference_objective_output_tokens', help: 'Completion tokens reported in the response usage.', labelNames: mt, buckets: TOKEN_BUCKETS, registers }));
    this.cachedTokens = reuse(registry, 'inference_objective_prompt_cached_tokens', () => new Histogram({ name: 'inference_objective_prompt_cached_tokens', help: 'Prompt tokens served from the prefix cache (usage.prompt_tokens_details.cached_tokens).', labelNames: mt, buckets: TOKEN_BUCKETS, registers }));
    this.running = reuse(registry, 'inference_objective_running_requests', () => new Gauge({ name: 'inference_objective_running_requests', help: 'Requests picked and not yet completed.', labelNames: ['model_name'], registers }));
    this.pickDuration = reuse(registry, 'kvrouter_extproc_pick_duration_seconds', () => new Histogram({ name: 'kvrouter_extproc_pick_duration_seconds', help: 'End of request body to the routing answer on the ext-proc stream, seconds.', labelNames: ['result'], buckets: PICK_BUCKETS, registers }));
    this.streams = reuse(registry, 'kvrouter_extproc_streams_total', () => new Counter({ name: 'kvrouter_extproc_streams_total', help: 'ext-proc streams by how they ended: picked, header_only, rejected, aborted.', labelNames: ['kind'], registers }));
    this.pickOk = this.pickDuration.labels({ result: 'ok' });
    this.pickError = this.pickDuration.labels({ result: 'error' });
    this.streamsBy = {
      picked: this.streams.labels({ kind: 'picked' }),
      header_only: this.streams.labels({ kind: 'header_only' }),
      rejected: this.streams.labels({ kind: 'rejected' }),
      aborted: this.streams.labels({ kind: 'aborted' }),
    };
  }

  /** Children for one (model, target model) pair, created on first use. */
  forModel(model: string, target: string): ModelMetrics {
    const key = `${model}\u0000${target}`;
    let m = this.byModel.get(key);
    if (!m) {
      const l = { model_name: model, target_model_name: target };
      m = {
        requests: this.requests.labels(l),
        duration: this.duration.labels(l),
        ttft: this.ttft.labels(l),
        inputTokens: this.inputTokens.labels(l),
        outputTokens: this.outputTokens.labels(l),
        cachedTokens: this.cachedTokens.labels(l),
        running: this.running.labels({ model_name: model }),
      };
      // Bounded: model names come from clients.
      if (this.byModel.size < 1024) this.byModel.set(key, m);
    }
    return m;
  }
}
