// One simulated vLLM server (one data-parallel rank): HTTP API + engine + KV event publisher
// + metrics, with kill/restart for reliability tests.
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { Registry } from 'prom-client';
import pino, { type Logger } from 'pino';
import { Engine } from './engine.js';
import { BlockHasher, type HashAlgo } from './hashing.js';
import { RealClock, type SimClock } from './clock.js';
import { encodeEventBatch, versionFields, DEFAULT_EVENTS_FORMAT, type EventsFormat, type KvEvent } from './events.js';
import { MsgpackWriter } from './msgpack.js';
import { ZmqEventPublisher, offsetEndpointPort, resolveKvEventsConfig, type KVEventsConfig, type ReplayLayout, type ResolvedKVEventsConfig } from './publisher.js';
import { SimMetrics } from './metrics.js';
import { createHandler } from './http.js';
import { checkFaults, type FaultConfig } from './faults.js';
import { DEFAULT_PROFILE, PROFILES, type TimingModel } from './timing.js';
import { defaultTokenizers, tokenizeHandler, type TokenizerRegistryLike } from './tokenizer.js';

export interface SimPodOptions {
  /** HTTP port; 0 (default) picks a free one. With data parallelism rank r serves port + r. */
  port?: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  model: string;
  servedModelName?: string;
  blockSize?: number;
  numGpuBlocks?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  maxModelLen?: number;
  /** Wall seconds per model second (>1 slows the simulation so many pods fit on few cores). */
  timeScale?: number;
  /** vLLM's --kv-events-config (its field names and defaults). */
  kvEventsConfig?: KVEventsConfig;
  /** Sets the topic to llm-d's `kv@<host>:<port>@<model>` when kvEventsConfig.topic is unset. */
  llmdTopic?: boolean;
  /** Wire schema by vLLM version, and int vs bytes hashes. Default v0.24 map events, int hashes. */
  eventsFormat?: Partial<EventsFormat>;
  /** Replay reply layout (default post-45177, as vLLM v0.26). */
  replayLayout?: ReplayLayout;
  /** --prefix-caching-hash-algo (default sha256_cbor). */
  hashAlgo?: HashAlgo;
  /** PYTHONHASHSEED; unset means a random NONE_HASH per engine start, as vLLM. */
  pythonHashSeed?: string;
  dataParallelSize?: number;
  /** Run only this data-parallel rank (port and endpoints offset by it). */
  dataParallelRank?: number;
  /** Tokenizer registry for string prompts and chat (default: src/tokenize's, if present). */
  tokenizers?: TokenizerRegistryLike;
  /** LoRA adapters served besides the base model (vLLM --lora-modules names); ids 1..n. */
  loraModules?: string[];
  /** vLLM --max-loras (reported in vllm:lora_requests_info; default 1 with adapters, else 0). */
  maxLoras?: number;
  /** Named GPU + model defaults (see timing.ts PROFILES). */
  profile?: string;
  timing?: Partial<TimingModel>;
  faults?: FaultConfig;
  outputMode?: 'random' | 'echo';
  /**
   * cacheSnapshot() reports each cached block's token ids (tests). Off by default: a cached block
   * would keep its request's generated tokens alive.
   */
  keepBlockTokens?: boolean;
  /** usage.prompt_tokens_details.cached_tokens (vLLM --enable-prompt-tokens-details); default on. */
  enablePromptTokensDetails?: boolean;
  /** Prometheus registry for this pod (default: a fresh one). */
  registry?: Registry;
  logger?: Logger;
  /** Shared model-time clock (SimHost passes one); default a RealClock with timeScale. */
  clock?: SimClock;
  seed?: number;
}

export interface CacheSnapshotEntry {
  blockHash: bigint;
  /** Only when the pod was started with keepBlockTokens. */
  tokenIds: number[] | undefined;
  parent: bigint | null;
}

export interface SimPod {
  readonly url: string;
  readonly port: number;
  /** `127.0.0.1:<port>`: the pod identity the router uses. */
  readonly podId: string;
  readonly model: string;
  readonly servedModelName: string;
  readonly dataParallelRank: number;
  /** The topic frame of this pod's KV events. */
  readonly topic: string;
  /** The PUB endpoint actually bound/connected (wildcard ports resolved), or null if events are off. */
  readonly kvEventsEndpoint: string | null;
  readonly replayEndpoint: string | null;
  readonly registry: Registry;
  readonly engine: Engine;
  readonly clock: SimClock;
  /** All ranks when started with dataParallelSize > 1 (this pod is rank 0). */
  readonly ranks: SimPod[];
  /** Number of event batches published since the last (re)start. */
  readonly batchesPublished: number;
  close(): Promise<void>;
  /** Stops serving: HTTP connections are refused, the publisher closes, in-flight requests fail. */
  kill(): Promise<void>;
  /** Starts again on the same port and endpoints: cache empty, seq back to 0. */
  restart(): Promise<void>;
  cacheSnapshot(): CacheSnapshotEntry[];
}

export const LLMD_TOPIC_PREFIX = 'kv@';

