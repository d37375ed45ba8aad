// Chat template rendering off the event loop: jinja costs ~90 us per message here, so a long
// chat rendered inline would hold every other request (100k messages: seconds). One worker
// thread renders in turn; the main thread only clones the messages to it. An abandoned
// request's render is dropped from the queue, or, if it is running, the worker is terminated
// (the next render starts a fresh one).
import { Worker } from 'node:worker_threads';
import { TokenizeAbortedError, TokenizeError, type ChatOptions } from './types.js';

export interface RenderJob {
  template: string;
  contentFormat: 'string' | 'openai';
  specialTokens: Record<string, unknown>;
  messages: unknown;
  opts: ChatOptions;
}

type Reply = { id: number; text: string } | { id: number; error: { message: string; status: number; type: string; param: string | null } };

interface Pending {
  id: number;
  job: RenderJob;
  resolve: (text: string) => void;
  reject: (err: Error) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

const TS = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(TS ? './render-worker-main.ts' : './render-worker-main.js', import.meta.url).href;
// From TypeScript sources the thread registers tsx first, as bin/kvrouter.js does.
const BOOT = `import(${JSON.stringify(TS ? import.meta.resolve('tsx/esm/api') : 'node:process')}).then((m) => { m.register?.(); return import(${JSON.stringify(WORKER_URL)}); });`;

export class ChatRenderWorker {
  private worker: Worker | undefined;
  private readonly queue: Pending[] = [];
  private running: Pending | undefined;
  private nextId = 1;
  /** Workers terminated to stop an abandoned render (tests observe it). */
  terminated = 0;

  render(job: RenderJob, signal?: AbortSignal): Promise<string> {
    if (signal?.aborted) return Promise.reject(new TokenizeAbortedError());
    return new Promise<string>((resolve, reject) => {
      const p: Pending = { id: this.nextId++, job, resolve, reject, signal };
      if (signal) {
        p.onAbort = () => this.abandon(p);
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.queue.push(p);
      this.pump();
    });
  }

  close(): void {
    const w = this.worker;
    this.worker = undefined;
    void w?.terminate();
    const err = new Error('chat render worker closed');
    if (this.running) this.settle(this.running, err);
    for (const p of this.queue.splice(0)) this.settle(p, err);
  }

  private spawn(): Worker {
    const w = new Worker(BOOT, { eval: true });
    w.on('message', (m: Reply) => {
      const p = this.running;
      if (!p || p.id !== m.id) return;
      this.running = undefined;
      if ('text' in m) this.settle(p, undefined, m.text);
      else this.settle(p, new TokenizeError(m.error.message, m.error.status, m.error.type, m.error.param));
      this.pump();
    });
    const lost = (err: Error) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      const p = this.running;
      this.running = undefined;
      if (p) this.settle(p, new TokenizeError(`chat render worker failed: ${err.message}`, 500, 'InternalServerError'));
      this.pump();
    };
    w.on('error', lost);
    w.on('exit', (code) => lost(new Error(`exited with code ${code}`)));
    // After the listeners: adding a 'message' listener refs the worker again.
    w.unref();
    return w;
  }

  private pump(): void {
    if (this.running || this.queue.length === 0) return;
    const p = this.queue.shift()!;
    this.running = p;
    this.worker ??= this.spawn();
    this.worker.postMessage({ id: p.id, job: p.job });
  }

  private abandon(p: Pending): void {
    const i = this.queue.indexOf(p);
    if (i >= 0) this.queue.splice(i, 1);
    else if (this.running === p) {
      // A render cannot be interrupted: stop the thread running it.
      this.running = undefined;
      const w = this.worker;
      this.worker = undefined;
      this.terminated++;
      void w?.terminate();
    } else return;
    this.settle(p, new TokenizeAbortedError());
    this.pump();
  }

  private settle(p: Pending, err?: Error, text?: string): void {
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    if (err) p.reject(err);
    else p.resolve(text!);
  }
}
