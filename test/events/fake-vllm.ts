// A vLLM-like KV-event publisher for tests: a real ZeroMQ PUB socket (binding, or connecting
// to a central subscriber) plus a real replay ROUTER serving its buffer in either reply
// layout, with the seq counter starting at 0 like vLLM's.
import { Publisher, Router } from 'zeromq';
import { seqFrame } from './msgspec-encoder.js';

export type ReplayLayout = 'old' | 'new';

export class FakeVllm {
  readonly pub: Publisher;
  readonly router = new Router({ linger: 0 });
  readonly buffer: { seq: number; payload: Uint8Array }[] = [];
  seq = 0;
  pubEndpoint = '';
  replayEndpoint = '';
  replayRequests: number[] = [];
  private serving: Promise<void> | null = null;

  constructor(
    readonly topic: string,
    readonly layout: ReplayLayout = 'new',
    readonly bufferSteps = 10_000,
    /** PUB socket options (vLLM's defaults are ZeroMQ's: send high-water mark 1000). */
    pubOptions: { sendHighWaterMark?: number; sendBufferSize?: number } = {},
  ) {
    this.pub = new Publisher({ linger: 0, sendHighWaterMark: 100_000, ...pubOptions });
  }

  /** Per-pod mode: bind the PUB socket. */
  async bind(): Promise<void> {
    await this.pub.bind('tcp://127.0.0.1:0');
    this.pubEndpoint = this.pub.lastEndpoint!;
  }

  /** Central mode: connect to the router's SUB. */
  connect(endpoint: string): void {
    this.pub.connect(endpoint);
  }

  async startReplay(): Promise<string> {
    await this.router.bind('tcp://127.0.0.1:0');
    this.replayEndpoint = this.router.lastEndpoint!;
    this.serving = this.serve();
    return this.replayEndpoint;
  }

  private async serve(): Promise<void> {
    try {
      for await (const frames of this.router) {
        if (frames.length !== 3) continue; // vLLM ignores malformed requests
        const [id, , seqB] = frames;
        const from = Number(Buffer.from(seqB).readBigUInt64BE(0));
        this.replayRequests.push(from);
        for (const b of this.buffer) {
          if (b.seq < from) continue;
          if (this.layout === 'new') await this.router.send([id, '', this.topic, seqFrame(b.seq), b.payload]);
          else await this.router.send([id, '', seqFrame(b.seq), b.payload]);
        }
        const end = Buffer.alloc(8, 0xff);
        if (this.layout === 'new') await this.router.send([id, '', '', end, '']);
        else await this.router.send([id, '', end, '']);
      }
    } catch {
      // closed
    }
  }

  /** Publishes a batch (or only buffers it when `drop`, simulating a lost message). */
  async publish(payload: Uint8Array, opts: { drop?: boolean; topic?: string } = {}): Promise<number> {
    const seq = this.seq++;
    this.buffer.push({ seq, payload });
    if (this.buffer.length > this.bufferSteps) this.buffer.shift();
    if (!opts.drop) await this.pub.send([opts.topic ?? this.topic, seqFrame(seq), payload]);
    return seq;
  }

  /** Engine restart: seq back to 0, replay buffer emptied. */
  restart(): void {
    this.seq = 0;
    this.buffer.length = 0;
  }

  async close(): Promise<void> {
    this.pub.close();
    this.router.close();
    await this.serving;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
