// `precise-prefix-cache-scorer` (llm-d/llm-d-router pkg/epp/framework/plugins/scheduling/scorer/preciseprefixcache/, 2026): scores
// each endpoint by the longest run of leading blocks of the request that vLLM's own KV events
// say it holds. Owns the block index and the KV-event subscriber, as in llm-d.
//   score = tier-weighted leading blocks / floor(tokens / blockSize), clipped to [0,1]
// PreRequest: speculative entries for the chosen endpoint (TTL, default on in kvrouter).
import { z } from 'zod';
import type { Logger } from 'pino';
import { BlockKeyer, HASH_ALGORITHMS, type HashAlgorithm } from '../../index/keys.js';
import { createKvBlockIndex, type IndexFactoryConfig } from '../../index/factory.js';
import type { BlockKeys, KvBlockIndex, PrefixMatch } from '../../index/types.js';
import type { EndpointPickerConfig } from '../config.js';
import {
  KV_EVENT_SOURCE_FACTORY,
  KV_INDEX_PROVIDER,
  type KvEventSource,
  type KvIndexProvider,
  type PrefixScoreDetail,
} from '../kv-services.js';
import { parseParams } from './params.js';
import { parseDuration } from '../../util/duration.js';
import {
  PREFIX_MATCH_STATE,
  type CycleState,
  type Endpoint,
  type EndpointLifecycle,
  type InferenceRequest,
  type PluginContext,
  type PreRequest,
  type PrefixMatchInfo,
  type Scorer,
  type SchedulingResult,
} from '../types.js';

export const PRECISE_PREFIX_CACHE_SCORER = 'precise-prefix-cache-scorer';

const tokenProcessorSchema = z
  .object({
    blockSizeTokens: z.number().int().optional(),
    blockSize: z.number().int().optional(),
    hashSeed: z.union([z.string(), z.number()]).optional(),
    hashAlgorithm: z.enum(HASH_ALGORITHMS as [HashAlgorithm, ...HashAlgorithm[]]).optional(),
  })
  .loose();

const kvEventsSchema = z
  .object({
    zmqEndpoint: z.string().optional(),
    topicFilter: z.string().default('kv@'),
    concurrency: z.number().int().positive().default(4),
    engineType: z.enum(['vllm', 'sglang']).default('vllm'),
    discoverPods: z.boolean().optional(),
    podDiscoveryConfig: z
      .object({
        podLabelSelector: z.string().optional(),
        podNamespace: z.string().optional(),
        socketPort: z.number().int().positive().optional(),
        replaySocketPort: z.number().int().positive().optional(),
      })
      .loose()
      .optional(),
  })
  .loose();

const paramsSchema = z
  .object({
    tokenProcessorConfig: tokenProcessorSchema.default({}),
    indexerConfig: z
      .object({
        kvBlockIndexConfig: z.record(z.string(), z.unknown()).nullable().optional(),
        kvCacheBackendConfigs: z.array(z.object({ name: z.string(), weight: z.number().nonnegative() })).nullable().optional(),
        tokenizersPoolConfig: z.unknown().optional(),
      })
      .loose()
      .default({}),
    kvEventsConfig: kvEventsSchema.default({ topicFilter: 'kv@', concurrency: 4, engineType: 'vllm' }),
    // kvrouter's default is on (llm-d's example configs turn it on too).
    speculativeIndexing: z.boolean().default(true),
    speculativeTTL: z.union([z.string(), z.number()]).default('2s'),
  })
  .loose();

export type PrecisePrefixParams = z.infer<typeof paramsSchema>;

/** Label naming an endpoint's KV-event PUB socket when the router dials pods (discovery mode). */
export const KV_EVENTS_ENDPOINT_LABEL = 'kvrouter.io/kv-events-endpoint';
export const KV_EVENTS_REPLAY_LABEL = 'kvrouter.io/kv-events-replay-endpoint';

