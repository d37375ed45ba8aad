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

export interface StrategyDef {
  name: string;
  label: string;
  /** Where it comes from, printed in reports. */
  description: string;
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

const approximateWith = (w: [number, number, number]) => () =>
  weighted(
    [{ type: 'prefix-cache-scorer' }, { type: 'queue-scorer' }, { type: 'kv-cache-utilization-scorer' }],
    { 'prefix-cache-scorer': w[0], 'queue-scorer': w[1], 'kv-cache-utilization-scorer': w[2] },
  );

export const STRATEGIES: StrategyDef[] = [
  {
    name: 'precise',
    label: 'precise (llm-d 2:1:1)',
    description: 'llm-d precise guide: precise-prefix-cache-scorer 2, kv-cache-utilization 1, queue 1, max-score-picker',
    usesKvEvents: true,
    config: preciseWith([2, 1, 1]),
  },
  {
    name: 'precise-3-2-2',
    label: 'precise (3:2:2)',
    description: 'llm-d 73-capacity blog weights: precise 3, kv-cache-utilization 2, queue 2',
    usesKvEvents: true,
    config: preciseWith([3, 2, 2]),
  },
  {
    name: 'approximate',
    label: 'approximate (GIE 3:2:2)',
    description:
      'GIE current default EPP profile (kubernetes-sigs/gateway-api-inference-extension, loader defaults; llm-d-router pkg/epp/config/loader/defaults.go): approximate prefix-cache-scorer (autoTune block size, partial last block hashed, 256 blocks) 3, queue 2, kv-cache-utilization 2',
    usesKvEvents: false,
    config: approximateWith([3, 2, 2]),
  },
  {
    name: 'approximate-1-1-1',
    label: 'approximate (blog 1:1:1)',
    description: 'llm-d 73-capacity blog approximate weights: prefix 1, kv-cache-utilization 1, queue 1',
    usesKvEvents: false,
    config: approximateWith([1, 1, 1]),
  },
  {
    name: 'load-only',
    label: 'load only',
    description: 'queue-scorer 1 + kv-cache-utilization-scorer 1 (no cache signal)',
    usesKvEvents: false,
    config: () =>
      weighted([{ type: 'queue-scorer' }, { type: 'kv-cache-utilization-scorer' }], { 'queue-scorer': 1, 'kv-cache-utilization-scorer': 1 }),
  },
  {
    name: 'random',
    label: 'random',
    description: 'random-picker, no scorers (a plain Kubernetes Service)',
    usesKvEvents: false,
    config: () => weighted([], {}, 'random-picker'),
  },
  {
    name: 'round-robin',
    label: 'round robin',
    description: 'round-robin-picker, no scorers',
    usesKvEvents: false,
    config: () => weighted([], {}, 'round-robin-picker'),
  },
  {
    name: 'sglang-cache-aware',
    label: 'SGLang cache_aware (re-impl.)',
    description:
      "Re-implementation of the SGLang router's cache_aware policy from its published algorithm (approximate radix tree, balance thresholds 64 / 1.5, cache_threshold 0.3); not SGLang code",
    usesKvEvents: false,
    config: () => weighted([{ type: 'sglang-cache-aware-scorer' }], { 'sglang-cache-aware-scorer': 1 }),
  },
  {
    name: 'dynamo-kv',
    label: 'Dynamo KV cost (re-impl.)',
    description:
      "Re-implementation of Dynamo's KV router cost function as ai-dynamo/dynamo docs/components/router/router-concepts.md (2026) defines it: cost = prefill_load_scale (1) x max(active prefill + request blocks - overlap credit (1) x cached blocks, 0) + active decode + incoming blocks, temperature 0 (argmin); overlap from the precise KV-event index; not Dynamo code",
    usesKvEvents: true,
    config: (ctx) =>
      weighted([precisePlugin(ctx), { type: 'dynamo-kv-scorer' }], { 'precise-prefix-cache-scorer': 0, 'dynamo-kv-scorer': 1 }),
  },
  {
    name: 'predicted-latency',
    label: 'kvrouter predicted latency',
    description:
      "kvrouter's predicted-latency-scorer (examples/predicted-latency.yaml): per-pod TTFT from queued prefill, uncached tokens in the precise index and the decode batch, a second copy's prefill charged once more, per-pod costs learned online; documented priors, no tuning to the simulator",
    usesKvEvents: true,
    config: (ctx) =>
      weighted([precisePlugin(ctx), { type: 'predicted-latency-scorer' }], { 'predicted-latency-scorer': 1 }),
  },
  ...peerStrategies(precisePlugin),
];

export const DEFAULT_STRATEGIES = ['precise', 'approximate', 'load-only', 'random', 'round-robin', 'sglang-cache-aware', 'dynamo-kv'];

export function strategyByName(name: string): StrategyDef {
  const s = STRATEGIES.find((x) => x.name === name);
  if (!s) throw new Error(`unknown strategy "${name}" (known: ${STRATEGIES.map((x) => x.name).join(', ')})`);
  return s;
}

export function strategyYaml(s: StrategyDef, ctx: StrategyContext): string {
  return stringify(s.config(ctx));
}
