// Routing strategies as EndpointPickerConfig documents: every strategy runs through the same
// router and scheduler, only the configuration differs.
import { stringify } from 'yaml';
import { peerStrategies } from './peers/strategies.js';

export interface StrategyContext {
  model: string;
  blockSize: number;
  /** ZMQ endpoint the router binds for KV events (pods connect to it). */
  zmqEndpoint: string;
  /** Simulator slow-down: model-time durations in the config are stretched by it. */
  timeScale?: number;
}

/** Where a strategy's configuration comes from (printed in reports). */
export interface StrategySource {
  /** owner/name of the upstream repository, or a site. */
  repository: string;
  /** File or page in it. */
  path: string;
  /** When the configuration was published or last checked (YYYY-MM or YYYY-MM-DD). */
  date: string;
}

export interface StrategyDef {
  name: string;
  label: string;
  /** What it is, printed in reports. */
  description: string;
  /** What it reproduces. */
  source: StrategySource;
  /** Needs the pods' KV events. */
  usesKvEvents: boolean;
  config(ctx: StrategyContext): Record<string, unknown>;
}

const API = 'llm-d.ai/v1alpha1';

export function precisePlugin(ctx: StrategyContext): Record<string, unknown> {
  return {
    type: 'precise-prefix-cache-scorer',
    parameters: {
      tokenProcessorConfig: { blockSize: ctx.blockSize, hashSeed: '42' },
      // llm-d's 2 s speculative TTL, in model time.
      speculativeTTL: `${2 * (ctx.timeScale ?? 1)}s`,
      indexerConfig: { tokenizersPoolConfig: { modelName: ctx.model }, kvBlockIndexConfig: { enableMetrics: true } },
      kvEventsConfig: { topicFilter: 'kv@', concurrency: 4, discoverPods: false, zmqEndpoint: ctx.zmqEndpoint },
    },
  };
}

export function weighted(plugins: Record<string, unknown>[], weights: Record<string, number>, picker = 'max-score-picker'): Record<string, unknown> {
  return {
    apiVersion: API,
    kind: 'EndpointPickerConfig',
    plugins: [...plugins, { type: picker }],
    schedulingProfiles: [
      {
        name: 'default',
        plugins: [...Object.entries(weights).map(([pluginRef, weight]) => ({ pluginRef, weight })), { pluginRef: picker }],
      },
    ],
  };
}

const preciseWith = (w: [number, number, number]) => (ctx: StrategyContext) =>
  weighted(
    [precisePlugin(ctx), { type: 'kv-cache-utilization-scorer' }, { type: 'queue-scorer' }],
    { 'precise-prefix-cache-scorer': w[0], 'kv-cache-utilization-scorer': w[1], 'queue-scorer': w[2] },
  );

const approximateWith = (w: [number, number, number], parameters?: Record<string, unknown>) => () =>
  weighted(
    [{ type: 'prefix-cache-scorer', ...(parameters ? { parameters } : {}) }, { type: 'queue-scorer' }, { type: 'kv-cache-utilization-scorer' }],
    { 'prefix-cache-scorer': w[0], 'queue-scorer': w[1], 'kv-cache-utilization-scorer': w[2] },
  );

// Sources, by what each strategy reproduces.
const LLMD_73: StrategySource = { repository: 'llm-d/llm-d-kv-cache', path: 'benchmarking/73-capacity/README.md', date: '2025-09' };
const LLMD_GUIDE: StrategySource = {
  repository: 'llm-d/llm-d',
  path: 'guides/precise-prefix-cache-aware (EndpointPickerConfig of the guide)',
  date: '2025-09',
};
const GIE_DEFAULT: StrategySource = {
  repository: 'kubernetes-sigs/gateway-api-inference-extension',
  path: 'default EPP scheduling profile (prefix 3, queue 2, kv-cache-utilization 2)',
  date: '2025-09',
};
const KVROUTER: StrategySource = { repository: 'kvrouter', path: 'src/bench/strategies.ts (control without a cache signal)', date: '2026-12' };

