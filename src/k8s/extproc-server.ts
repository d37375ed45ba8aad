// Envoy ext_proc server for the Gateway API Inference Extension endpoint-picker protocol
// (llm-d/llm-d-router pkg/epp/handlers/server.go and request.go, 2026; kubernetes-sigs/gateway-api-inference-extension docs/proposals/004-endpoint-picker-protocol). One `Process` stream per
// HTTP request, bodies in FULL_DUPLEX_STREAMED mode:
//   request headers  -> kept (x-request-id added when absent); EoS here = body-less request
//   request body     -> buffered to end_of_stream (or trailers), then one decision:
//                       HeadersResponse{ClearRouteCache, x-gateway-destination-endpoint,
//                       Content-Length} + dynamic metadata envoy.lb, then the body re-sent as
//                       StreamedBodyResponse chunks of <= 62,000 bytes, EoS on the last
//   response headers -> status and content type noted, passed through
//   response body    -> every chunk passed straight back (streaming), usage read on the way
//   errors           -> ImmediateResponse 400 / 413 / 429 / 503 / 500 with an OpenAI-style JSON body
import { randomUUID } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { EppMetrics } from './metrics.js';
import { isPickError, type EndpointPicker, type PickError, type PickSuccess, type ResponseObserver } from './picker.js';
import {
  fromPbValue,
  headerRecord,
  setHeader,
  toPbStruct,
  type HeaderValueOption,
  type Metadata,
  type ProcessingRequest,
  type ProcessingResponse,
} from './proto.js';
import { streamedBodyResponse } from './extproc-codec.js';
import { UsageReader } from './usage.js';

export const DESTINATION_HEADER = 'x-gateway-destination-endpoint';
export const SUBSET_KEY = 'x-gateway-destination-endpoint-subset';
export const SERVED_KEY = 'x-gateway-destination-endpoint-served';
export const LB_NAMESPACE = 'envoy.lb';
export const SUBSET_NAMESPACE = 'envoy.lb.subset_hint';
/** GIE's chunk size for re-sent bodies (pkg/common/envoy/chunking.go). */
export const MAX_BODY_CHUNK = 62_000;
const DEFAULT_MAX_BODY = 64 * 1024 * 1024;

export interface ExtProcOptions {
  picker: EndpointPicker;
  logger: Logger;
  metrics?: EppMetrics;
  /** Chunk size for re-sent request bodies (default and maximum 62,000). */
  chunkSize?: number;
  /** Request bodies above this many bytes are refused with 413 (default 64 MiB). */
  maxBodyBytes?: number;
  /**
   * GIE conformance hooks (conformance/resources/base.yaml EPP replacement): request header
   * `test-epp-endpoint-selection: ip[,ip]` restricts the candidates to those IPs, and the served
   * endpoint is echoed in response header `x-conformance-test-served-endpoint`. Off by default.
   */
  conformanceHooks?: boolean;
}

export const CONFORMANCE_SELECTION_HEADER = 'test-epp-endpoint-selection';
export const CONFORMANCE_SERVED_HEADER = 'x-conformance-test-served-endpoint';

/**
 * What a stream needs from its transport (grpc-js's ServerDuplexStream):
 * events 'data' (a decoded ProcessingRequest), 'end', 'cancelled', 'error'.
 */
export interface ExtProcCall {
  on(event: 'data', listener: (msg: ProcessingRequest) => void): unknown;
  on(event: 'end' | 'cancelled', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  write(msg: ProcessingResponse): unknown;
  end(): unknown;
}
type Call = ExtProcCall;

/** The service implementation to register under envoy.service.ext_proc.v3.ExternalProcessor. */
export function extProcImplementation(opts: ExtProcOptions): grpc.UntypedServiceImplementation {
  return {
    Process: (call: Call) => {
      new ExtProcStream(call, opts).attach();
    },
  };
}

/** Splits a body into Envoy-sized pieces (an empty body is one empty piece). */
export function chunkBody(body: Buffer, size = MAX_BODY_CHUNK): Buffer[] {
  if (body.length === 0) return [body];
  const out: Buffer[] = [];
  for (let off = 0; off < body.length; off += size) out.push(body.subarray(off, Math.min(off + size, body.length)));
  return out;
}

/** Subset hint from filter metadata; null when absent. Accepts a list or a comma string. */
export function readSubsetHint(md: Metadata | undefined): string[] | null {
  const ns = md?.filter_metadata?.[SUBSET_NAMESPACE];
  const field = ns?.fields?.[SUBSET_KEY];
  if (!field) return null;
  const v = fromPbValue(field);
  const items = Array.isArray(v) ? v : [v];
  const out: string[] = [];
  for (const it of items) {
    if (typeof it !== 'string') continue;
    for (const part of it.split(',')) {
      const s = part.trim();
      if (s) out.push(s);
    }
  }
  return out;
}

function readServed(md: Metadata | undefined): string | undefined {
  const v = fromPbValue(md?.filter_metadata?.[LB_NAMESPACE]?.fields?.[SERVED_KEY]);
  return typeof v === 'string' && v ? v : undefined;
}

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  404: 'not_found_error',
  413: 'request_too_large_error',
  429: 'rate_limit_error',
  500: 'internal_error',
  503: 'service_unavailable_error',
};

