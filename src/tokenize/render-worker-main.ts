// The chat render worker thread (see render-worker.ts): renders each job with the same code
// the main thread uses, compiled templates cached by source.
import { serveJobs } from '../util/serial-worker.js';
import { compileTemplate, renderChat, type TemplateContext } from './chat.js';
import type { RenderJob } from './render-worker.js';
import { TokenizeError } from './types.js';

const templates = new Map<string, ReturnType<typeof compileTemplate>>();

serveJobs<RenderJob, string>(
  (job) => {
    let template = templates.get(job.template);
    if (!template) {
      if (templates.size >= 16) templates.clear();
      template = compileTemplate(job.template);
      templates.set(job.template, template);
    }
    const ctx: TemplateContext = { template, contentFormat: job.contentFormat, specialTokens: job.specialTokens };
    return { result: renderChat(ctx, job.messages, job.opts) };
  },
  (e) => {
    const te = e instanceof TokenizeError ? e : new TokenizeError(`chat template failed to render: ${(e as Error).message}`, 400);
    return { message: te.message, status: te.status, type: te.type, param: te.param };
  },
);