/** llm-d's topic convention: `kv@<podIP>:<port>@<model>`. */
export function llmdTopic(podId: string, model: string): string {
  return `kv@${podId}@${model}`;
}

interface Resolved {
  blockSize: number;
  numGpuBlocks: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number;
  timing: TimingModel;
  kv: ResolvedKVEventsConfig;
  format: EventsFormat;
}

function resolve(opts: SimPodOptions): Resolved {
  const profileName = opts.profile ?? DEFAULT_PROFILE;
  const profile = PROFILES[profileName];
  if (profile === undefined) throw new Error(`unknown profile "${profileName}" (one of ${Object.keys(PROFILES).join(', ')})`);
  const blockSize = opts.blockSize ?? 16;
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new Error('blockSize must be a positive integer');
  const numGpuBlocks = opts.numGpuBlocks ?? Math.floor(profile.kvCacheTokens / blockSize);
  const maxModelLen = opts.maxModelLen ?? Math.min(profile.maxModelLen, (numGpuBlocks - 1) * blockSize);
  const timing = { ...profile.timing, ...(opts.timing ?? {}) };
  for (const [k, v] of Object.entries(timing)) if (!(typeof v === 'number' && v >= 0)) throw new Error(`timing.${k} must be a non-negative number`);
  return {
    blockSize,
    numGpuBlocks,
    maxNumSeqs: opts.maxNumSeqs ?? profile.maxNumSeqs,
    maxNumBatchedTokens: opts.maxNumBatchedTokens ?? profile.maxNumBatchedTokens,
    maxModelLen,
    timing,
    kv: resolveKvEventsConfig(opts.kvEventsConfig),
    format: { ...DEFAULT_EVENTS_FORMAT, ...(opts.eventsFormat ?? {}) },
  };
}

function newSimEngine(opts: SimPodOptions, r: Resolved, clock: SimClock, rank: number): Engine {
  const f = versionFields(r.format.version);
  const eventsOn = r.kv.enable_kv_cache_events && r.kv.publisher === 'zmq';
  return new Engine({
    blockSize: r.blockSize,
    numGpuBlocks: r.numGpuBlocks,
    maxNumSeqs: r.maxNumSeqs,
    maxNumBatchedTokens: r.maxNumBatchedTokens,
    maxModelLen: r.maxModelLen,
    timing: r.timing,
    hasher: new BlockHasher(opts.hashAlgo ?? 'sha256_cbor', opts.pythonHashSeed),
    eventsEnabled: eventsOn,
    eventFields: { medium: 'GPU', extraKeys: f.extraKeys, groupIdx: f.groupIdx ? 0 : null, kvCacheSpecKind: f.specKind ? 'full_attention' : null },
    clock,
    outputMode: opts.outputMode ?? 'random',
    keepBlockTokens: opts.keepBlockTokens,
    seed: opts.seed !== undefined ? opts.seed + rank : undefined,
  });
}

/**
 * The engine a pod started with `opts` would run, without its HTTP server or ZMQ publisher (the
 * virtual-time benchmark drives it directly), and the wire format of its KV events.
 */
export function createSimEngine(opts: SimPodOptions, clock: SimClock, rank = 0): { engine: Engine; format: EventsFormat; maxModelLen: number } {
  const r = resolve(opts);
  return { engine: newSimEngine(opts, r, clock, rank), format: r.format, maxModelLen: r.maxModelLen };
}

export class SimPodImpl implements SimPod {
  readonly opts: SimPodOptions;
  readonly model: string;
  readonly servedModelName: string;
  readonly dataParallelRank: number;
  readonly clock: SimClock;
  private readonly ownsClock: boolean;
  private readonly r: Resolved;
  private readonly log: Logger;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private publisher: ZmqEventPublisher | null = null;
  private metrics!: SimMetrics;
  registry: Registry;
  engine!: Engine;
  port = 0;
  private readonly host: string;
  topic = '';
  kvEventsEndpoint: string | null = null;
  replayEndpoint: string | null = null;
  ranks: SimPod[] = [];
  private readyAt = 0;
  private writer = new MsgpackWriter();
  private publisherBound: boolean | undefined;
  private tokenizersP: Promise<TokenizerRegistryLike | null>;

  constructor(opts: SimPodOptions, rank: number) {
    this.opts = opts;
    this.r = resolve(opts);
    checkFaults(opts.faults ?? {});
    this.model = opts.model;
    this.servedModelName = opts.servedModelName ?? opts.model;
    this.dataParallelRank = rank;
    this.host = opts.host ?? '127.0.0.1';
    this.ownsClock = opts.clock === undefined;
    this.clock = opts.clock ?? new RealClock(opts.timeScale ?? 1);
    this.registry = opts.registry ?? new Registry();
    this.log = opts.logger ?? pino({ level: process.env.LOG_LEVEL ?? 'warn' });
    this.tokenizersP = opts.tokenizers ? Promise.resolve(opts.tokenizers) : defaultTokenizers().then((t) => t?.registry ?? null);
  }

