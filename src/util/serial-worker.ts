// One worker thread that runs jobs one at a time, for work that would hold the event loop
// (parsing a large request body). A job whose signal aborts is dropped from the queue, or, if it
// is running, its thread is terminated (JSON.parse cannot be interrupted); the next job starts a
// fresh thread. An idle thread is unref'd: it never keeps the process alive.
//
// The thread's module answers each `{ id, job }` message with `{ id, result }` or
// `{ id, error: { message, status?, code? } }` (see `serveJobs`).
import { parentPort, Worker, type Transferable } from 'node:worker_threads';

export interface JobError {
  message: string;
  status?: number;
  code?: string;
  /** The error's type (e.g. an OpenAI error type), when the caller maps it back. */
  type?: string;
  param?: string | null;
}

type Reply<R> = { id: number; result: R } | { id: number; error: JobError };

interface Pending<J, R> {
  id: number;
  job: J;
  transfer: Transferable[];
  resolve: (r: R) => void;
  reject: (err: Error) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** The boot script of a thread running `moduleUrl`; from TypeScript sources it registers tsx first, as bin/kvrouter.js does. */
function bootScript(moduleUrl: string): string {
  const ts = moduleUrl.endsWith('.ts');
  return `import(${JSON.stringify(ts ? import.meta.resolve('tsx/esm/api') : 'node:process')}).then((m) => { m.register?.(); return import(${JSON.stringify(moduleUrl)}); });`;
}

export class SerialWorker<J, R> {
  private worker: Worker | undefined;
  private readonly queue: Pending<J, R>[] = [];
  private running: Pending<J, R> | undefined;
  private nextId = 1;
  /** Threads terminated to stop an abandoned job (tests observe it). */
  terminated = 0;

  /**
   * @param moduleUrl the thread's module (it calls `serveJobs`)
   * @param toError turns the thread's error reply into the Error the caller gets
   * @param aborted the Error of a job whose signal aborted
   */
  constructor(
    private readonly moduleUrl: string,
    private readonly toError: (e: JobError) => Error,
    private readonly aborted: () => Error,
  ) {}

  run(job: J, transfer: Transferable[] = [], signal?: AbortSignal): Promise<R> {
    if (signal?.aborted) return Promise.reject(this.aborted());
    return new Promise<R>((resolve, reject) => {
      const p: Pending<J, R> = { id: this.nextId++, job, transfer, resolve, reject, signal };
      if (signal) {
        p.onAbort = () => this.abandon(p);
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.queue.push(p);
      this.pump();
    });
  }

  /** Jobs queued or running. */
  get pending(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  close(): void {
    const w = this.worker;
    this.worker = undefined;
    void w?.terminate();
    const err = new Error('worker closed');
    if (this.running) this.settle(this.running, err);
    this.running = undefined;
    for (const p of this.queue.splice(0)) this.settle(p, err);
  }

  private spawn(): Worker {
    const w = new Worker(bootScript(this.moduleUrl), { eval: true });
    w.on('message', (m: Reply<R>) => {
      const p = this.running;
      if (!p || p.id !== m.id) return;
      this.running = undefined;
      if ('error' in m) this.settle(p, this.toError(m.error));
      else this.settle(p, undefined, m.result);
      this.pump();
      if (!this.running) w.unref();
    });
    const lost = (err: Error) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      const p = this.running;
      this.running = undefined;
      if (p) this.settle(p, this.toError({ message: `worker thread failed: ${err.message}`, status: 500 }));
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
    // Referenced while it works (a caller awaits it), unreferenced while idle.
    this.worker.ref();
    this.worker.postMessage({ id: p.id, job: p.job }, p.transfer);
  }

  private abandon(p: Pending<J, R>): void {
    const i = this.queue.indexOf(p);
    if (i >= 0) this.queue.splice(i, 1);
    else if (this.running === p) {
      this.running = undefined;
      const w = this.worker;
      this.worker = undefined;
      this.terminated++;
      void w?.terminate();
    } else return;
    this.settle(p, this.aborted());
    this.pump();
  }

  private settle(p: Pending<J, R>, err?: Error, result?: R): void {
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    if (err) p.reject(err);
    else p.resolve(result!);
  }
}

/** In a SerialWorker's thread: answers each job with `handle`'s result (and its transfer list) or its error. */
export function serveJobs<J, R>(handle: (job: J) => { result: R; transfer?: Transferable[] }, errorOf: (e: unknown) => JobError): void {
  parentPort!.on('message', ({ id, job }: { id: number; job: J }) => {
    let reply: { result: R; transfer?: Transferable[] };
    try {
      reply = handle(job);
    } catch (e) {
      parentPort!.postMessage({ id, error: errorOf(e) });
      return;
    }
    parentPort!.postMessage({ id, result: reply.result }, reply.transfer ?? []);
  });
}
