// KV-event subscriber: one ZeroMQ SUB socket that binds (central mode: every vLLM pod
// connects to the router) and/or dials each pod's PUB endpoint (discovery mode).
//
// Every publisher stream (topic + data-parallel rank) has its own promise chain, so one
// pod's batches apply strictly in order while pods never wait on each other. Per stream:
//  - seq gap (seq > last + 1): replay the missing range from the pod's replay ROUTER;
//    without one, count the missed batches and carry on;
//  - seq going back: the engine restarted; clear the pod, then replay its new history;
//  - first message with seq > 0: replay from 0 (the router joined late);
//  - BlockStored with an unknown parent: rebuild the parent chain from the replay buffer
//    and index it; count what cannot be recovered (llm-d silently drops these, #372).
// Live batches that arrive during a replay wait behind it in the stream's chain.
import { Subscriber } from 'zeromq';
import { Registry } from 'prom-client';
import { pino, type Logger } from 'pino';
import type { KvBlockIndex } from '../index/types.js';
import { BlockKeyer, type KeyConfig } from '../index/keys.js';
import type { BlockStored, DecodedBatch } from './types.js';
import { decodeEventBatch, DecodeError } from './decode.js';
import { parseTopic, podForRank, splitHostPort, offsetEndpointPort } from './topic.js';
import { fetchReplay, readSeq, type ReplayedBatch } from './replay.js';
import { PodEventApplier } from './apply.js';
import { EventMetrics } from './metrics.js';
import { realClock, type Clock } from '../util/clock.js';

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
  /** Time for replay cooldowns and replay-history age (default the real clock). */
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
}

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
  private sock: Subscriber | null = null;
  private loop: Promise<void> | null = null;
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
    // A shared backend (Redis) that lost writes or restarted asks for a resync: clear every
    // pod we feed and rebuild it by replay from seq 0 on its next message.
    const emitter = this.index as unknown as { on?: (ev: string, fn: (info: unknown) => void) => unknown; off?: (ev: string, fn: (info: unknown) => void) => unknown };
    if (typeof emitter.on === 'function' && typeof emitter.off === 'function') {
      const fn = (info: unknown) => this.resyncAll(info);
      emitter.on('resync-needed', fn);
      this.unhookResync = () => emitter.off!('resync-needed', fn);
    }
  }

  /** Clears every known stream's pod and forgets its sequence, so the next message replays from 0. */
  resyncAll(reason?: unknown): void {
    this.log.warn({ reason, streams: this.streams.size }, 'index asked for a resync: clearing pods, replaying on their next message');
    for (const s of this.streams.values()) {
      s.chain = s.chain.then(() => this.resetPod(s)).catch((err) => this.warnOnce(s.pod, 'resync', 'resync failed', err));
    }
  }

  /** The actual bound endpoint in central mode (port resolved when binding port 0). */
  get boundEndpoint(): string | undefined {
    return this._boundEndpoint;
  }

  async start(): Promise<void> {
    if (this.sock) return;
    const sock = new Subscriber({ linger: 0, receiveHighWaterMark: 100_000 });
    sock.subscribe(this.topicFilter);
    this.sock = sock;
    if (this.opts.bindEndpoint) {
      await sock.bind(this.opts.bindEndpoint);
      this._boundEndpoint = sock.lastEndpoint ?? this.opts.bindEndpoint;
      this.log.info({ endpoint: this._boundEndpoint, topicFilter: this.topicFilter }, 'kv-events subscriber bound (central mode)');
    }
    for (const [pod, ep] of this.podEndpoints) this.dial(pod, ep);
    this.loop = this.receiveLoop(sock);
  }

  /** Discovery mode: dial a pod's PUB endpoint (and remember its replay endpoint). */
  addPod(podId: string, endpoint: string, replayEndpoint?: string): void {
    const prev = this.podEndpoints.get(podId);
    if (prev === endpoint && (!replayEndpoint || this.replayEndpoints.get(podId) === replayEndpoint)) return;
    if (prev && this.sock) this.safeDisconnect(prev);
    this.podEndpoints.set(podId, endpoint);
    if (replayEndpoint) this.replayEndpoints.set(podId, replayEndpoint);
    if (this.sock) this.dial(podId, endpoint);
  }

  /** Stops listening to a pod and forgets its blocks. */
  removePod(podId: string): void {
    const ep = this.podEndpoints.get(podId);
    if (ep && this.sock) this.safeDisconnect(ep);
    this.podEndpoints.delete(podId);
    this.replayEndpoints.delete(podId);
    const pods = new Set<string>();
    for (const [k, s] of this.streams) {
      // Match the endpoint, not the topic: data-parallel rank r is its own endpoint (ip:port+r)
      // although it publishes under rank 0's topic.
      if (s.pod !== podId) continue;
      this.streams.delete(k);
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
        try {
          this.onFrames(frames);
        } catch (err) {
          // onFrames counts everything it rejects; this is a last line of defence
          this.warnOnce('_loop', 'loop', 'unexpected error handling a message', err);
        }
      }
    } catch (err) {
      if (!this.closed) this.log.error({ err }, 'kv-events receive loop stopped');
    }
  }

  /** Handles one raw multipart message [topic, seq, payload]. Never throws for bad input. */
  onFrames(frames: Uint8Array[]): void {
    const topic = frames.length > 0 ? Buffer.from(frames[0]).toString('utf8') : '';
    const t = parseTopic(topic);
    const label = this.metrics.label(t.pod);
    this.metrics.messages.inc({ pod: label });
    this.metrics.totals.messages++;
    if (frames.length !== 3) return this.reject(t.pod, 'frames', `message with ${frames.length} frames (expected 3)`);
    if (frames[1].length !== 8) return this.reject(t.pod, 'seq', `seq frame of ${frames[1].length} bytes (expected 8)`);
    const seq = readSeq(frames[1]);
    let batch: DecodedBatch;
    try {
      batch = decodeEventBatch(frames[2]);
    } catch (err) {
      return this.reject(t.pod, 'payload', (err as Error).message);
    }
    void this.enqueue(t.pod, t.model || (this.opts.defaultModel ?? ''), seq, batch);
  }

  private reject(pod: string, kind: string, msg: string): void {
    this.metrics.decodeErrors.inc({ pod: this.metrics.label(pod), kind });
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
        b = decodeEventBatch(batch);
      } catch (err) {
        this.reject(pod, 'payload', (err as Error).message);
        return Promise.reject(err instanceof DecodeError ? err : new DecodeError(String(err)));
      }
    } else b = batch;
    this.metrics.messages.inc({ pod: this.metrics.label(pod) });
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

  private enqueue(topicPod: string, model: string, seq: number, batch: DecodedBatch): Promise<void> {
    const rank = batch.dataParallelRank;
    const key = `${topicPod}\u0000${model}\u0000${rank ?? 0}`;
    let s = this.streams.get(key);
    if (!s) {
      const pod = podForRank(topicPod, rank);
      s = { key, topicPod, pod, model, rank, last: null, chain: Promise.resolve(), depth: 0, applier: new PodEventApplier(this.index, this.keyer, pod), cooldownUntil: 0, history: null };
      this.streams.set(key, s);
    }
    const st = s;
    st.depth++;
    this.metrics.queueDepth.inc({ pod: this.metrics.label(st.pod) });
    const p = st.chain
      .then(() => this.handle(st, seq, batch))
      .catch((err) => this.warnOnce(st.pod, 'apply', 'failed to apply a kv-events batch', err))
      .finally(() => {
        st.depth--;
        this.metrics.queueDepth.dec({ pod: this.metrics.label(st.pod) });
      });
    st.chain = p;
    return p;
  }

  private replayEndpointFor(s: Stream): string | null {
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

  private async handle(s: Stream, seq: number, batch: DecodedBatch): Promise<void> {
    if (this.closed) return;
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
      if (this.replayEndpointFor(s) && this.clock.now() >= s.cooldownUntil) await this.replayInto(s, from, seq);
      else this.missed(s, seq - from, `seq gap ${from}..${seq - 1} and no replay endpoint`);
    } else {
      this.metrics.restarts.inc({ pod: label });
      this.metrics.totals.restarts++;
      this.warnOnce(s.pod, 'restart', `publisher restarted (seq ${s.last} -> ${seq}); clearing the pod`);
      await this.resetPod(s);
      if (seq > 0 && this.replayEndpointFor(s)) await this.replayInto(s, 0, seq);
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

  private async fetch(s: Stream, from: number): Promise<ReplayedBatch[] | null> {
    const ep = this.replayEndpointFor(s);
    if (!ep || this.clock.now() < s.cooldownUntil) return null;
    const label = this.metrics.label(s.pod);
    this.metrics.totals.replays++;
    try {
      const batches = await this.withReplaySlot(() => fetchReplay(ep, from, { timeoutMs: this.replayCfg.timeoutMs, idleTimeoutMs: this.replayCfg.idleTimeoutMs }));
      return batches;
    } catch (err) {
      this.metrics.replays.inc({ pod: label, outcome: 'failed' });
      this.metrics.totals.replayFailures++;
      s.cooldownUntil = this.clock.now() + (this.replayCfg.cooldownMs ?? 30_000);
      this.warnOnce(s.pod, 'replay', `replay from ${ep} failed`, err);
      return null;
    }
  }

  /** Replays [from, until) into the stream, then leaves s.last at until - 1 (or where it got). */
  private async replayInto(s: Stream, from: number, until: number): Promise<void> {
    const label = this.metrics.label(s.pod);
    const got = await this.fetch(s, from);
    if (got === null) {
      if (s.last !== null) this.missed(s, until - from, 'replay unavailable');
      return;
    }
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
        batch = decodeEventBatch(b.payload);
      } catch (err) {
        this.reject(s.topicPod, 'payload', `replayed seq ${b.seq}: ${(err as Error).message}`);
        expect = b.seq + 1;
        continue;
      }
      await this.applyOne(s, b.seq, batch);
      expect = b.seq + 1;
    }
    if (expect < until) this.missed(s, until - expect, 'replay ended early');
  }

  private async applyOne(s: Stream, seq: number, batch: DecodedBatch): Promise<void> {
    const label = this.metrics.label(s.pod);
    if (batch.skipped.length) {
      this.metrics.skippedEvents.inc({ pod: label, reason: 'undecodable' }, batch.skipped.length);
      this.metrics.totals.skippedEvents += batch.skipped.length;
      this.warnOnce(s.pod, 'event', `skipped undecodable event: ${batch.skipped[0].reason}`);
    }
    for (const ev of batch.events) {
      try {
        const out = await s.applier.apply(ev, s.model);
        if (out === 'orphan') await this.recoverOrphan(s, seq, ev as BlockStored);
        else if (out === 'skipped') {
          this.metrics.skippedEvents.inc({ pod: label, reason: 'unsupported' });
          this.metrics.totals.skippedEvents++;
        }
      } catch (err) {
        this.metrics.skippedEvents.inc({ pod: label, reason: 'index_error' });
        this.metrics.totals.skippedEvents++;
        this.warnOnce(s.pod, 'index', 'index update failed', err);
      }
    }
    s.last = seq;
  }

  /** Rebuilds an unknown parent chain from the replay buffer, then applies the event. */
  private async recoverOrphan(s: Stream, seq: number, ev: BlockStored): Promise<void> {
    const label = this.metrics.label(s.pod);
    this.metrics.totals.unknownParents++;
    let recovered = false;
    if (this.replayEndpointFor(s)) {
      // one replay serves every orphan of the next second (bursts after a gap)
      if (!s.history || (s.history.upTo < seq && this.clock.now() - s.history.at > 1000)) {
        const got = await this.fetch(s, 0);
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
      let batch: DecodedBatch;
      try {
        batch = decodeEventBatch(b.payload);
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
    if (this.warned.size < 10_000) this.warned.add(k);
    this.log.warn({ pod, kind, err: err instanceof Error ? err.message : err }, msg);
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
    await Promise.allSettled([...this.streams.values()].map((s) => s.chain));
  }
}
