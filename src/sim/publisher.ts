// vLLM's ZmqEventPublisher: PUB socket sending [topic, seq (8 B BE), msgpack EventBatch], seq
// from 0 per publisher, and an optional replay ROUTER that answers [identity, "", start_seq]
// with every buffered batch whose seq >= start_seq, then an end marker.
import * as zmq from 'zeromq';
import type { Logger } from 'pino';

/** vLLM's KVEventsConfig (vllm/config/kv_events.py), with its field names and defaults. */
export interface KVEventsConfig {
  enable_kv_cache_events?: boolean;
  publisher?: 'zmq' | 'null' | null;
  endpoint?: string;
  replay_endpoint?: string | null;
  buffer_steps?: number;
  hwm?: number;
  max_queue_size?: number;
  topic?: string;
}

export type ResolvedKVEventsConfig = Required<Omit<KVEventsConfig, 'replay_endpoint' | 'publisher'>> & { publisher: 'zmq' | 'null'; replay_endpoint: string | null };

export function resolveKvEventsConfig(c: KVEventsConfig | undefined): ResolvedKVEventsConfig {
  const enabled = c?.enable_kv_cache_events ?? false;
  const publisher = c?.publisher ?? (enabled ? 'zmq' : 'null');
  if (publisher !== 'zmq' && publisher !== 'null') throw new Error(`kv-events-config: unknown publisher "${String(publisher)}" (zmq or null)`);
  return {
    enable_kv_cache_events: enabled,
    publisher,
    endpoint: c?.endpoint ?? 'tcp://*:5557',
    replay_endpoint: c?.replay_endpoint ?? null,
    buffer_steps: c?.buffer_steps ?? 10_000,
    hwm: c?.hwm ?? 100_000,
    max_queue_size: c?.max_queue_size ?? 100_000,
    topic: c?.topic ?? '',
  };
}

/** vLLM's rule: bind when the endpoint has `*` or `::`, or is ipc/inproc; otherwise connect. */
export function publisherBinds(endpoint: string): boolean {
  return endpoint.includes('*') || endpoint.includes('::') || endpoint.startsWith('ipc://') || endpoint.startsWith('inproc://');
}

/**
 * vLLM's offset_endpoint_port for data-parallel rank `rank`: inproc gets `_dp<rank>`, tcp adds
 * the rank to the port. A wildcard port (`tcp://127.0.0.1:*`, ephemeral) is left as is.
 */
export function offsetEndpointPort(endpoint: string, rank: number): string {
  if (rank === 0) return endpoint;
  if (endpoint.includes('inproc')) return `${endpoint}_dp${rank}`;
  if (endpoint.includes('tcp')) {
    const i = endpoint.lastIndexOf(':');
    const port = endpoint.slice(i + 1);
    if (port === '*') return endpoint;
    const n = Number(port);
    if (!Number.isInteger(n)) throw new Error(`invalid port in endpoint ${endpoint}`);
    return `${endpoint.slice(0, i + 1)}${n + rank}`;
  }
  throw new Error(`Invalid endpoint: ${endpoint}`);
}

/** Reply layout of the replay ROUTER: before or after vllm PR #45177 (v0.26.0). */
export type ReplayLayout = 'pre-45177' | 'post-45177';

export const END_SEQ = Buffer.from('ffffffffffffffff', 'hex');

export interface PublisherOptions {
  endpoint: string;
  replayEndpoint: string | null;
  bufferSteps: number;
  hwm: number;
  maxQueueSize: number;
  topic: string;
  replayLayout: ReplayLayout;
  /** Overrides the bind/connect rule (a restart re-binds the resolved address). */
  bind?: boolean;
  logger?: Logger;
}

function seqBytes(seq: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(seq));
  return b;
}

