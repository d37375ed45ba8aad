// Endpoint-picker metrics under llm-d EPP's names (llm-d/llm-d-router pkg/epp/metrics/metrics.go, 2026),
// registered on the caller's Registry (startEpp keeps them apart from the router's registry and
// serves both; see epp.ts). A second EppMetrics on the same registry is the first one.
import type { Registry } from 'prom-client';
import { FastHistogram, Tally, type HistogramSeries } from '../gateway/metrics.js';

const DURATION_BUCKETS = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600];
const TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536, 131072, 262144, 524288, 1048576];
const PICK_BUCKETS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];

/** Per-model series, bound once: observing is arithmetic, counting a Map lookup. */
export interface ModelMetrics {
  requests: { inc(): void };
  duration: { observe(v: number): void };
  ttft: { observe(v: number): void };
  inputTokens: { observe(v: number): void };
  outputTokens: { observe(v: number): void };
  cachedTokens: { observe(v: number): void };
  running: { inc(): void; dec(): void };
}

type ModelLabels = 'model_name' | 'target_model_name';
type StreamKind = 'picked' | 'header_only' | 'rejected' | 'aborted';

/** Several EppMetrics on one registry share one set of metrics (a family registers once). */
const perRegistry = new WeakMap<Registry, EppMetrics>();

/**
 * The picker's request accounting. prom-client validates and hashes label objects on every
 * call (several us each, ~8 per exchange), so the request path uses the gateway's Tally and
 * FastHistogram, which export the same text at scrape time.
 */
export class EppMetrics {
  private readonly byModel = new Map<string, ModelMetrics>();

  // Assigned in the constructor unless it returns the registry's existing instance.
  readonly requests!: Tally<ModelLabels>;
  readonly errors!: Tally<ModelLabels | 'error_code'>;
  readonly duration!: FastHistogram<ModelLabels>;
  readonly ttft!: FastHistogram<ModelLabels>;
  readonly inputTokens!: FastHistogram<ModelLabels>;
  readonly outputTokens!: FastHistogram<ModelLabels>;
  readonly cachedTokens!: FastHistogram<ModelLabels>;
  readonly running!: Tally<'model_name'>;
  readonly pickDuration!: FastHistogram<'result'>;
  readonly streams!: Tally<'kind'>;
  readonly pickOk!: HistogramSeries;
  readonly pickError!: HistogramSeries;
  readonly streamsBy!: Record<StreamKind, { inc(): void }>;

  constructor(registry: Registry) {
    const existing = perRegistry.get(registry);
    if (existing) return existing;
    const mt: ModelLabels[] = ['model_name', 'target_model_name'];
    this.requests = new Tally('inference_objective_request_total', 'Requests scheduled by the endpoint picker.', mt, registry);
    this.errors = new Tally('inference_objective_request_error_total', 'Requests answered with an error (picker ImmediateResponse or upstream status != 2xx).', [...mt, 'error_code'], registry);
    this.duration = new FastHistogram('inference_objective_request_duration_seconds', 'Request headers to response end, seconds.', DURATION_BUCKETS, registry);
    this.ttft = new FastHistogram('inference_objective_request_ttft_seconds', 'Request headers to the first response body byte, seconds.', DURATION_BUCKETS, registry);
    this.inputTokens = new FastHistogram('inference_objective_input_tokens', 'Prompt tokens reported in the response usage.', TOKEN_BUCKETS, registry);
    this.outputTokens = new FastHistogram('inference_objective_output_tokens', 'Completion tokens reported in the response usage.', TOKEN_BUCKETS, registry);
    this.cachedTokens = new FastHistogram('inference_objective_prompt_cached_tokens', 'Prompt tokens served from the prefix cache (usage.prompt_tokens_details.cached_tokens).', TOKEN_BUCKETS, registry);
    this.running = new Tally('inference_objective_running_requests', 'Requests picked and not yet completed.', ['model_name'], registry, 'gauge');
    this.pickDuration = new FastHistogram('kvrouter_extproc_pick_duration_seconds', 'End of request body to the routing answer on the ext-proc stream, seconds.', PICK_BUCKETS, registry);
    this.streams = new Tally('kvrouter_extproc_streams_total', 'ext-proc streams by how they ended: picked, header_only, rejected, aborted.', ['kind'], registry);
    this.pickOk = this.pickDuration.labelled('ok', () => ({ result: 'ok' }));
    this.pickError = this.pickDuration.labelled('error', () => ({ result: 'error' }));
    const kind = (k: StreamKind) => ({ inc: () => this.streams.add(k, () => ({ kind: k })) });
    this.streamsBy = { picked: kind('picked'), header_only: kind('header_only'), rejected: kind('rejected'), aborted: kind('aborted') };
    perRegistry.set(registry, this);
  }

  /** Counts an error answer (status as the error_code label). */
  error(model: string, target: string, status: number): void {
    this.errors.add(`${model}\u0000${target}\u0000${status}`, () => ({ model_name: model, target_model_name: target, error_code: String(status) }));
  }

  /** Series for one (model, target model) pair, created on first use. */
  forModel(model: string, target: string): ModelMetrics {
    const key = `${model}\u0000${target}`;
    let m = this.byModel.get(key);
    if (!m) {
      const l = () => ({ model_name: model, target_model_name: target });
      const runningLabels = () => ({ model_name: model });
      m = {
        requests: { inc: () => this.requests.add(key, l) },
        duration: this.duration.labelled(key, l),
        ttft: this.ttft.labelled(key, l),
        inputTokens: this.inputTokens.labelled(key, l),
        outputTokens: this.outputTokens.labelled(key, l),
        cachedTokens: this.cachedTokens.labelled(key, l),
        running: { inc: () => this.running.add(model, runningLabels, 1), dec: () => this.running.add(model, runningLabels, -1) },
      };
      // Bounded: model names come from clients (the series themselves stay, as prom-client's would).
      if (this.byModel.size < 1024) this.byModel.set(key, m);
    }
    return m;
  }
}