/** OpenAI-style error body, the same shape `kvrouter serve` returns. */
export function errorBody(err: PickError): Buffer {
  return Buffer.from(JSON.stringify({ error: { message: err.message, type: err.type ?? ERROR_TYPES[err.status] ?? 'internal_error', param: null, code: err.code } }));
}

type Phase = 'headers' | 'body' | 'routed' | 'closed';

class ExtProcStream {
  private phase: Phase = 'headers';
  private readonly arrivedAt = performance.now();
  private headers: Record<string, string> = {};
  private requestId = '';
  private addedRequestId = false;
  private subset: string[] | null = null;
  private chunks: Buffer[] = [];
  private bodyBytes = 0;
  private served: string | undefined;
  private picked: PickSuccess | undefined;
  private observer: ResponseObserver | undefined;
  private status = 0;
  private usage: UsageReader | undefined;
  private firstByteAt = 0;
  private completed = true;
  private observe = false;
  /** A step (message or end) is running asynchronously (a decision); later ones wait here. */
  private busy = false;
  private backlog: Array<() => void | Promise<void>> = [];
  private readonly log: Logger;
  private readonly chunkSize: number;
  private readonly maxBody: number;
  /** Aborted when the stream is cancelled (stops the picker's tokenization). */
  private readonly cancelled = new AbortController();

  constructor(
    private readonly call: Call,
    private readonly opts: ExtProcOptions,
  ) {
    this.log = opts.logger;
    this.chunkSize = Math.max(1, Math.min(opts.chunkSize ?? MAX_BODY_CHUNK, MAX_BODY_CHUNK));
    this.maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  }

  attach(): void {
    this.call.on('data', (msg: ProcessingRequest) => this.enqueue(() => this.handle(msg)));
    this.call.on('end', () => this.enqueue(() => this.close(false)));
    this.call.on('cancelled', () => this.close(true));
    this.call.on('error', () => this.close(true));
  }

  /**
   * Strict order: a message waits for the decision on the previous one. Steps run synchronously
   * while nothing is pending (no promise per message); only a decision makes later steps wait.
   */
  private enqueue(step: () => void | Promise<void>): void {
    if (this.busy) {
      this.backlog.push(step);
      return;
    }
    for (let next: (() => void | Promise<void>) | undefined = step; next; next = this.backlog.shift()) {
      let pending: void | Promise<void> = undefined;
      try {
        pending = next();
      } catch (err) {
        this.fail(err);
      }
      if (pending) {
        this.busy = true;
        pending.then(
          () => this.resume(),
          (err: unknown) => {
            this.fail(err);
            this.resume();
          },
        );
        return;
      }
    }
  }

  private resume(): void {
    this.busy = false;
    const next = this.backlog.shift();
    if (next) this.enqueue(next);
  }

  private write(msg: ProcessingResponse): void {
    if (this.phase === 'closed' || this.observe) return;
    this.call.write(msg);
  }

  private handle(msg: ProcessingRequest): void | Promise<void> {
    if (this.phase === 'closed') return;
    this.observe = msg.observability_mode === true;
    switch (msg.request) {
      case 'request_headers':
        return this.onRequestHeaders(msg);
      case 'request_body': {
        const b = msg.request_body ?? {};
        if (this.phase !== 'body') return; // body after a decision (or before headers): nothing to do
        if (msg.metadata_context && this.subset === null) this.subset = readSubsetHint(msg.metadata_context);
        if (b.body && b.body.length > 0) {
          this.bodyBytes += b.body.length;
          // Envoy streams the body in chunks: refuse as soon as it outgrows the limit, never buffer past it
          if (this.bodyBytes > this.maxBody) return this.tooLarge(`request body of more than ${this.maxBody} bytes`);
          this.chunks.push(Buffer.from(b.body.buffer, b.body.byteOffset, b.body.byteLength));
        }
        if (b.end_of_stream) return this.decide();
        return;
      }
      case 'request_trailers':
        // Trailers end the body in FULL_DUPLEX_STREAMED mode when the last chunk had no EoS.
        if (this.phase === 'body') return this.decide().then(() => this.write({ request_trailers: {} }));
        this.write({ request_trailers: {} });
        return;
      case 'response_headers':
        return this.onResponseHeaders(msg);
      case 'response_body': {
        const b = msg.response_body ?? {};
        const body = b.body ?? Buffer.alloc(0);
        if (body.length > 0 && this.firstByteAt === 0) this.firstByteAt = performance.now();
        this.usage?.push(body);
        this.write(streamedBodyResponse('response_body', body as Buffer, b.end_of_stream === true));
        if (b.end_of_stream) this.complete(undefined);
        return;
      }
      case 'response_trailers':
        this.write({ response_trailers: {} });
        this.complete(undefined);
        return;
      default:
        this.log.warn({ request: msg.request }, 'ext-proc message without a known request kind ignored');
    }
  }

