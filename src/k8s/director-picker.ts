// Adapts the router's Director (src/gateway/director.ts) to the ext-proc protocol layer, so the
// endpoint picker decides exactly as `kvrouter serve` does: the same parser, candidates,
// admission, producers, scheduler and pre-request hooks; the response's life is reported back
// through the Director's in-flight accounting and response hooks.
import type { EndpointPool, PoolEndpoint } from '../endpoints/pool.js';
import type { Director } from '../gateway/director.js';
import { GatewayError } from '../gateway/errors.js';
import { apiForPath, parseOpenAIRequestAsync, type ParseOptions } from '../gateway/parse.js';
import type { InferenceRequest } from '../scheduler/types.js';
import { subsetAllows, type EndpointPicker, type PickError, type PickInput, type PickOutcome, type ResponseOutcome } from './picker.js';

export interface DirectorPickerOptions {
  director: Director;
  pool: EndpointPool;
  parse?: ParseOptions;
  /** Readiness beyond "has a ready endpoint" (e.g. discovery synced). */
  ready?: () => boolean;
}

function toPickError(err: unknown, model?: string): PickError {
  if (err instanceof GatewayError) return { status: err.status, message: err.message, code: err.code, type: err.type, headers: err.headers, model };
  return { status: 500, message: `internal error: ${(err as Error)?.message ?? String(err)}`, code: 'internal_error', type: 'internal_error', model };
}

export class DirectorPicker implements EndpointPicker {
  constructor(private readonly o: DirectorPickerOptions) {}

  ready(): boolean {
    return (this.o.ready?.() ?? true) && this.o.pool.ready().length > 0;
  }

  /** Subset entries may be bare IPs; the Director matches full addresses. */
  private expandSubset(subset: string[] | null): string[] | null {
    if (subset === null) return null;
    const allowed = new Set(subset);
    return this.o.pool.all().filter((e) => subsetAllows(allowed, e.address)).map((e) => e.address).concat(subset.filter((s) => s.includes(':')));
  }

  async pick(input: PickInput): Promise<PickOutcome> {
    // Paths the router does not schedule (embeddings, responses, ...) go to any ready endpoint,
    // as llm-d's parser "skip" does.
    if (!apiForPath(input.path)) return this.pickAny(input);
    let req: InferenceRequest;
    try {
      req = await parseOpenAIRequestAsync(input.path, input.headers, input.body, this.o.parse, input.signal);
    } catch (err) {
      return { error: toPickError(err) };
    }
    req.subset = this.expandSubset(input.subset);
    let targets;
    let extraHeaders: Record<string, string> | undefined;
    try {
      const result = await this.o.director.schedule(req);
      targets = result.targets as PoolEndpoint[];
      extraHeaders = result.headers;
    } catch (err) {
      return { error: toPickError(err, req.model) };
    }
    const director = this.o.director;
    const pool = this.o.pool;
    let endpoint = targets[0];
    director.requestSent(req, endpoint);
    return {
      endpoints: targets.map((e) => e.address),
      headers: extraHeaders,
      model: req.model,
      targetModel: req.targetModel,
      observer: {
        started(status: number, served: string | undefined) {
          // Envoy may have used a fallback: account the request to the endpoint that served it.
          const actual = served ? pool.get(served) : undefined;
          if (actual && actual !== endpoint) {
            endpoint = actual;
            director.requestSent(req, endpoint);
          }
          if (status >= 200 && status < 300) director.responseStarted(req, endpoint);
        },
        completed(o: ResponseOutcome) {
          director.requestFinished(req, endpoint, {
            status: o.status,
            ttftMs: o.ttftMs,
            promptTokens: o.promptTokens,
            completionTokens: o.completionTokens,
            cachedTokens: o.cachedTokens,
            error: o.aborted ? (o.error ?? 'aborted') : undefined,
          });
        },
      },
    };
  }

  pickAny(input: Omit<PickInput, 'body'>): PickOutcome {
    let ready = this.o.pool.ready() as readonly PoolEndpoint[];
    if (input.subset !== null) {
      const allowed = new Set(input.subset);
      ready = ready.filter((e) => subsetAllows(allowed, e.address));
    }
    if (ready.length === 0) {
      return { error: { status: 503, message: input.subset ? `no ready endpoint in the subset [${input.subset.join(', ')}]` : 'no ready endpoint', code: 'no_ready_endpoint', type: 'service_unavailable_error' } };
    }
    return { endpoints: [ready[Math.floor(Math.random() * ready.length)].address] };
  }
}
