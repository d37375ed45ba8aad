// KV-event subscriber: one ZeroMQ SUB socket that binds (central mode: every vLLM pod
// connects to the router) and/or dials each pod's PUB endpoint (discovery mode).
//
// Every publisher stream (topic + data-parallel rank) has its own promise chain, so one
// pod's batches apply strictly in order while pods never wait on each other. Per stream:
//  - seq gap (seq > last + 1): replay the missing range from the pod's replay ROUTER;
//    without one, count the missed batches and carry on;
//  - seq jumping beyond what the pod's replay buffer holds: not sent by that pod; skipped;
//  - seq back to 0: the engine restarted (vLLM's counter starts at 0); clear the pod. Any
//    other seq going back is counted and skipped: a stray or replayed message wipes nothing;
//  - first message with seq > 0: replay from 0 (the router joined late);
//  - BlockStored with an unknown parent: rebuild the parent chain from the replay buffer
//    and index it; count what cannot be recovered (llm-d silently drops these, #372).
// Live batches that arrive during a replay wait behind it in the stream's chain.
//
// Hostile input: vLLM's publisher has no authentication, so anyone who reaches the port can
// send. Every message is bounded before it costs anything (frame size and receive queue on the
// socket, msgpack structure before decoding: msgpack-guard.ts; a queued batch waits as bytes
// and is decoded at its turn, so a backlog is not a heap for the GC); when the endpoints are known
// (static list or discovery) only their topics are accepted; streams are bounded in number;
// ingest runs in slices of a few ms (ingest-budget.ts) and stops reading the socket while too
// much is queued, so HTTP keeps answering during any flood. Each rejection is counted in
// kvcache_events_decode_errors_total{kind} and logged once per stream.
import { Subscriber } from 'zeromq';
import { Registry } from 'prom-client';
import { pino, type Logger } from 'pino';
import type { KvBlockIndex } from '../index/types.js';
import { BlockKeyer, type KeyConfig } from '../index/keys.js';
import type { BlockStored, DecodedBatch, KvEvent } from './types.js';
import { decodeCheckedBatch, decodeEventBatch, DecodeError, peekEventBatch } from './decode.js';
import type { GuardLimits } from './msgpack-guard.js';
import { DecodeCost, DEFAULT_SLICE_MS, IngestBudget } from './ingest-budget.js';
import { realClock, type Clock } from '../util/clock.js';
import { parseTopic, podForRank, splitHostPort, offsetEndpointPort, type ParsedTopic } from './topic.js';
import { fetchReplayRange, readSeq, type ReplayedBatch } from './replay.js';
import { PodEventApplier, type ApplyOutcome } from './apply.js';
import { EventMetrics } from './metrics.js';

export interface ReplayConfig {
  /** Replay ROUTER endpoint per pod (the pod id as in the topic), e.g. "tcp://10.0.0.7:5600". */
  endpoints?: Record<string, string>;
  /** Derive `tcp://<pod host>:<port + rank>` for pods without a configured endpoint. */
  port?: number;
  timeoutMs?: number;
  idleTimeoutMs?: number;
  /** After a failed replay, do not ask that stream again for this long (default 30 s). */
  cooldownMs?: number;
  /** Concurrent replays per process (default 8). */
  maxConcurrent?: number;
  /** Replay from seq 0 when a stream's first message has seq > 0 (default true). */
  onJoin?: boolean;
}

/** Bounds on what the subscriber accepts and holds (defaults in DEFAULT_EVENT_LIMITS). */
export interface EventLimits {
  /** Largest frame the SUB socket accepts (ZMQ_MAXMSGSIZE; a bigger one drops that peer's connection). */
  maxMessageBytes: number;
  /** Messages ZeroMQ queues for the router (ZMQ_RCVHWM); beyond it the publishers' side drops. */
  receiveHighWaterMark: number;
  /** msgpack nesting depth of a batch. */
  maxDepth: number;
  /** Events in one batch. */
  maxEventsPerBatch: number;
  /** Topic frame length. */
  maxTopicBytes: number;
  /** Streams (topic pod + model + rank) tracked at once. */
  maxStreams: number;
  /** Streams per topic pod (models x data-parallel ranks). */
  maxStreamsPerPod: number;
  /** Payload bytes received but not yet applied; beyond it the socket is not read. */
  maxQueuedBytes: number;
  /** Longest stretch ingest holds the event loop before yielding. */
  sliceMs: number;
}

export const DEFAULT_EVENT_LIMITS: EventLimits = {
  // Decoding costs ~6-10 ms per MB here; vLLM's per-step batches are far smaller (tokens per
  // step are bounded by max_num_batched_tokens).
  maxMessageBytes: 1 << 20,
  // ZeroMQ counts messages, not bytes: 256 x 1 MiB bounds what a flood parks in the router
  // (vLLM batches are usually a few kB, so this still absorbs bursts of many pods)
  receiveHighWaterMark: 256,
  maxDepth: 8,
  maxEventsPerBatch: 65_536,
  maxTopicBytes: 1024,
  maxStreams: 1024,
  maxStreamsPerPod: 64,
  maxQueuedBytes: 32 << 20,
  sliceMs: DEFAULT_SLICE_MS,
};