  private onRequestHeaders(msg: ProcessingRequest): void {
    const h = msg.request_headers ?? {};
    this.headers = headerRecord(h.headers);
    this.subset = readSubsetHint(msg.metadata_context);
    const selection = this.opts.conformanceHooks ? this.headers[CONFORMANCE_SELECTION_HEADER] : undefined;
    if (selection !== undefined) {
      const chosen = selection.split(',').map((x) => x.trim()).filter(Boolean);
      this.subset = this.subset === null ? chosen : this.subset.filter((e) => chosen.some((c) => e === c || e.startsWith(`${c}:`)));
    }
    this.requestId = this.headers['x-request-id'] ?? '';
    if (!this.requestId) {
      this.requestId = randomUUID();
      this.addedRequestId = true;
      this.headers['x-request-id'] = this.requestId;
    }
    if (this.log.isLevelEnabled('debug')) this.log.debug({ 'x-request-id': this.requestId, path: this.path() }, 'EPP received request');
    const declared = this.headers['content-length'];
    if (declared !== undefined && /^\d+$/.test(declared.trim()) && Number(declared.trim()) > this.maxBody) {
      return this.tooLarge(`request body of ${declared.trim()} bytes`);
    }
    if (h.end_of_stream) {
      // Body-less request (e.g. GET /v1/models): any ready endpoint will do.
      const outcome = this.subset !== null && this.subset.length === 0
        ? { error: { status: 503, code: 'empty_subset', message: 'the endpoint subset hint is empty' } }
        : this.opts.picker.pickAny({ requestId: this.requestId, path: this.path(), headers: this.headers, subset: this.subset });
      if (isPickError(outcome)) return this.reject(outcome.error);
      this.opts.metrics?.streamsBy.header_only.inc();
      this.route(outcome, null);
      return;
    }
    this.phase = 'body';
  }

  private path(): string {
    return this.headers[':path'] || this.headers['x-original-path'] || this.headers['x-forwarded-path'] || '/v1/completions';
  }

