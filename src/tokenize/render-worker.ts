// Chat template rendering off the event loop: jinja costs ~90 us per message here, so a long
// chat rendered inline would hold every other request (100k messages: seconds). One worker
// thread renders in turn (src/util/serial-worker.ts); the main thread only clones the messages
// to it. An abandoned request's render is dropped from the queue, or, if it is running, the
// worker is terminated (the next render starts a fresh one).
import { SerialWorker, type JobError } from '../util/serial-worker.js';
import { TokenizeAbortedError, TokenizeError, type ChatOptions } from './types.js';

export interface RenderJob {
  template: string;
  contentFormat: 'string' | 'openai';
  specialTokens: Record<string, unknown>;
  messages: unknown;
  opts: ChatOptions;
}

const TS = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(TS ? './render-worker-main.ts' : './render-worker-main.js', import.meta.url).href;

/** The thread's error reply as the TokenizeError the tokenizer throws. */
function tokenizeError(e: JobError): TokenizeError {
  if (e.status === 500 && e.type === undefined) return new TokenizeError(`chat render worker failed: ${e.message}`, 500, 'InternalServerError');
  return new TokenizeError(e.message, e.status ?? 500, e.type, e.param ?? null);
}

export class ChatRenderWorker {
  private readonly worker = new SerialWorker<RenderJob, string>(WORKER_URL, tokenizeError, () => new TokenizeAbortedError());

  /** Workers terminated to stop an abandoned render (tests observe it). */
  get terminated(): number {
    return this.worker.terminated;
  }

  render(job: RenderJob, signal?: AbortSignal): Promise<string> {
    return this.worker.run(job, [], signal);
  }

  close(): void {
    this.worker.close();
  }
}