export interface SubscriberOptions {
  index: KvBlockIndex;
  keyer: BlockKeyer | Partial<KeyConfig>;
  /** ZMQ prefix subscription (default "kv@"). */
  topicFilter?: string;
  /** Central mode: bind here, e.g. "tcp://*:5557". */
  bindEndpoint?: string;
  /** Accepted for llm-d config compatibility; streams are already independent ordered chains. */
  concurrency?: number;
  registry?: Registry;
  logger?: Logger;
  replay?: ReplayConfig;
  /** Model for topics without a model part. */
  defaultModel?: string;
  limits?: Partial<EventLimits>;
  /** Measures ingest slices, replay cooldowns and replay-history age (default: real time). */
  clock?: Clock;
}

interface Stream {
  key: string;
  topicPod: string;
  pod: string;
  model: string;
  rank: number | null;
  last: number | null;
  chain: Promise<void>;
  depth: number;
  applier: PodEventApplier;
  cooldownUntil: number;
  history: { upTo: number; at: number; batches: ReplayedBatch[] } | null;
  /** Highest seq applied from a replay: live copies of those batches are duplicates. */
  replayedTo: number;
  /** Payload bytes queued on this stream. */
  bytes: number;
  /**
   * The pod's replay endpoint serves another topic (a second model under a known pod: forged,
   * or misconfigured): its batches are not this stream's, so it is never asked for this one.
   */
  replayForeign: boolean;
}

/** What the index says it lost (src/index/redis-index.ts 'resync-needed'); no pods = all. */
export interface ResyncRequest {
  reason?: string;
  pods?: readonly string[];
}

/** A batch as queued: decoded, or its checked payload and the rank its envelope names. */
type Pending = DecodedBatch | { payload: Uint8Array; dataParallelRank: number | null };

/** Metric pod label of messages whose topic names no known endpoint. */
const UNKNOWN = '_unknown';
const MAX_WARNED = 10_000;
const MAX_CACHED_TOPICS = 4096;

export const DEFAULT_TOPIC_FILTER = 'kv@';
export const DEFAULT_BIND_ENDPOINT = 'tcp://*:5557';

export class KvEventSubscriber {
  readonly metrics: EventMetrics;
  private readonly index: KvBlockIndex;
  private readonly keyer: BlockKeyer;
  private readonly log: Logger;
  private readonly topicFilter: string;
  private readonly replayCfg: ReplayConfig;
  private readonly clock: Clock;
  private readonly streams = new Map<string, Stream>();
  private readonly podEndpoints = new Map<string, string>();
  private readonly replayEndpoints = new Map<string, string>();
  private readonly warned = new Set<string>();
  private readonly topics = new Map<string, ParsedTopic & { topic: string }>();
  private warnedFull = false;
  /** Pods whose topics are accepted (dialed, or known endpoints in central mode); empty = any. */
  private readonly known = new Set<string>();
  private readonly streamsPerPod = new Map<string, number>();
  readonly limits: EventLimits;
  private readonly guard: GuardLimits;
  private readonly budget: IngestBudget;
  /** Learned costs per byte: the structural check on arrival, the decode at a batch's turn. */
  private readonly checkCost = new DecodeCost();
  private readonly decodeCost = new DecodeCost();
  private queuedBytes = 0;
  private drainWaiter: (() => void) | null = null;
  private sock: Subscriber | null = null;
  private loop: Promise<void> | null = null;
  private watcher: Promise<void> | null = null;
  private closed = false;
  private replaysRunning = 0;
  private readonly replayWaiters: (() => void)[] = [];
  private _boundEndpoint: string | undefined;
  private unhookResync: (() => void) | null = null;

  constructor(private readonly opts: SubscriberOptions) {
    this.index = opts.index;
    this.keyer = opts.keyer instanceof BlockKeyer ? opts.keyer : new BlockKeyer(opts.keyer);
    this.log = (opts.logger ?? pino({ level: 'info' })).child({ component: 'kv-events' });
    this.topicFilter = opts.topicFilter ?? DEFAULT_TOPIC_FILTER;
    this.replayCfg = opts.replay ?? {};
    this.clock = opts.clock ?? realClock;
    for (const [pod, ep] of Object.entries(this.replayCfg.endpoints ?? {})) this.replayEndpoints.set(pod, ep);
    this.metrics = new EventMetrics(opts.registry ?? new Registry());
    this.limits = { ...DEFAULT_EVENT_LIMITS, ...(opts.limits ?? {}) };
    this.guard = { maxDepth: this.limits.maxDepth, maxEvents: this.limits.maxEventsPerBatch };
    this.budget = new IngestBudget(this.limits.sliceMs, opts.clock);
    // A shared backend (Redis) that lost writes or restarted asks for a resync of the pods
    // whose data it lost (all of them when it cannot tell).
    const emitter = this.index as unknown as { on?: (ev: string, fn: (info: unknown) => void) => unknown; off?: (ev: string, fn: (info: unknown) => void) => unknown };
    if (typeof emitter.on === 'function' && typeof emitter.off === 'function') {
      const fn = (info: unknown) => this.resync(info as ResyncRequest | undefined);
      emitter.on('resync-needed', fn);
      this.unhookResync = () => emitter.off!('resync-needed', fn);
    }
  }