  get url(): string {
    return `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  get podId(): string {
    return `${this.host}:${this.port}`;
  }

  get batchesPublished(): number {
    return this.publisher?.batchesSent ?? 0;
  }

  private newEngine(): Engine {
    return newSimEngine(this.opts, this.r, this.clock, this.dataParallelRank);
  }

  private wireEngine(): void {
    this.engine.stalled = () => this.publisher !== null && this.publisher.full;
    this.engine.listener.onEvents = (events: KvEvent[]) => {
      if (this.publisher === null) return;
      const payload = encodeEventBatch(Date.now() / 1000, events, this.dataParallelRank, this.r.format, this.writer);
      this.publisher.publish(payload);
    };
  }

  private maxLoras(): number {
    return this.opts.maxLoras ?? ((this.opts.loraModules?.length ?? 0) > 0 ? 1 : 0);
  }

  private cacheInfo() {
    return {
      block_size: this.r.blockSize,
      num_gpu_blocks: this.r.numGpuBlocks,
      cache_dtype: 'auto',
      enable_prefix_caching: true,
      prefix_caching_hash_algo: this.opts.hashAlgo ?? 'sha256_cbor',
      gpu_memory_utilization: 0.9,
    };
  }

  async start(): Promise<void> {
    this.engine = this.newEngine();
    this.metrics = new SimMetrics(this.registry, this.servedModelName, this.dataParallelRank, this.engine, this.cacheInfo(), this.maxLoras());
    this.wireEngine();
    const basePort = this.opts.port ?? 0;
    await this.listen(basePort === 0 ? 0 : basePort + this.dataParallelRank);
    const kv = this.r.kv;
    this.topic = kv.topic !== '' || !this.opts.llmdTopic ? kv.topic : llmdTopic(this.podId, this.model);
    await this.startPublisher(
      offsetEndpointPort(kv.endpoint, this.dataParallelRank),
      kv.replay_endpoint === null ? null : offsetEndpointPort(kv.replay_endpoint, this.dataParallelRank),
    );
    this.readyAt = Date.now() + (this.opts.faults?.startupDelayMs ?? 0);
  }

  private async startPublisher(endpoint: string, replay: string | null): Promise<void> {
    const kv = this.r.kv;
    if (!(kv.enable_kv_cache_events && kv.publisher === 'zmq')) return;
    // Binding right after a kill can briefly find the port still held; retry for ~2 s.
    for (let attempt = 0; ; attempt++) {
      try {
        this.publisher = await ZmqEventPublisher.start({
          endpoint,
          replayEndpoint: replay,
          bufferSteps: kv.buffer_steps,
          hwm: kv.hwm,
          maxQueueSize: kv.max_queue_size,
          topic: this.topic,
          replayLayout: this.opts.replayLayout ?? 'post-45177',
          bind: this.publisherBound,
          logger: this.log,
        });
        break;
      } catch (err) {
        if (attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    this.kvEventsEndpoint = this.publisher.endpoint;
    this.publisherBound = this.publisher.bound;
    this.replayEndpoint = this.publisher.replayEndpoint;
  }

  private listen(port: number): Promise<void> {
    const server = createServer(
      { keepAlive: true },
      createHandler({
        model: this.model,
        servedModelName: this.servedModelName,
        maxModelLen: this.r.maxModelLen,
        loraModules: this.opts.loraModules ?? [],
        engine: () => this.engine,
        registry: () => this.registry,
        tokenizers: () => this.tokenizersP,
        tokenizeHandler: async () => (await tokenizeHandler()) ?? null,
        ready: () => Date.now() >= this.readyAt,
        faults: this.opts.faults ?? {},
        promptTokensDetails: this.opts.enablePromptTokensDetails ?? true,
        outputMode: this.opts.outputMode ?? 'random',
        now: () => this.clock.now(),
      }),
    );
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.host, () => {
        server.off('error', reject);
        const a = server.address();
        if (a !== null && typeof a === 'object') this.port = a.port;
        resolve();
      });
    });
  }

  async kill(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.engine.stop();
    this.publisher?.close();
    this.publisher = null;
    if (server !== null) {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of this.sockets) s.destroy();
      this.sockets.clear();
      await closed;
    }
  }

  async restart(): Promise<void> {
    await this.kill();
    this.registry.clear();
    this.engine = this.newEngine();
    this.metrics = new SimMetrics(this.registry, this.servedModelName, this.dataParallelRank, this.engine, this.cacheInfo(), this.maxLoras());
    this.wireEngine();
    await this.listen(this.port);
    // Same endpoints as before (wildcard ports were resolved at first start).
    await this.startPublisher(this.kvEventsEndpoint ?? this.r.kv.endpoint, this.replayEndpoint);
    this.readyAt = Date.now() + (this.opts.faults?.startupDelayMs ?? 0);
  }

  async close(): Promise<void> {
    await this.kill();
    if (this.ownsClock && this.clock instanceof RealClock) this.clock.close();
  }

  cacheSnapshot() {
    return this.engine.pool.snapshot();
  }

  /** Model time now (seconds). */
  modelTime(): number {
    return this.clock.now();
  }

}