/** Router-level settings (CLI flags) that override the precise scorers' parameters. */
export interface PreciseScorerOverrides {
  /** kvEventsConfig.zmqEndpoint (e.g. a free port in tests, `--zmq-endpoint`). */
  zmqEndpoint?: string;
  /** speculativeIndexing, where the config leaves it unset. */
  speculativeIndexing?: boolean;
  /** indexerConfig.kvBlockIndexConfig.metricsLoggingInterval in ms (0 = off). */
  metricsBeatMs?: number;
}

/**
 * The config with `o` written into every precise-prefix-cache-scorer's parameters, so the
 * plugin reads all of its settings from its parameters (the router has no side channel into it).
 */
export function withPreciseScorerOverrides(config: EndpointPickerConfig, o: PreciseScorerOverrides): EndpointPickerConfig {
  if (o.zmqEndpoint === undefined && o.speculativeIndexing === undefined && o.metricsBeatMs === undefined) return config;
  const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  const plugins = config.plugins.map((spec) => {
    if (spec.type !== PRECISE_PREFIX_CACHE_SCORER) return spec;
    const p = { ...obj(spec.parameters) };
    if (o.zmqEndpoint !== undefined) p.kvEventsConfig = { ...obj(p.kvEventsConfig), zmqEndpoint: o.zmqEndpoint };
    if (o.speculativeIndexing !== undefined && p.speculativeIndexing === undefined) p.speculativeIndexing = o.speculativeIndexing;
    if (o.metricsBeatMs !== undefined) {
      const ic = obj(p.indexerConfig);
      ic.kvBlockIndexConfig = { ...obj(ic.kvBlockIndexConfig), metricsLoggingInterval: `${o.metricsBeatMs}ms` };
      p.indexerConfig = { ...obj(p.indexerConfig), ...ic };
    }
    return { ...spec, parameters: p };
  });
  return { ...config, plugins };
}

export class PrecisePrefixCacheScorer implements Scorer, PreRequest, EndpointLifecycle, KvIndexProvider {
  readonly needsTokens = true;
  readonly provides = [KV_INDEX_PROVIDER];
  readonly requires = [KV_EVENT_SOURCE_FACTORY];
  readonly keyer: BlockKeyer;
  readonly index: KvBlockIndex;
  readonly speculative: boolean;
  readonly speculativeTtlMs: number;
  readonly params: PrecisePrefixParams;
  readonly bindEndpoint: string | undefined;
  readonly discoverPods: boolean;
  private events: KvEventSource | undefined;
  private readonly keysByRequest = new WeakMap<InferenceRequest, BlockKeys>();
  private readonly log: Logger;
  private readonly warnedNoTokens = new Set<string>();

  constructor(
    readonly type: string,
    readonly name: string,
    raw: unknown,
    private readonly ctx: PluginContext,
  ) {
    const p = parseParams(paramsSchema, raw);
    this.params = p;
    const tp = p.tokenProcessorConfig;
    // llm-d: blockSizeTokens wins; the deprecated blockSize applies when it is unset or 0.
    const blockSize = tp.blockSizeTokens && tp.blockSizeTokens !== 0 ? tp.blockSizeTokens : (tp.blockSize ?? 16);
    if (!(blockSize > 0)) throw new Error(`tokenProcessorConfig.blockSizeTokens must be > 0, got ${blockSize}`);
    this.keyer = new BlockKeyer({ blockSize, hashSeed: tp.hashSeed === undefined ? '' : String(tp.hashSeed), algorithm: tp.hashAlgorithm ?? 'cbor-fnv' });
    this.speculative = p.speculativeIndexing;
    this.speculativeTtlMs = parseDuration(p.speculativeTTL, 'speculativeTTL');
    this.log = ctx.logger.child({ plugin: this.name });

    const ic = p.indexerConfig as IndexFactoryConfig;
    this.index = createKvBlockIndex(
      { kvBlockIndexConfig: ic.kvBlockIndexConfig, kvCacheBackendConfigs: ic.kvCacheBackendConfigs },
      { registry: ctx.registry, logger: ctx.logger, clock: ctx.clock },
    );

    const ke = p.kvEventsConfig;
    this.bindEndpoint = ke.zmqEndpoint || undefined;
    // llm-d: discoverPods defaults to true; a zmqEndpoint means central (bind) mode.
    this.discoverPods = ke.discoverPods ?? !this.bindEndpoint;
    ctx.services.provide(KV_INDEX_PROVIDER, this, `plugin "${name}"`);
  }