  /**
   * The index lost what it held for `pods` (all pods when absent): each affected stream with a
   * replay endpoint is cleared and rebuilt from its pod's replay buffer. A pod without one keeps
   * what the index still has (clearing it would only lose more); the loss is logged.
   */
  resync(req?: ResyncRequest): void {
    const pods = Array.isArray(req?.pods) ? new Set(req.pods) : null;
    // The index is cleared per pod, so all streams of one pod (DP ranks, other topics under it)
    // are rebuilt by one task: clear once, then replay each stream. Separate per-stream tasks
    // would race, one stream's clear wiping what another had just replayed.
    const byPod = new Map<string, Stream[]>();
    for (const s of this.streams.values()) {
      if (pods && !pods.has(s.pod)) continue;
      const group = byPod.get(s.pod);
      if (group) group.push(s);
      else byPod.set(s.pod, [s]);
    }
    let n = 0;
    for (const [pod, group] of byPod) {
      n += group.length;
      const queued = Promise.all(group.map((s) => s.chain));
      const task = queued
        .then(() => this.resyncPod(group))
        .catch((err) => this.warnOnce(pod, 'resync', 'resync failed', err));
      for (const s of group) s.chain = task;
    }
    this.log.warn({ reason: req?.reason, streams: n }, 'index lost data: rebuilding the affected pods from their replay buffers');
  }

  /** Same as resync() for every stream (kept for callers of the earlier name). */
  resyncAll(reason?: unknown): void {
    this.resync({ reason: typeof reason === 'string' ? reason : (reason as ResyncRequest | undefined)?.reason });
  }

  /** Rebuilds one pod's streams (same pod) from their replay buffers, clearing the pod once. */
  private async resyncPod(group: Stream[]): Promise<void> {
    if (this.closed) return;
    const fetched: { s: Stream; got: ReplayedBatch[]; until: number }[] = [];
    for (const s of group) {
      // a stream whose pod's replay buffer is another topic's loses what the clear wipes
      if (s.last === null || s.replayForeign) continue;
      if (!this.replayEndpointFor(s)) {
        this.warnOnce(s.pod, 'resync', 'the index lost data of this pod and it has no replay endpoint: keeping what the index still holds');
        return;
      }
      const got = await this.fetch(s, 0, s.last + 1);
      if (got === null) return; // counted and logged by fetch; keep what the index holds
      if (s.replayForeign) continue; // learnt just now
      fetched.push({ s, got, until: s.last + 1 });
    }
    if (fetched.length === 0) return;
    for (const { s } of fetched) {
      s.applier.reset();
      s.history = null;
      s.last = null;
    }
    for (const s of group) if (s.replayForeign) s.applier.reset();
    await this.index.clear(group[0].pod);
    for (const { s, got, until } of fetched) await this.applyReplayed(s, got, 0, until);
  }

  /** Central mode: accept this pod's topic (and use its replay endpoint) without dialing it. */
  knowPod(podId: string, replayEndpoint?: string): void {
    this.known.add(podId);
    if (replayEndpoint) this.replayEndpoints.set(podId, replayEndpoint);
  }

  /** The actual bound endpoint in central mode (port resolved when binding port 0). */
  get boundEndpoint(): string | undefined {
    return this._boundEndpoint;
  }

  async start(): Promise<void> {
    if (this.sock) return;
    const sock = new Subscriber({ linger: 0, receiveHighWaterMark: this.limits.receiveHighWaterMark, maxMessageSize: this.limits.maxMessageBytes });
    sock.subscribe(this.topicFilter);
    this.sock = sock;
    if (this.opts.bindEndpoint) {
      await sock.bind(this.opts.bindEndpoint);
      this._boundEndpoint = sock.lastEndpoint ?? this.opts.bindEndpoint;
      this.log.info({ endpoint: this._boundEndpoint, topicFilter: this.topicFilter }, 'kv-events subscriber bound (central mode)');
    }
    for (const [pod, ep] of this.podEndpoints) this.dial(pod, ep);
    this.loop = this.receiveLoop(sock);
    this.watcher = this.watchConnections(sock);
  }

  /**
   * Counts publisher connections that close. ZeroMQ drops a connection that sends a frame over
   * maxMessageBytes before any byte of it reaches us, and that is the only trace of such a frame
   * (the pod's lost batches then show as seq gaps and are replayed where it can); a pod going
   * away looks the same, so this counts both and logs each address once.
   */
  private async watchConnections(sock: Subscriber): Promise<void> {
    try {
      for await (const ev of sock.events) {
        if (ev.type !== 'disconnect') continue;
        this.metrics.disconnects.inc();
        this.metrics.totals.disconnects++;
        this.warnOnce(ev.address, 'disconnect', `a kv-events publisher connection closed (the pod went away, or sent a frame over ${this.limits.maxMessageBytes} bytes); further ones are only counted`);
      }
    } catch (err) {
      if (!this.closed) this.log.warn({ err }, 'kv-events connection watcher stopped');
    }
  }

  /** Discovery mode: dial a pod's PUB endpoint (and remember its replay endpoint). */
  addPod(podId: string, endpoint: string, replayEndpoint?: string): void {
    const prev = this.podEndpoints.get(podId);
    if (prev === endpoint && (!replayEndpoint || this.replayEndpoints.get(podId) === replayEndpoint)) return;
    if (prev && this.sock) this.safeDisconnect(prev);
    this.podEndpoints.set(podId, endpoint);
    this.known.add(podId);
    if (replayEndpoint) this.replayEndpoints.set(podId, replayEndpoint);
    if (this.sock) this.dial(podId, endpoint);
  }

  /** Stops listening to a pod and forgets its blocks. */
  removePod(podId: string): void {
    const ep = this.podEndpoints.get(podId);
    if (ep && this.sock) this.safeDisconnect(ep);
    this.podEndpoints.delete(podId);
    this.replayEndpoints.delete(podId);
    this.known.delete(podId);
    const pods = new Set<string>();
    for (const [k, s] of this.streams) {
      // Match the endpoint, not the topic: data-parallel rank r is its own endpoint (ip:port+r)
      // although it publishes under rank 0's topic.
      if (s.pod !== podId) continue;
      this.dropStream(k, s);
      pods.add(s.pod);
      s.chain = s.chain.then(() => this.index.clear(s.pod)).catch((err) => this.warnOnce(s.pod, 'clear', 'clearing a removed pod failed', err));
    }
    if (pods.size === 0) void Promise.resolve(this.index.clear(podId)).catch((err) => this.warnOnce(podId, 'clear', 'clearing a removed pod failed', err));
  }