export class ZmqEventPublisher {
  private readonly pub = new zmq.Publisher({ linger: 0 });
  private router: zmq.Router | null = null;
  private readonly opts: PublisherOptions;
  private readonly topic: Buffer;
  private seq = 0;
  private readonly queue: Buffer[] = [];
  private pumping = false;
  private closed = false;
  /** (seq, payload) of the last buffer_steps batches. */
  private readonly buffer: { seq: number; payload: Buffer }[] = [];
  private bufferHead = 0;
  /** Actual endpoints after binding (wildcard ports resolved). */
  endpoint = '';
  bound = false;
  replayEndpoint: string | null = null;
  batchesSent = 0;
  replaysServed = 0;

  private constructor(opts: PublisherOptions) {
    this.opts = opts;
    this.topic = Buffer.from(opts.topic, 'utf8');
    this.pub.sendHighWaterMark = opts.hwm;
  }

  static async start(opts: PublisherOptions): Promise<ZmqEventPublisher> {
    const p = new ZmqEventPublisher(opts);
    try {
      if (opts.bind ?? publisherBinds(opts.endpoint)) {
        await p.pub.bind(opts.endpoint);
        p.endpoint = p.pub.lastEndpoint ?? opts.endpoint;
        p.bound = true;
      } else {
        p.pub.connect(opts.endpoint);
        p.endpoint = opts.endpoint;
      }
      if (opts.replayEndpoint !== null) {
        const r = new zmq.Router({ linger: 0 });
        p.router = r;
        await r.bind(opts.replayEndpoint);
        p.replayEndpoint = r.lastEndpoint ?? opts.replayEndpoint;
        void p.serveReplay(r);
      }
    } catch (err) {
      p.close();
      throw err;
    }
    return p;
  }

  /** Number of batches waiting to be written to the socket. */
  get queued(): number {
    return this.queue.length;
  }

  /** True when the in-process queue reached max_queue_size (vLLM would block the scheduler). */
  get full(): boolean {
    return this.queue.length >= this.opts.maxQueueSize;
  }

  /** Queues one encoded EventBatch; assigns the next seq when it is sent. */
  publish(payload: Buffer): void {
    if (this.closed) return;
    this.queue.push(payload);
    if (!this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const payload = this.queue.shift() as Buffer;
        const seq = this.seq++;
        const sb = seqBytes(seq);
        this.remember(seq, payload);
        await this.pub.send([this.topic, sb, payload]);
        this.batchesSent++;
      }
    } catch (err) {
      if (!this.closed) this.opts.logger?.warn({ err }, 'kv events publish failed');
    } finally {
      this.pumping = false;
    }
  }

  private remember(seq: number, payload: Buffer): void {
    if (this.opts.bufferSteps <= 0) return;
    this.buffer.push({ seq, payload });
    if (this.buffer.length - this.bufferHead > this.opts.bufferSteps) this.bufferHead++;
    // Compact occasionally so the array does not grow without bound.
    if (this.bufferHead > 1024 && this.bufferHead * 2 > this.buffer.length) {
      this.buffer.splice(0, this.bufferHead);
      this.bufferHead = 0;
    }
  }

  private async serveReplay(r: zmq.Router): Promise<void> {
    try {
      for await (const frames of r) {
        if (this.closed) break;
        if (frames.length !== 3 || frames[1].length !== 0 || frames[2].length !== 8) {
          this.opts.logger?.warn({ frames: frames.length }, 'replay: malformed request ignored');
          continue;
        }
        const identity = frames[0];
        const start = frames[2].readBigUInt64BE(0);
        const post = this.opts.replayLayout === 'post-45177';
        // Snapshot first: live batches keep arriving while the reply is written.
        for (const { seq, payload } of this.buffer.slice(this.bufferHead)) {
          if (BigInt(seq) < start) continue;
          const sb = seqBytes(seq);
          await r.send(post ? [identity, '', this.topic, sb, payload] : [identity, '', sb, payload]);
        }
        await r.send(post ? [identity, '', '', END_SEQ, ''] : [identity, '', END_SEQ, '']);
        this.replaysServed++;
      }
    } catch (err) {
      if (!this.closed) this.opts.logger?.warn({ err }, 'replay socket failed');
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.pub.close();
    this.router?.close();
  }
}
