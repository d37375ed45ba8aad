// vLLM's Prometheus metrics (vllm/v1/metrics/loggers.py): names, types, labels (model_name,
// engine) and histogram buckets as vLLM exposes them. One Registry per pod.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Engine, EngineRequest } from './engine.js';

export const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
export const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
export const REQUEST_LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

export interface CacheConfigInfo {
  block_size: number;
  num_gpu_blocks: number;
  cache_dtype: string;
  enable_prefix_caching: boolean;
  prefix_caching_hash_algo: string;
  gpu_memory_utilization: number;
}

type L = 'model_name' | 'engine';

export class SimMetrics {
  readonly registry: Registry;
  private readonly labels: Record<L, string>;
  private readonly ttft;
  private readonly itl;
  private readonly tpot;
  private readonly e2e;
  private readonly queue;
  private readonly prefill;
  private readonly decode;
  private readonly inference;
  private readonly success: Counter<L | 'finished_reason'>;
  private readonly promptTokens;
  private readonly generationTokens;
  private readonly preemptions;
  private readonly queries;
  private readonly hits;
  private engine: Engine;

  constructor(registry: Registry, modelName: string, engineIndex: number, engine: Engine, cache: CacheConfigInfo, maxLoras = 0) {
    this.registry = registry;
    this.engine = engine;
    this.labels = { model_name: modelName, engine: String(engineIndex) };
    const labelNames: L[] = ['model_name', 'engine'];
    const registers = [registry];
    const labels = this.labels;
    const eng = (): Engine => this.engine;
    new Gauge({
      name: 'vllm:num_requests_running',
      help: 'Number of requests in model execution batches.',
      labelNames,
      registers,
      collect() {
        this.set(labels, eng().numRunning);
      },
    });
    new Gauge({
      name: 'vllm:num_requests_waiting',
      help: 'Number of requests waiting to be processed.',
      labelNames,
      registers,
      collect() {
        this.set(labels, eng().numWaiting);
      },
    });
    new Gauge({
      name: 'vllm:kv_cache_usage_perc',
      help: 'KV-cache usage. 1 means 100 percent usage.',
      labelNames,
      registers,
      collect() {
        this.set(labels, eng().pool.usage());
      },
    });
    const info = new Gauge({
      name: 'vllm:cache_config_info',
      help: 'Information of the LLMEngine CacheConfig',
      labelNames: [...Object.keys(cache), 'engine'],
      registers,
    });
    const infoLabels: Record<string, string> = { engine: String(engineIndex) };
    for (const [k, v] of Object.entries(cache)) infoLabels[k] = String(v);
    info.set(infoLabels, 1);
    new Gauge({
      name: 'vllm:lora_requests_info',
      help: 'Running stats on lora requests.',
      labelNames: ['max_lora', 'waiting_lora_adapters', 'running_lora_adapters'],
      registers,
      collect() {
        // vLLM keeps one series per observed label set; routers read the newest one.
        const l = eng().loraAdapters();
        this.reset();
        this.set({ max_lora: String(maxLoras), waiting_lora_adapters: l.waiting.join(','), running_lora_adapters: l.running.join(',') }, Date.now() / 1000);
      },
    });
    // Children are created up front so every series is exposed (at 0) from the first scrape.
    const counter = (name: string, help: string) => {
      const c = new Counter<L>({ name, help, labelNames, registers }).labels(this.labels);
      c.inc(0);
      return c;
    };
    this.promptTokens = counter('vllm:prompt_tokens_total', 'Number of prefill tokens processed.');
    this.generationTokens = counter('vllm:generation_tokens_total', 'Number of generation tokens processed.');
    this.preemptions = counter('vllm:num_preemptions_total', 'Cumulative number of preemption from the engine.');
    this.queries = counter('vllm:prefix_cache_queries_total', 'Prefix cache queries, in terms of number of queried tokens.');
    this.hits = counter('vllm:prefix_cache_hits_total', 'Prefix cache hits, in terms of number of cached tokens.');
    this.success = new Counter({ name: 'vllm:request_success_total', help: 'Count of successfully processed requests.', labelNames: ['model_name', 'engine', 'finished_reason'], registers });
    for (const reason of ['stop', 'length', 'abort']) this.success.inc({ ...this.labels, finished_reason: reason }, 0);
    const hist = (name: string, help: string, buckets: number[]) => {
      const h = new Histogram<L>({ name, help, labelNames, buckets, registers });
      h.zero(this.labels);
      return h.labels(this.labels);
    };
    this.ttft = hist('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', TTFT_BUCKETS);
    this.itl = hist('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', ITL_BUCKETS);
    this.tpot = hist('vllm:time_per_output_token_seconds', 'Histogram of time per output token in seconds.', ITL_BUCKETS);
    this.e2e = hist('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', REQUEST_LATENCY_BUCKETS);
    this.queue = hist('vllm:request_queue_time_seconds', 'Histogram of time spent in WAITING phase for request.', REQUEST_LATENCY_BUCKETS);
    this.prefill = hist('vllm:request_prefill_time_seconds', 'Histogram of time spent in PREFILL phase for request.', REQUEST_LATENCY_BUCKETS);
    this.decode = hist('vllm:request_decode_time_seconds', 'Histogram of time spent in DECODE phase for request.', REQUEST_LATENCY_BUCKETS);
    this.inference = hist('vllm:request_inference_time_seconds', 'Histogram of time spent in RUNNING phase for request.', REQUEST_LATENCY_BUCKETS);
    // Prompt/generation tokens are counted at the same points as the engine's totals.
    this.attach(engine);
  }

  /** Wires the engine's hooks (again after a restart replaced the engine). */
  attach(engine: Engine): void {
    this.engine = engine;
    let lastPrompt = engine.promptTokensTotal;
    let lastGen = engine.generationTokensTotal;
    engine.listener.onPrefixQuery = (q, h) => {
      this.queries.inc(q);
      this.hits.inc(h);
    };
    engine.listener.onPreemption = () => this.preemptions.inc();
    engine.listener.onStep = () => {
      // Flush token counters once per step rather than per token.
      if (engine.promptTokensTotal !== lastPrompt) this.promptTokens.inc(engine.promptTokensTotal - lastPrompt);
      if (engine.generationTokensTotal !== lastGen) this.generationTokens.inc(engine.generationTokensTotal - lastGen);
      lastPrompt = engine.promptTokensTotal;
      lastGen = engine.generationTokensTotal;
    };
    engine.listener.onFinish = (r) => this.finished(r);
    engine.listener.onTokens = (r, now) => this.tokens(r, now);
  }

  private tokens(r: EngineRequest, now: number): void {
    const last = r.lastTokenTime;
    if (last < 0) this.ttft.observe(now - r.arrival);
    else this.itl.observe(now - last);
    r.lastTokenTime = now;
  }

  private finished(r: EngineRequest): void {
    if (r.finishReason === 'abort') {
      this.success.inc({ ...this.labels, finished_reason: 'abort' });
      return;
    }
    this.success.inc({ ...this.labels, finished_reason: r.finishReason ?? 'length' });
    const arrival = r.arrival;
    this.e2e.observe(r.finished - arrival);
    if (r.firstScheduled >= 0) {
      this.queue.observe(r.firstScheduled - arrival);
      this.inference.observe(r.finished - r.firstScheduled);
      if (r.firstToken >= 0) this.prefill.observe(r.firstToken - r.firstScheduled);
    }
    if (r.firstToken >= 0) {
      this.decode.observe(r.finished - r.firstToken);
      if (r.outputCount > 1) this.tpot.observe((r.finished - r.firstToken) / (r.outputCount - 1));
    }
  }
}