  private dial(pod: string, endpoint: string): void {
    try {
      this.sock!.connect(endpoint);
      this.log.info({ pod, endpoint }, 'dialing pod kv-events endpoint');
    } catch (err) {
      this.warnOnce(pod, 'dial', `cannot dial ${endpoint}`, err);
    }
  }

  private safeDisconnect(endpoint: string): void {
    try {
      this.sock!.disconnect(endpoint);
    } catch {
      // not connected (yet): nothing to undo
    }
  }

  private async receiveLoop(sock: Subscriber): Promise<void> {
    try {
      for await (const frames of sock) {
        // checking one message cannot be cut: start it in a fresh slice if it would overrun this one
        if (frames.length === 3) await this.budget.yieldIfSpent(this.checkCost.estimateMs(frames[2].length));
        try {
          void this.onFrames(frames);
        } catch (err) {
          // onFrames counts everything it rejects; this is a last line of defence
          this.warnOnce('_loop', 'loop', 'unexpected error handling a message', err);
        }
        // a flood must not hold the loop, nor queue more than the bound: stop reading until
        // the streams catch up (ZeroMQ queues up to its high-water mark, then drops)
        await this.budget.yieldIfSpent();
        if (this.queuedBytes > this.limits.maxQueuedBytes) {
          const t0 = this.clock.now();
          this.metrics.receivePauses.inc();
          this.metrics.totals.receivePauses++;
          await new Promise<void>((r) => (this.drainWaiter = r));
          this.metrics.receivePausedSeconds.inc((this.clock.now() - t0) / 1000);
        }
      }
    } catch (err) {
      if (!this.closed) this.log.error({ err }, 'kv-events receive loop stopped');
    }
  }

  /**
   * Handles one raw multipart message [topic, seq, payload]. Never throws for bad input.
   * Returns the promise of its batch being applied (nothing when rejected), for callers that
   * must wait for this message alone: flush() waits for every stream.
   */
  onFrames(frames: Uint8Array[]): Promise<void> | void {
    this.metrics.totals.messages++;
    if (frames.length > 0 && frames[0].length > this.limits.maxTopicBytes) {
      this.metrics.countMessage(UNKNOWN);
      return this.reject(UNKNOWN, 'topic', `topic of ${frames[0].length} bytes (limit ${this.limits.maxTopicBytes})`);
    }
    const t = frames.length > 0 ? this.topicOf(frames[0]) : { ...parseTopic(''), topic: '' };
    if (!this.accepts(t.pod)) {
      this.metrics.countMessage(UNKNOWN);
      // logged once for all of them: invented topics are unbounded
      return this.reject(UNKNOWN, 'unknown_topic', `topic of an unknown endpoint (this and any later ones are only counted): ${JSON.stringify(t.topic.slice(0, 200))}`);
    }
    this.metrics.countMessage(this.metrics.label(t.pod));
    if (frames.length !== 3) return this.reject(t.pod, 'frames', `message with ${frames.length} frames (expected 3)`);
    if (frames[1].length !== 8) return this.reject(t.pod, 'seq', `seq frame of ${frames[1].length} bytes (expected 8)`);
    const seq = readSeq(frames[1]);
    // Only the envelope is read now: the payload waits as bytes (not as a heap of decoded
    // objects the GC would have to walk on every pause) and is decoded when its turn comes.
    let peeked: ReturnType<typeof peekEventBatch>;
    const t0 = this.clock.now();
    try {
      peeked = peekEventBatch(frames[2], this.guard);
    } catch (err) {
      return this.reject(t.pod, err instanceof DecodeError ? err.kind : 'payload', (err as Error).message);
    } finally {
      this.checkCost.observe(frames[2].length, this.clock.now() - t0);
    }
    const batch: Pending = peeked.decoded ?? { payload: frames[2], dataParallelRank: peeked.dataParallelRank };
    return this.enqueue(t.pod, t.model || (this.opts.defaultModel ?? ''), seq, batch, frames[2].length);
  }