  get blockSize(): number {
    return this.keyer.blockSize;
  }

  /** Central mode: where pods must connect (the bound port when the config asked for port 0). */
  get eventsEndpoint(): string | undefined {
    return this.events?.boundEndpoint ?? this.bindEndpoint;
  }

  get podDiscovery(): { socketPort?: number; replaySocketPort?: number } | undefined {
    return this.params.kvEventsConfig.podDiscoveryConfig;
  }

  async start(): Promise<void> {
    const factory = this.ctx.services.require(KV_EVENT_SOURCE_FACTORY, `plugin "${this.name}"`);
    const ke = this.params.kvEventsConfig;
    this.events = factory({
      index: this.index,
      keyer: this.keyer,
      topicFilter: ke.topicFilter,
      bindEndpoint: this.bindEndpoint,
      concurrency: ke.concurrency,
      registry: this.ctx.registry,
      logger: this.ctx.logger,
      replay: { port: ke.podDiscoveryConfig?.replaySocketPort },
    });
    await this.events.start();
    if (this.bindEndpoint) this.log.info({ zmqEndpoint: this.bindEndpoint, topicFilter: ke.topicFilter }, 'listening for KV events (pods connect here)');
  }

  /**
   * Discovery mode: dial a pod's PUB socket (from its label, or ip:socketPort). Central mode:
   * the pod connects to us; accept its topic and note its replay endpoint (label, or
   * ip:replaySocketPort) so gaps and late joins are replayed in this mode too.
   */
  async endpointAdded(e: Endpoint): Promise<void> {
    if (!this.events) return;
    const port = this.params.kvEventsConfig.podDiscoveryConfig?.socketPort ?? 5557;
    const replayPort = this.params.kvEventsConfig.podDiscoveryConfig?.replaySocketPort;
    const host = e.address.includes(':') ? e.address.slice(0, e.address.lastIndexOf(':')) : e.address;
    const replay = e.labels[KV_EVENTS_REPLAY_LABEL] ?? (replayPort ? `tcp://${host}:${replayPort}` : undefined);
    if (!this.discoverPods) {
      await this.events.knowPod?.(e.address, replay);
      return;
    }
    if (!this.events.addPod) return;
    const endpoint = e.labels[KV_EVENTS_ENDPOINT_LABEL] ?? `tcp://${host}:${port}`;
    await this.events.addPod(e.address, endpoint, replay);
    this.log.info({ pod: e.address, endpoint }, 'Ensured KV-events subscriber');
  }

  async endpointRemoved(e: Endpoint): Promise<void> {
    if (!this.events?.removePod) return;
    await this.events.removePod(e.address);
    this.log.info({ pod: e.address }, 'Removed KV-events subscriber');
  }

  private async keysFor(req: InferenceRequest): Promise<BlockKeys | null> {
    const cached = this.keysByRequest.get(req);
    if (cached) return cached;
    const tokens = await req.getTokens();
    if (!tokens) {
      if (!this.warnedNoTokens.has(req.baseModel)) {
        this.warnedNoTokens.add(req.baseModel);
        this.log.warn({ model: req.baseModel }, 'no tokenizer for this model: precise prefix scores are 0');
      }
      return null;
    }
    const keys = this.keyer.keys(tokens, { model: req.baseModel, lora: req.lora ?? null, cacheSalt: req.cacheSalt ?? null });
    this.keysByRequest.set(req, keys);
    return keys;
  }