  private async decide(): Promise<void> {
    const body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.bodyBytes);
    this.chunks = [];
    const t0 = performance.now();
    if (this.bodyBytes > this.maxBody) return this.tooLarge(`request body of ${this.bodyBytes} bytes`);
    if (this.subset !== null && this.subset.length === 0) {
      return this.reject({ status: 503, code: 'empty_subset', message: 'the endpoint subset hint is empty' });
    }
    const outcome = await this.opts.picker.pick({ requestId: this.requestId, path: this.path(), headers: this.headers, body, subset: this.subset, signal: this.cancelled.signal });
    if (isPickError(outcome)) {
      this.opts.metrics?.pickError.observe((performance.now() - t0) / 1000);
      return this.reject(outcome.error);
    }
    this.route(outcome, body);
    this.opts.metrics?.pickOk.observe((performance.now() - t0) / 1000);
    this.opts.metrics?.streamsBy.picked.inc();
  }

  /** The routing answer: headers (+ metadata), then the body in chunks. */
  private route(p: PickSuccess, received: Buffer | null): void {
    const dest = p.endpoints.join(',');
    const body = received === null ? null : (p.body ?? received);
    const set: HeaderValueOption[] = [setHeader(DESTINATION_HEADER, dest)];
    if (this.addedRequestId) set.push(setHeader('x-request-id', this.requestId));
    if (body !== null) set.push(setHeader('content-length', String(body.length)));
    for (const [k, v] of Object.entries(p.headers ?? {})) set.push(setHeader(k, v));
    const remove: string[] = [];
    for (const k of [SUBSET_KEY, SERVED_KEY]) if (k in this.headers) remove.push(k);
    this.write({
      request_headers: { response: { clear_route_cache: true, header_mutation: { set_headers: set, remove_headers: remove } } },
      dynamic_metadata: toPbStruct({ [LB_NAMESPACE]: { [DESTINATION_HEADER]: dest } }),
    });
    if (body !== null) {
      const pieces = chunkBody(body, this.chunkSize);
      for (let i = 0; i < pieces.length; i++) {
        this.write(streamedBodyResponse('request_body', pieces[i], i === pieces.length - 1));
      }
      if (this.log.isLevelEnabled('debug')) this.log.debug({ 'x-request-id': this.requestId, endpoint: dest, chunks: pieces.length }, 'EPP sent request body response(s) to proxy');
    }
    this.phase = 'routed';
    this.picked = p;
    this.observer = p.observer;
    this.completed = false;
    const mm = this.opts.metrics?.forModel(p.model ?? '', p.targetModel ?? p.model ?? '');
    mm?.requests.inc();
    mm?.running.inc();
  }

  /** 413 as `kvrouter serve` answers it (code body_too_large); the chunks held so far are dropped. */
  private tooLarge(what: string): void {
    this.chunks = [];
    this.reject({ status: 413, code: 'body_too_large', message: `${what} exceeds the limit of ${this.maxBody} bytes` });
  }

  private reject(err: PickError): void {
    const set: HeaderValueOption[] = [setHeader('content-type', 'application/json')];
    for (const [k, v] of Object.entries(err.headers ?? {})) set.push(setHeader(k, v));
    this.log.info({ 'x-request-id': this.requestId, status: err.status, code: err.code, message: err.message }, 'EPP rejected request');
    this.opts.metrics?.error(err.model ?? '', err.model ?? '', err.status);
    this.opts.metrics?.streamsBy.rejected.inc();
    this.write({
      immediate_response: { status: { code: err.status }, headers: { set_headers: set }, body: errorBody(err), details: err.code },
    });
    // Envoy ignores anything after an immediate response; end our side of the stream.
    this.phase = 'closed';
    this.call.end();
  }

  private onResponseHeaders(msg: ProcessingRequest): void {
    const h = msg.response_headers ?? {};
    const headers = headerRecord(h.headers);
    this.status = Number(headers[':status'] ?? 0) || 0;
    this.served = readServed(msg.metadata_context) ?? this.picked?.endpoints[0];
    this.usage = new UsageReader((headers['content-type'] ?? '').includes('text/event-stream'));
    this.observer?.started?.(this.status, this.served);
    const echo = this.opts.conformanceHooks && this.served ? { header_mutation: { set_headers: [setHeader(CONFORMANCE_SERVED_HEADER, this.served)] } } : {};
    this.write({ response_headers: { response: echo } });
    if (h.end_of_stream) this.complete(undefined);
  }

  /** Response finished (or the stream went away): accounting and the observer, once. */
  private complete(aborted: string | undefined): void {
    if (this.completed) return;
    this.completed = true;
    const p = this.picked;
    const usage = this.usage?.finish();
    const now = performance.now();
    const ttftMs = this.firstByteAt ? this.firstByteAt - this.arrivedAt : undefined;
    const labels = { model_name: p?.model ?? '', target_model_name: p?.targetModel ?? p?.model ?? '' };
    const m = this.opts.metrics;
    if (m) {
      const mm = m.forModel(labels.model_name, labels.target_model_name);
      mm.running.dec();
      mm.duration.observe((now - this.arrivedAt) / 1000);
      if (ttftMs !== undefined) mm.ttft.observe(ttftMs / 1000);
      if (usage?.promptTokens !== undefined) mm.inputTokens.observe(usage.promptTokens);
      if (usage?.completionTokens !== undefined) mm.outputTokens.observe(usage.completionTokens);
      if (usage?.cachedTokens !== undefined) mm.cachedTokens.observe(usage.cachedTokens);
      if (aborted) m.streamsBy.aborted.inc();
      else if (this.status !== 0 && (this.status < 200 || this.status >= 300)) m.error(labels.model_name, labels.target_model_name, this.status);
    }
    try {
      this.observer?.completed({
        status: this.status,
        servedEndpoint: this.served ?? p?.endpoints[0],
        ttftMs,
        promptTokens: usage?.promptTokens,
        completionTokens: usage?.completionTokens,
        cachedTokens: usage?.cachedTokens,
        aborted: aborted !== undefined,
        error: aborted,
      });
    } catch (err) {
      this.log.warn({ err, 'x-request-id': this.requestId }, 'response observer failed');
    }
  }

  private fail(err: unknown): void {
    this.log.error({ err, 'x-request-id': this.requestId }, 'ext-proc stream failed');
    if (this.phase === 'headers' || this.phase === 'body') {
      this.reject({ status: 500, code: 'internal', message: 'internal error in the endpoint picker' });
    } else {
      this.complete('internal error');
      this.close(false);
    }
  }

  private close(aborted: boolean): void {
    if (aborted) this.cancelled.abort();
    if (!this.completed) this.complete(aborted ? 'stream cancelled' : 'stream ended before the response completed');
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    if (!aborted) this.call.end();
  }
}