  /**
   * The topic frame parsed; the same few topics arrive over and over, so parses are kept by
   * topic string (bounded: cleared when full, as invented topics are unbounded). The frame is
   * read through a view, not copied.
   */
  private topicOf(frame: Uint8Array): ParsedTopic & { topic: string } {
    const topic = (Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength)).toString('utf8');
    let t = this.topics.get(topic);
    if (t === undefined) {
      if (this.topics.size >= MAX_CACHED_TOPICS) this.topics.clear();
      t = { ...parseTopic(topic), topic };
      this.topics.set(topic, t);
    }
    return t;
  }

  /** A queued batch decoded at its turn (null: rejected, counted and logged); a promise only when it must wait for a new slice. */
  private decodeAtTurn(s: Stream, batch: Pending): DecodedBatch | null | Promise<DecodedBatch | null> {
    if (!('payload' in batch)) return batch;
    // decoding one message cannot be cut: start it in a fresh slice if it would overrun this one
    const cost = this.decodeCost.estimateMs(batch.payload.length);
    if (this.budget.mustYield(cost)) return this.budget.yieldIfSpent(cost).then(() => this.decodeNow(s, batch.payload));
    return this.decodeNow(s, batch.payload);
  }

  private decodeNow(s: Stream, payload: Uint8Array): DecodedBatch | null {
    const t0 = this.clock.now();
    try {
      return decodeCheckedBatch(payload);
    } catch (err) {
      this.reject(s.topicPod, err instanceof DecodeError ? err.kind : 'payload', (err as Error).message);
      return null;
    } finally {
      this.decodeCost.observe(payload.length, this.clock.now() - t0);
    }
  }

  /** Whether messages of this topic pod are taken: any while no endpoint is known. */
  private accepts(topicPod: string): boolean {
    return this.known.size === 0 || this.known.has(topicPod);
  }

  /** Counts and logs (once per pod and kind) a rejected message. */
  private reject(pod: string, kind: string, msg: string): void {
    this.metrics.decodeErrors.inc({ pod: pod === UNKNOWN ? UNKNOWN : this.metrics.label(pod), kind });
    this.metrics.totals.decodeErrors++;
    this.warnOnce(pod, `decode:${kind}`, `rejected kv-events message: ${msg}`);
  }

  /**
   * Socket-free ingestion: applies one batch of `pod` (as named in the topic) with the same
   * sequence tracking as live messages. Resolves once applied; a payload that does not
   * decode is counted and rejects with a DecodeError.
   */
  applyBatch(pod: string, model: string, seq: number, batch: DecodedBatch | Uint8Array): Promise<void> {
    let b: DecodedBatch;
    if (batch instanceof Uint8Array) {
      try {
        b = decodeEventBatch(batch, this.guard);
      } catch (err) {
        this.reject(pod, err instanceof DecodeError ? err.kind : 'payload', (err as Error).message);
        return Promise.reject(err instanceof DecodeError ? err : new DecodeError(String(err)));
      }
    } else b = batch;
    this.metrics.countMessage(this.metrics.label(pod));
    this.metrics.totals.messages++;
    return this.enqueue(pod, model, seq, b);
  }

  /** Resolves when every batch received so far has been applied. */
  async flush(): Promise<void> {
    for (;;) {
      const chains = [...this.streams.values()].map((s) => s.chain);
      await Promise.all(chains);
      if ([...this.streams.values()].every((s) => s.depth === 0)) return;
    }
  }

  private enqueue(topicPod: string, model: string, seq: number, batch: Pending, bytes = 0): Promise<void> {
    const rank = batch.dataParallelRank;
    const key = `${topicPod}\u0000${model}\u0000${rank ?? 0}`;
    let s = this.streams.get(key);
    if (!s) {
      const perPod = this.streamsPerPod.get(topicPod) ?? 0;
      if (this.streams.size >= this.limits.maxStreams || perPod >= this.limits.maxStreamsPerPod) {
        const which = this.streams.size >= this.limits.maxStreams ? `${this.limits.maxStreams} streams` : `${this.limits.maxStreamsPerPod} streams for this pod`;
        this.reject(topicPod, 'streams_full', `already tracking ${which}; model ${JSON.stringify(model.slice(0, 100))} rank ${rank ?? 0} ignored`);
        return Promise.resolve();
      }
      const pod = podForRank(topicPod, rank);
      s = { key, topicPod, pod, model, rank, last: null, chain: Promise.resolve(), depth: 0, applier: new PodEventApplier(this.index, this.keyer, pod), cooldownUntil: 0, history: null, replayedTo: -1, bytes: 0, replayForeign: false };
      this.streams.set(key, s);
      this.streamsPerPod.set(topicPod, perPod + 1);
    }
    const st = s;
    st.depth++;
    st.bytes += bytes;
    this.queuedBytes += bytes;
    this.metrics.queued(this.metrics.label(st.pod), 1);
    // two promises per message (then, then), not the five of then/catch/finally
    const done = () => {
      st.depth--;
      st.bytes -= bytes;
      this.unqueue(bytes);
      this.metrics.queued(this.metrics.label(st.pod), -1);
    };
    const p = st.chain
      .then(() => this.handle(st, seq, batch))
      .then(done, (err: unknown) => {
        this.warnOnce(st.pod, 'apply', 'failed to apply a kv-events batch', err);
        done();
      });
    st.chain = p;
    return p;
  }

  private unqueue(bytes: number): void {
    this.queuedBytes -= bytes;
    if (this.drainWaiter && this.queuedBytes <= this.limits.maxQueuedBytes / 2) {
      const w = this.drainWaiter;
      this.drainWaiter = null;
      w();
    }
  }

  private dropStream(key: string, s: Stream): void {
    this.streams.delete(key);
    const n = (this.streamsPerPod.get(s.topicPod) ?? 1) - 1;
    if (n > 0) this.streamsPerPod.set(s.topicPod, n);
    else this.streamsPerPod.delete(s.topicPod);
  }

  private replayEndpointFor(s: Stream): string | null {
    if (s.replayForeign) return null;
    const configured = this.replayEndpoints.get(s.topicPod) ?? this.replayEndpoints.get(s.pod);
    if (configured) return offsetEndpointPort(configured, s.rank ?? 0);
    if (this.replayCfg.port) {
      const { host } = splitHostPort(s.topicPod);
      if (!host) return null;
      const h = host.includes(':') ? `[${host}]` : host;
      return `tcp://${h}:${this.replayCfg.port + (s.rank ?? 0)}`;
    }
    return null;
  }

  /**
   * One queued batch at its turn. The common case (decoded without waiting for a slice, next in
   * sequence, applied to an in-memory index) runs without a promise of its own.
   */
  private handle(s: Stream, seq: number, pending: Pending): Promise<void> | void {
    if (this.closed) return;
    const decoded = this.decodeAtTurn(s, pending);
    if (decoded instanceof Promise) return decoded.then((batch) => this.handleDecoded(s, seq, batch));
    return this.handleDecoded(s, seq, decoded);
  }

  private handleDecoded(s: Stream, seq: number, batch: DecodedBatch | null): Promise<void> | void {
    if (batch === null || this.closed) return;
    if (s.last !== null && seq === s.last + 1) return this.applyOne(s, seq, batch); // in order
    return this.handleSeq(s, seq, batch);
  }

  /** A batch that starts a stream or is not the next in sequence: join, gap, restart, or a step back. */
  private async handleSeq(s: Stream, seq: number, batch: DecodedBatch): Promise<void> {
    const label = this.metrics.label(s.pod);
    if (s.last === null) {
      if (seq > 0 && this.replayCfg.onJoin !== false && this.replayEndpointFor(s)) await this.replayInto(s, 0, seq);
      else if (seq > 0) this.log.info({ pod: s.pod, seq }, 'joined kv-events stream mid-way; earlier blocks stay unknown');
    } else if (seq === s.last + 1) {
      // in order
    } else if (seq > s.last + 1) {
      this.metrics.gaps.inc({ pod: label });
      this.metrics.totals.gaps++;
      const from = s.last + 1;
      if (this.replayEndpointFor(s) && this.clock.now() >= s.cooldownUntil) {
        const got = await this.fetch(s, from, seq);
        if (got === null) this.missed(s, seq - from, 'replay unavailable');
        else if (s.replayForeign) this.missed(s, seq - from, `seq gap ${from}..${seq - 1}; the pod's replay endpoint serves another topic`);
        else {
          // The publisher's buffer holds every batch it sent (vLLM appends right after sending),
          // so a live seq beyond what it holds was not sent by it: a forged jump must neither
          // move the stream nor apply. What the buffer does hold is applied.
          const top = got.reduce((m, b) => Math.max(m, b.seq), -1);
          if (top < seq - 1) {
            if (top >= from) await this.applyReplayed(s, got, from, top + 1);
            this.reject(s.pod, 'seq_ahead', `seq jumped from ${from - 1} to ${seq} but the publisher's replay buffer ends at ${top}; batch skipped`);
            return;
          }
          await this.applyReplayed(s, got, from, seq);
        }
      } else this.missed(s, seq - from, `seq gap ${from}..${seq - 1} and no replay endpoint`);
    } else if (seq === 0) {
      // vLLM's counter starts at 0 with the engine: the only way a real stream goes back
      this.metrics.restarts.inc({ pod: label });
      this.metrics.totals.restarts++;
      this.warnOnce(s.pod, 'restart', `publisher restarted (seq ${s.last} -> 0); clearing the pod`);
      await this.resetPod(s);
    } else {
      // a live copy of a batch already replayed, or a stray/forged message: never a wipe
      if (seq > s.replayedTo) this.reject(s.pod, 'seq_back', `seq went back from ${s.last} to ${seq} without a restart (seq 0); batch skipped`);
      return;
    }
    await this.applyOne(s, seq, batch);
  }

  private async resetPod(s: Stream): Promise<void> {
    s.applier.reset();
    s.last = null;
    s.history = null;
    await this.index.clear(s.pod);
  }

  private missed(s: Stream, n: number, why: string): void {
    if (n <= 0) return;
    this.metrics.missedBatches.inc({ pod: this.metrics.label(s.pod) }, n);
    this.metrics.totals.missedBatches += n;
    this.warnOnce(s.pod, 'missed', `lost ${n} kv-events batches: ${why}`);
  }

  private async withReplaySlot<T>(fn: () => Promise<T>): Promise<T> {
    const max = this.replayCfg.maxConcurrent ?? 8;
    while (this.replaysRunning >= max) await new Promise<void>((r) => this.replayWaiters.push(r));
    this.replaysRunning++;
    try {
      return await fn();
    } finally {
      this.replaysRunning--;
      this.replayWaiters.shift()?.();
    }
  }

  /** The batches [from, until) the stream's replay endpoint holds (null: unavailable, counted). */
  private async fetch(s: Stream, from: number, until: number): Promise<ReplayedBatch[] | null> {
    const ep = this.replayEndpointFor(s);
    if (!ep || this.clock.now() < s.cooldownUntil) return null;
    const label = this.metrics.label(s.pod);
    this.metrics.totals.replays++;
    try {
      const foreign = { n: 0, topic: '' };
      const accept = (b: ReplayedBatch) => {
        if (b.topic === undefined || this.isStreamTopic(s, b.topic)) return true;
        foreign.n++;
        foreign.topic = b.topic;
        return false;
      };
      const own = await this.withReplaySlot(() => fetchReplayRange(ep, from, until, { timeoutMs: this.replayCfg.timeoutMs, idleTimeoutMs: this.replayCfg.idleTimeoutMs, maxMessageBytes: this.limits.maxMessageBytes, accept }));
      if (foreign.n) this.foreignReplay(s, ep, own, foreign);
      return own;
    } catch (err) {
      this.metrics.replays.inc({ pod: label, outcome: 'failed' });
      this.metrics.totals.replayFailures++;
      s.cooldownUntil = this.clock.now() + (this.replayCfg.cooldownMs ?? 30_000);
      this.warnOnce(s.pod, 'replay', `replay from ${ep} failed`, err);
      return null;
    }
  }

  /**
   * Counts replayed batches of another topic than the stream's. A publisher's replay buffer holds its one topic
   * (vLLM: `kv@<pod>@<model>`), and vLLM since PR #45177 names it in each reply: batches of
   * another topic (a second model's topic under a known pod asking the pod's replay endpoint)
   * are never applied to this stream, and an endpoint serving only another topic is not asked
   * for this stream again. Replies without a topic (older vLLM) cannot be told apart.
   */
  private foreignReplay(s: Stream, ep: string, own: ReplayedBatch[], foreign: { n: number; topic: string }): void {
    this.reject(s.pod, 'replay_topic', `replay from ${ep} holds topic ${JSON.stringify(foreign.topic.slice(0, 200))}, not this stream's model ${JSON.stringify(s.model.slice(0, 100))}; ${foreign.n} batches ignored`);
    if (own.length === 0) s.replayForeign = true;
  }

  private isStreamTopic(s: Stream, topic: string): boolean {
    const t = parseTopic(topic);
    return t.pod === s.topicPod && (t.model || (this.opts.defaultModel ?? '')) === s.model;
  }

  /** Replays [from, until) into the stream, then leaves s.last at until - 1 (or where it got). */
  private async replayInto(s: Stream, from: number, until: number): Promise<void> {
    const got = await this.fetch(s, from, until);
    if (got === null) {
      if (s.last !== null) this.missed(s, until - from, 'replay unavailable');
      return;
    }
    // not this stream's replay buffer: as a pod without one, a join starts where it is
    if (s.replayForeign && s.last === null) return;
    await this.applyReplayed(s, got, from, until);
  }

  private async applyReplayed(s: Stream, got: ReplayedBatch[], from: number, until: number): Promise<void> {
    const label = this.metrics.label(s.pod);
    const wanted = got.filter((b) => b.seq >= from && b.seq < until).sort((a, b) => a.seq - b.seq);
    const first = wanted.length ? wanted[0].seq : until;
    let outcome: 'ok' | 'partial' = 'ok';
    if (first > from) {
      outcome = 'partial';
      // the publisher no longer holds the start of the hole
      this.missed(s, first - from, `replay buffer starts at ${first}, needed ${from}`);
      if (s.last !== null) {
        this.warnOnce(s.pod, 'hole', 'unrecoverable gap; clearing the pod and rebuilding from the replay buffer');
        await this.resetPod(s);
      }
    }
    this.metrics.replays.inc({ pod: label, outcome });
    let expect = first;
    for (const b of wanted) {
      if (b.seq < expect) continue; // duplicate
      if (b.seq > expect) this.missed(s, b.seq - expect, 'replay skipped batches');
      let batch: DecodedBatch;
      try {
        batch = decodeEventBatch(b.payload, this.guard);
      } catch (err) {
        this.reject(s.topicPod, err instanceof DecodeError ? err.kind : 'payload', `replayed seq ${b.seq}: ${(err as Error).message}`);
        expect = b.seq + 1;
        continue;
      }
      await this.budget.yieldIfSpent();
      await this.applyOne(s, b.seq, batch);
      if (b.seq > s.replayedTo) s.replayedTo = b.seq;
      expect = b.seq + 1;
    }
    if (expect < until) this.missed(s, until - expect, 'replay ended early');
  }

  /**
   * Applies a decoded batch's events in order, synchronously while the index answers
   * synchronously and the slice lasts; the rest (an asynchronous index, an orphan to recover, a
   * yield) continues in applyRest.
   */
  private applyOne(s: Stream, seq: number, batch: DecodedBatch): Promise<void> | void {
    const label = this.metrics.label(s.pod);
    if (batch.skipped.length) {
      this.metrics.skippedEvents.inc({ pod: label, reason: 'undecodable' }, batch.skipped.length);
      this.metrics.totals.skippedEvents += batch.skipped.length;
      this.warnOnce(s.pod, 'event', `skipped undecodable event: ${batch.skipped[0].reason}`);
    }
    const events = batch.events;
    for (let i = 0; i < events.length; i++) {
      if (this.budget.mustYield()) return this.applyRest(s, seq, events, i, null);
      let out: ApplyOutcome | Promise<ApplyOutcome>;
      try {
        out = s.applier.apply(events[i], s.model);
      } catch (err) {
        this.indexError(s, label, err);
        continue;
      }
      if (out instanceof Promise || out === 'orphan') return this.applyRest(s, seq, events, i, out);
      if (out === 'skipped') this.unsupported(label);
    }
    s.last = seq;
  }

  /**
   * applyOne from event `from` on; `first`: event `from`'s outcome when it was already applied
   * (null: apply it here).
   */
  private async applyRest(s: Stream, seq: number, events: readonly KvEvent[], from: number, first: ApplyOutcome | Promise<ApplyOutcome> | null): Promise<void> {
    const label = this.metrics.label(s.pod);
    for (let i = from; i < events.length; i++) {
      const ev = events[i];
      if (i > from || first === null) if (this.budget.mustYield()) await this.budget.yieldIfSpent();
      try {
        const r = i === from && first !== null ? first : s.applier.apply(ev, s.model);
        const out = r instanceof Promise ? await r : r;
        if (out === 'orphan') await this.recoverOrphan(s, seq, ev as BlockStored);
        else if (out === 'skipped') this.unsupported(label);
      } catch (err) {
        this.indexError(s, label, err);
      }
    }
    s.last = seq;
  }

  private unsupported(label: string): void {
    this.metrics.skippedEvents.inc({ pod: label, reason: 'unsupported' });
    this.metrics.totals.skippedEvents++;
  }

  private indexError(s: Stream, label: string, err: unknown): void {
    this.metrics.skippedEvents.inc({ pod: label, reason: 'index_error' });
    this.metrics.totals.skippedEvents++;
    this.warnOnce(s.pod, 'index', 'index update failed', err);
  }

  /** Rebuilds an unknown parent chain from the replay buffer, then applies the event. */
  private async recoverOrphan(s: Stream, seq: number, ev: BlockStored): Promise<void> {
    const label = this.metrics.label(s.pod);
    this.metrics.totals.unknownParents++;
    let recovered = false;
    if (this.replayEndpointFor(s)) {
      // one replay serves every orphan of the next second (bursts after a gap)
      if (!s.history || (s.history.upTo < seq && this.clock.now() - s.history.at > 1000)) {
        const got = await this.fetch(s, 0, seq);
        s.history = got ? { upTo: seq, at: this.clock.now(), batches: got.filter((b) => b.seq <= seq) } : null;
      }
      if (s.history) recovered = await this.rebuildChain(s, ev);
    }
    if (recovered) {
      this.metrics.unknownParents.inc({ pod: label, outcome: 'recovered' });
      this.metrics.totals.recoveredParents++;
    } else {
      this.metrics.unknownParents.inc({ pod: label, outcome: 'unrecovered' });
      this.warnOnce(s.pod, 'orphan', `BlockStored with unknown parent ${ev.parentBlockHash} could not be placed`);
    }
  }

  private async rebuildChain(s: Stream, orphan: BlockStored): Promise<boolean> {
    interface Node { parent: bigint | null | undefined; tokens: number[]; extra: unknown[] | null; medium: string | null; lora: string | null; bs: number }
    const nodes = new Map<bigint, Node>();
    for (const b of s.history!.batches) {
      await this.budget.yieldIfSpent();
      let batch: DecodedBatch;
      try {
        batch = decodeEventBatch(b.payload, this.guard);
      } catch {
        continue;
      }
      for (const e of batch.events) {
        if (e.type !== 'BlockStored' || e.tokenIds.length === 0) continue;
        if (e.kvCacheSpecKind !== null && e.kvCacheSpecKind !== 'full_attention') continue;
        const B = e.blockSize;
        const skipped = e.tokenIds.length - e.blockHashes.length * B;
        if (skipped < 0) continue;
        e.blockHashes.forEach((h, i) => {
          if (nodes.has(h)) return;
          const parent = i > 0 ? e.blockHashes[i - 1] : skipped === 0 ? e.parentBlockHash : undefined;
          const start = skipped + i * B;
          nodes.set(h, { parent, tokens: e.tokenIds.slice(start, start + B), extra: e.extraKeys?.[i] ?? null, medium: e.medium, lora: e.loraName, bs: B });
        });
      }
    }
    const chain: [bigint, Node][] = [];
    let h: bigint | null | undefined = orphan.parentBlockHash;
    let base: bigint | null = null;
    while (h !== null) {
      if (h === undefined) return false;
      if (await s.applier.knows(h)) {
        base = h;
        break;
      }
      const n = nodes.get(h);
      if (!n || chain.length > 100_000) return false;
      chain.unshift([h, n]);
      h = n.parent;
    }
    if (chain.length) {
      const bs = chain[0][1].bs;
      if (chain.some(([, n]) => n.bs !== bs)) return false;
      const synthetic: BlockStored = {
        type: 'BlockStored',
        blockHashes: chain.map(([k]) => k),
        parentBlockHash: base,
        tokenIds: chain.flatMap(([, n]) => n.tokens),
        blockSize: bs,
        loraId: null,
        medium: chain[chain.length - 1][1].medium,
        loraName: chain[chain.length - 1][1].lora,
        extraKeys: chain.some(([, n]) => n.extra) ? chain.map(([, n]) => n.extra) : null,
        groupIdx: null,
        kvCacheSpecKind: null,
        kvCacheSpecSlidingWindow: null,
      };
      if ((await s.applier.apply(synthetic, s.model)) !== 'applied') return false;
    }
    return (await s.applier.apply(orphan, s.model)) === 'applied';
  }

  private warnOnce(pod: string, kind: string, msg: string, err?: unknown): void {
    const k = `${kind}\u0000${pod}`;
    if (this.warned.has(k)) return;
    if (this.warned.size >= MAX_WARNED) {
      // a flood of distinct pods/topics must not become a flood of log lines
      if (!this.warnedFull) this.log.warn({ distinct: MAX_WARNED }, 'too many distinct kv-events warnings; further ones are only counted in metrics');
      this.warnedFull = true;
      return;
    }
    this.warned.add(k);
    this.log.warn({ pod: pod.slice(0, 200), kind, err: err instanceof Error ? err.message : err }, msg);
  }

  /** Sequence state per stream (for tests and diagnostics). */
  streamState(): { pod: string; model: string; rank: number | null; lastSeq: number | null; queued: number }[] {
    return [...this.streams.values()].map((s) => ({ pod: s.pod, model: s.model, rank: s.rank, lastSeq: s.last, queued: s.depth }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unhookResync?.();
    const sock = this.sock;
    this.sock = null;
    if (sock) sock.close();
    await this.loop?.catch(() => {});
    await this.watcher?.catch(() => {});
    await Promise.allSettled([...this.streams.values()].map((s) => s.chain));
  }
}