  /** Matched blocks per endpoint (pods without block 0 absent), and the request's full blocks. */
  async match(req: InferenceRequest, endpoints: readonly Endpoint[]): Promise<{ matches: Map<string, PrefixMatch>; totalBlocks: number; tokens: number; keys: BlockKeys | null }> {
    const keys = await this.keysFor(req);
    if (!keys || keys.length === 0) return { matches: new Map(), totalBlocks: 0, tokens: req.tokens?.length ?? 0, keys };
    const pods = new Set<string>();
    for (const e of endpoints) pods.add(e.address);
    const matches = await this.index.longestPrefix(keys, pods);
    return { matches, totalBlocks: keys.length, tokens: req.tokens?.length ?? 0, keys };
  }

  async score(state: CycleState, req: InferenceRequest, endpoints: Endpoint[]): Promise<number[]> {
    const { matches, totalBlocks } = await this.match(req, endpoints);
    const matched = new Map<string, number>();
    for (const [pod, m] of matches) matched.set(pod, m.blocks);
    state.set(PREFIX_MATCH_STATE, { matched, totalBlocks } satisfies PrefixMatchInfo);
    if (this.log.isLevelEnabled('debug')) {
      const scores = matches.size ? Object.fromEntries([...matches].map(([pod, m]) => [pod, m.weighted])) : null;
      this.log.debug(
        { 'x-request-id': req.requestId, model: req.model, resolvedTargetModel: req.targetModel, scores, totalBlocks },
        'Got pod scores',
      );
    }
    if (totalBlocks === 0) return endpoints.map(() => 0);
    return endpoints.map((e) => {
      const m = matches.get(e.address);
      return m ? Math.min(1, m.weighted / totalBlocks) : 0;
    });
  }

  /** The scoring API's view: every endpoint with its matched blocks and normalized score. */
  async detail(req: InferenceRequest, endpoints: readonly Endpoint[]): Promise<PrefixScoreDetail> {
    const { matches, totalBlocks, tokens } = await this.match(req, endpoints);
    return {
      model: req.model,
      tokens,
      totalBlocks,
      blockSize: this.blockSize,
      endpoints: endpoints.map((e) => {
        const m = matches.get(e.address);
        return {
          address: e.address,
          matchedBlocks: m?.blocks ?? 0,
          weightedBlocks: m?.weighted ?? 0,
          score: m && totalBlocks ? Math.min(1, m.weighted / totalBlocks) : 0,
        };
      }),
    };
  }

  /** Speculative indexing: the chosen (and any prefill) endpoint holds the blocks for a TTL. */
  async preRequest(req: InferenceRequest, result: SchedulingResult): Promise<void> {
    if (!this.speculative) return;
    const keys = this.keysByRequest.get(req);
    if (!keys || keys.length === 0) return;
    const chosen = result.targets[0];
    if (chosen) await this.index.addSpeculative(keys, chosen.address, this.speculativeTtlMs);
    const prefill = result.profileResults.get('prefill')?.targets[0];
    if (prefill && prefill !== chosen) await this.index.addSpeculative(keys, prefill.address, this.speculativeTtlMs);
  }

  async close(): Promise<void> {
    await this.events?.close();
    await this.index.close();
  }
}

/** `tokenizer` / `token-producer`: computes the request's tokens once, before the scorers. */
export class TokenProducer {
  constructor(
    readonly type: string,
    readonly name: string,
    raw: unknown,
  ) {
    parseParams(
      z
        .object({
          modelName: z.string().optional(),
          udsTokenizerConfig: z.unknown().optional(),
          vllm: z.unknown().optional(),
          timeout: z.union([z.string(), z.number()]).optional(),
        })
        .loose(),
      raw,
    );
  }
  async produce(_s: CycleState, req: InferenceRequest): Promise<void> {
    await req.getTokens();
  }
}