export const STRATEGIES: StrategyDef[] = [
  {
    name: 'precise',
    label: 'precise (llm-d 2:1:1)',
    description: 'llm-d precise guide: precise-prefix-cache-scorer 2, kv-cache-utilization 1, queue 1, max-score-picker',
    source: LLMD_GUIDE,
    usesKvEvents: true,
    config: preciseWith([2, 1, 1]),
  },
  {
    name: 'precise-3-2-2',
    label: 'precise (3:2:2)',
    description: "llm-d's 73-capacity run as published (blog 2025-09-24): precise-prefix-cache-scorer 3, kv-cache-utilization 2, queue 2, block 64, hash seed 42",
    source: LLMD_73,
    usesKvEvents: true,
    config: preciseWith([3, 2, 2]),
  },
  {
    name: 'precise-1-1-1',
    label: 'precise (1:1:1)',
    description:
      "the weight-controlled partner of approximate-llmd73: precise-prefix-cache-scorer 1, kv-cache-utilization 1, queue 1, so precise vs approximate measures the cache signal, not the weights",
    source: LLMD_73,
    usesKvEvents: true,
    config: preciseWith([1, 1, 1]),
  },
  {
    name: 'approximate',
    label: 'approximate (GIE 3:2:2)',
    description:
      'GIE current default EPP profile: approximate prefix-cache-scorer (autoTune block size, partial last block hashed, 256 blocks) 3, queue 2, kv-cache-utilization 2',
    source: GIE_DEFAULT,
    usesKvEvents: false,
    config: approximateWith([3, 2, 2]),
  },
  {
    name: 'approximate-1-1-1',
    label: 'approximate (blog 1:1:1)',
    description: 'llm-d 73-capacity blog approximate weights: prefix 1, kv-cache-utilization 1, queue 1 (prefix plugin at its defaults)',
    source: LLMD_73,
    usesKvEvents: false,
    config: approximateWith([1, 1, 1]),
  },
  {
    name: 'approximate-llmd73',
    label: 'approximate (llm-d 73, Sept 2025)',
    description:
      "GIE's prefix plugin exactly as llm-d benchmarked it in September 2025: autoTune off, hashBlockSize 64 characters, maxPrefixBlocksToMatch 256, lruCapacityPerServer 31,250; weights prefix 1, kv-cache-utilization 1, queue 1. Differences from GIE's code then: a 53-bit chained hash instead of xxhash64, and the trailing partial block is hashed (GIE dropped it)",
    source: LLMD_73,
    usesKvEvents: false,
    config: approximateWith([1, 1, 1], { autoTune: false, hashBlockSize: 64, maxPrefixBlocksToMatch: 256, lruCapacityPerServer: 31_250 }),
  },
  {
    name: 'load-only',
    label: 'load only',
    description: 'queue-scorer 1 + kv-cache-utilization-scorer 1 (no cache signal)',
    source: LLMD_73,
    usesKvEvents: false,
    config: () =>
      weighted([{ type: 'queue-scorer' }, { type: 'kv-cache-utilization-scorer' }], { 'queue-scorer': 1, 'kv-cache-utilization-scorer': 1 }),
  },
  {
    name: 'random',
    label: 'random',
    description: 'random-picker, no scorers (a plain Kubernetes Service)',
    source: LLMD_73,
    usesKvEvents: false,
    config: () => weighted([], {}, 'random-picker'),
  },
  {
    name: 'round-robin',
    label: 'round robin',
    description: 'round-robin-picker, no scorers',
    source: KVROUTER,
    usesKvEvents: false,
    config: () => weighted([], {}, 'round-robin-picker'),
  },
  {
    name: 'sglang-cache-aware',
    label: 'SGLang cache_aware (re-impl.)',
    description:
      "Re-implementation of the SGLang router's cache_aware policy from its published algorithm (approximate radix tree, balance thresholds 64 / 1.5, cache_threshold 0.3); not SGLang code",
    source: { repository: 'lightseekorg/smg', path: 'model_gateway/src/policies/cache_aware.rs', date: '2026' },
    usesKvEvents: false,
    config: () => weighted([{ type: 'sglang-cache-aware-scorer' }], { 'sglang-cache-aware-scorer': 1 }),
  },
  {
    name: 'dynamo-kv',
    label: 'Dynamo KV cost (re-impl.)',
    description:
      "Re-implementation of Dynamo's KV router cost function as its router docs define it: cost = prefill_load_scale (1) x max(active prefill + request blocks - overlap credit (1) x cached blocks, 0) + active decode + incoming blocks, temperature 0 (argmin); overlap from the precise KV-event index; not Dynamo code",
    source: { repository: 'ai-dynamo/dynamo', path: 'docs/components/router/router-concepts.md', date: '2026' },
    usesKvEvents: true,
    config: (ctx) =>
      weighted([precisePlugin(ctx), { type: 'dynamo-kv-scorer' }], { 'precise-prefix-cache-scorer': 0, 'dynamo-kv-scorer': 1 }),
  },
  {
    name: 'predicted-latency',
    label: 'kvrouter predicted latency',
    description:
      "kvrouter's predicted-latency-scorer (examples/predicted-latency.yaml): per-pod TTFT from queued prefill (or the observed admission pace when KV-bound), uncached tokens in the precise index and the decode batch, a second copy's prefill priced by congestion, KV fill and how often prefixes are reused, the decode side (own decode, the delay added to the pod's batch) with a new prefix group's home among the pods carrying the least committed prompt work while groups recur, per-pod costs learned online; documented priors",
    source: { repository: 'kvrouter', path: 'src/scheduler/plugins/predicted-latency/', date: '2026-12' },
    usesKvEvents: true,
    config: (ctx) =>
      weighted([precisePlugin(ctx), { type: 'predicted-latency-scorer' }], { 'predicted-latency-scorer': 1 }),
  },
  ...peerStrategies(precisePlugin),
];

export const DEFAULT_STRATEGIES = ['precise', 'approximate', 'load-only', 'random', 'round-robin', 'sglang-cache-aware', 'dynamo-kv'];

/** "repository, path (date)": a strategy's source as one line. */
export function sourceLine(s: StrategySource): string {
  return `${s.repository}, ${s.path} (${s.date})`;
}

export function strategyByName(name: string): StrategyDef {
  const s = STRATEGIES.find((x) => x.name === name);
  if (!s) throw new Error(`unknown strategy "${name}" (known: ${STRATEGIES.map((x) => x.name).join(', ')})`);
  return s;
}

export function strategyYaml(s: StrategyDef, ctx: StrategyContext): string {
  return stringify(s.config(ctx));
}
