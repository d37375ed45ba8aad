// Proxies one scheduled request to its endpoint over pooled keep-alive HTTP/1.1 connections
// (./http1) and streams the answer back chunk by chunk (never buffered). A connect failure
// (nothing sent) moves on to the next-best endpoint; anything later is reported, never retried
// (POST is not idempotent).
import type { Logger } from 'pino';
import { isConnectError, type EndpointPool, type PoolEndpoint } from '../endpoints/pool.js';
import type { Endpoint, InferenceRequest, ResponseInfo, SchedulingResult } from '../scheduler/types.js';
import type { Director } from './director.js';
import { GatewayError } from './errors.js';
import type { ServerReply, ServerRequest } from '../http1/server.js';
import { Http1Pool, type ResponseHandler, type ResponseHead, type UpstreamCall, type UpstreamError } from '../http1/client.js';
import type { RouterMetrics } from './metrics.js';
import { REQUEST_ID_HEADER } from './parse.js';

export const ENDPOINT_HEADER = 'x-kvrouter-endpoint';
/** Non-streamed responses up to this size go out in a single write. */
const HOLD_LIMIT = 256 * 1024;

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
  'content-length',
  'expect',
]);

export interface ProxyOptions {
  logger: Logger;
  pool: EndpointPool;
  director: Director;
  metrics?: RouterMetrics;
  /** Time to the upstream's response headers (504 beyond). Default 10 min: long prompts queue. */
  headersTimeoutMs?: number;
  /** Longest silence between body chunks. Default 10 min. */
  bodyTimeoutMs?: number;
  /** Connections per endpoint. */
  connectionsPerEndpoint?: number;
  /** Attempts on connect failures (first try included). */
  maxAttempts?: number;
}

/** Usage is read from the last bytes of the body (the JSON body or the final SSE chunks). */
const TAIL_BYTES = 8192;

/** The last TAIL_BYTES of a body kept as chunk references, decoded once at the end. */
function tailText(chunks: Buffer[]): string {
  let n = 0;
  let i = chunks.length;
  while (i > 0 && n < TAIL_BYTES) n += chunks[--i].length;
  const tail = i === chunks.length - 1 ? chunks[i] : Buffer.concat(chunks.slice(i));
  return tail.toString('latin1', Math.max(0, tail.length - TAIL_BYTES));
}

/** Upstream usage when it could be read from the response (non-stream JSON or the SSE usage chunk). */
function extractUsage(text: string): { prompt?: number; completion?: number; cached?: number } | undefined {
  const at = text.lastIndexOf('"usage"');
  if (at < 0) return undefined;
  const m = /"usage"\s*:\s*(\{[^{}]*(?:\{[^{}]*\}[^{}]*)?\})/.exec(text.slice(at));
  if (!m) return undefined;
  try {
    const u = JSON.parse(m[1]) as { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } | null };
    return { prompt: u.prompt_tokens, completion: u.completion_tokens, cached: u.prompt_tokens_details?.cached_tokens };
  } catch {
    return undefined;
  }
}

type Outcome = { ok: true; info: ResponseInfo & { endpoint: string } } | { ok: false; err: UpstreamError };

/**
 * One attempt at one endpoint: the upstream's callbacks write straight into the client's
 * response, in the same tick the bytes arrive.
 */
class Exchange implements ResponseHandler {
  call!: UpstreamCall;
  readonly done: Promise<Outcome>;
  private settle!: (o: Outcome) => void;
  private settled = false;
  private started = false;
  readonly info: ResponseInfo & { endpoint: string };
  /** Non-streamed answers are small: held to leave with the headers in one write. */
  private held: Buffer[] | null = null;
  private heldBytes = 0;
  /** The last chunks of the body (at least TAIL_BYTES) to read `usage` from at the end. */
  private recent: Buffer[] = [];
  private recentBytes = 0;
  private readonly onDrain = () => this.call.resume();

  constructor(
    private readonly proxy: Proxy,
    private readonly ireq: InferenceRequest,
    private readonly res: ServerReply,
    private readonly target: PoolEndpoint,
    private readonly startedAt: number,
  ) {
    this.info = { status: 502, endpoint: target.address };
    this.done = new Promise((resolve) => (this.settle = resolve));
  }

  onResponseStart(head: ResponseHead): void {
    this.started = true;
    const { ireq, target, res } = this;
    const director = this.proxy.director;
    director.responseStarted(ireq, target);
    const out: Record<string, string | string[]> = {};
    const h = head.headers;
    for (const k in h) if (!HOP_BY_HOP.has(k)) out[k] = h[k];
    const len = h['content-length'];
    if (typeof len === 'string') out['content-length'] = len;
    out[REQUEST_ID_HEADER] = ireq.requestId;
    out[ENDPOINT_HEADER] = target.address;
    Object.assign(out, director.responseHeaders(ireq, target));
    this.info.status = head.status;
    res.writeHead(head.status, out);
    const sse = String(h['content-type'] ?? '').includes('event-stream');
    if (ireq.stream || sse) res.flushHeaders();
    else this.held = [];
  }

  onData(chunk: Buffer): boolean {
    if (this.info.ttftMs === undefined) {
      this.info.ttftMs = performance.now() - this.startedAt;
      this.proxy.director.firstToken(this.ireq, this.target);
    }
    const recent = this.recent;
    recent.push(chunk);
    this.recentBytes += chunk.length;
    if (recent.length > 8 && this.recentBytes - recent[0].length >= TAIL_BYTES) {
      // Drop chunks no longer needed for the tail (in batches: no shift per chunk).
      let drop = 0;
      while (this.recentBytes - recent[drop].length >= TAIL_BYTES) this.recentBytes -= recent[drop++].length;
      this.recent = recent.slice(drop);
    }
    if (this.held) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      if (this.heldBytes <= HOLD_LIMIT) return true;
      for (const c of this.held) this.res.write(c);
      this.held = null;
      return true;
    }
    if (this.res.write(chunk)) return true;
    // Backpressure: stop reading the upstream until the client has taken what it has.
    this.res.once('drain', this.onDrain);
    return false;
  }

  onComplete(): void {
    const held = this.held;
    if (held) this.res.end(held.length === 1 ? held[0] : Buffer.concat(held, this.heldBytes));
    else this.res.end();
    this.res.off('drain', this.onDrain);
    const usage = this.recent.length ? extractUsage(tailText(this.recent)) : undefined;
    if (usage) {
      this.info.promptTokens = usage.prompt;
      this.info.completionTokens = usage.completion;
      this.info.cachedTokens = usage.cached;
    }
    this.finish({ ok: true, info: this.info });
  }

  onError(err: UpstreamError): void {
    if (!this.started) {
      this.finish({ ok: false, err });
      return;
    }
    // Mid-response: the status line is out, so the client learns of it by the connection closing.
    this.info.error = `upstream body failed: ${err.message}`;
    this.proxy.logger.warn({ 'x-request-id': this.ireq.requestId, endpoint: this.target.address, err: err.message }, 'upstream stream failed mid-response');
    this.res.off('drain', this.onDrain);
    this.res.destroy();
    this.finish({ ok: true, info: this.info });
  }

  /** The client went away: stop the upstream call. */
  cancel(): void {
    if (this.settled) return;
    this.call.abort();
    this.res.off('drain', this.onDrain);
    if (!this.started) this.info.status = 499;
    this.info.error = 'client closed request';
    this.finish({ ok: true, info: this.info });
  }

  private finish(o: Outcome): void {
    if (this.settled) return;
    this.settled = true;
    this.settle(o);
  }
}

export class Proxy {
  private readonly clients = new Map<string, Http1Pool>();
  private readonly o: Required<Pick<ProxyOptions, 'headersTimeoutMs' | 'bodyTimeoutMs' | 'connectionsPerEndpoint' | 'maxAttempts'>> & ProxyOptions;
  readonly logger: Logger;
  readonly director: Director;

  constructor(opts: ProxyOptions) {
    // Explicit `undefined` options (e.g. an unset flag passed through) must not erase the defaults.
    this.o = {
      ...opts,
      headersTimeoutMs: opts.headersTimeoutMs ?? 600_000,
      bodyTimeoutMs: opts.bodyTimeoutMs ?? 600_000,
      connectionsPerEndpoint: opts.connectionsPerEndpoint ?? 1024,
      maxAttempts: opts.maxAttempts ?? 3,
    };
    this.logger = opts.logger;
    this.director = opts.director;
    opts.pool.on('removed', (e: PoolEndpoint) => {
      const c = this.clients.get(e.address);
      this.clients.delete(e.address);
      // Requests in flight finish; idle connections close now.
      c?.close();
    });
  }

  private client(e: PoolEndpoint): Http1Pool {
    let c = this.clients.get(e.address);
    if (!c) {
      c = new Http1Pool(e.origin, {
        connections: this.o.connectionsPerEndpoint,
        headersTimeoutMs: this.o.headersTimeoutMs,
        bodyTimeoutMs: this.o.bodyTimeoutMs,
        connectTimeoutMs: 2_000,
      });
      this.clients.set(e.address, c);
    }
    return c;
  }

  /** Targets to try: the scheduler's ranking, then the remaining candidates by total score. */
  private attemptOrder(result: SchedulingResult, candidates: readonly Endpoint[]): PoolEndpoint[] {
    const order = [...result.targets] as PoolEndpoint[];
    if (order.length >= this.o.maxAttempts) return order.slice(0, this.o.maxAttempts);
    const totals = result.profileResults.get(result.primaryProfileName)?.totals;
    const rest = candidates.filter((e) => !order.includes(e as PoolEndpoint)) as PoolEndpoint[];
    rest.sort((a, b) => (totals?.get(b.address) ?? 0) - (totals?.get(a.address) ?? 0));
    return order.concat(rest).slice(0, this.o.maxAttempts);
  }

  /**
   * Sends `body` to the scheduled endpoint and streams the answer into `res`. Throws
   * GatewayError (502/504) only while nothing has been written to `res`.
   */
  async forward(
    ireq: InferenceRequest,
    clientReq: ServerRequest,
    res: ServerReply,
    body: Buffer,
    result: SchedulingResult,
    candidates: readonly Endpoint[],
    startedAt: number,
  ): Promise<ResponseInfo & { endpoint?: string }> {
    const headers: Record<string, string> = {};
    for (const k in ireq.headers) if (!HOP_BY_HOP.has(k)) headers[k] = ireq.headers[k];
    headers[REQUEST_ID_HEADER] = ireq.requestId;
    headers['content-length'] = String(body.length);
    if (result.headers) Object.assign(headers, result.headers);

    let current: Exchange | null = null;
    let clientGone = false;
    const onClose = () => {
      if (res.writableFinished) return;
      clientGone = true;
      current?.cancel();
    };
    res.on('close', onClose);

    const order = this.attemptOrder(result, candidates);
    const path = clientReq.url;
    let lastErr: UpstreamError | undefined;
    try {
      for (let i = 0; i < order.length; i++) {
        const target = order[i];
        if (clientGone) return { status: 499, error: 'client closed request', endpoint: target.address };
        this.director.requestSent(ireq, target);
        const ex = new Exchange(this, ireq, res, target, startedAt);
        current = ex;
        ex.call = this.client(target).request({ method: 'POST', path, headers, body }, ex);
        const out = await ex.done;
        current = null;
        if (out.ok) {
          this.director.requestFinished(ireq, target, out.info);
          return out.info;
        }
        const err = out.err;
        this.director.requestFinished(ireq, target, { status: 502, error: err.message });
        if (err.phase === 'connect' && isConnectError(err)) {
          this.o.pool.reportConnectFailure(target.address, err);
          this.o.metrics?.retries.inc({ endpoint: target.address, reason: 'connect' });
          this.logger.warn({ 'x-request-id': ireq.requestId, endpoint: target.address, err: err.message }, 'upstream refused the connection; trying the next endpoint');
          lastErr = err;
          continue;
        }
        if (err.code === 'KVR_HEADERS_TIMEOUT') {
          throw new GatewayError(504, `endpoint ${target.address} did not answer within ${this.o.headersTimeoutMs} ms`, 'gateway_timeout_error', 'upstream_timeout');
        }
        throw new GatewayError(502, `endpoint ${target.address} failed: ${err.message}`, 'bad_gateway_error', 'upstream_error');
      }
      throw new GatewayError(
        502,
        `no endpoint accepted the connection (${order.map((e) => e.address).join(', ')}): ${lastErr?.message ?? 'unknown error'}`,
        'bad_gateway_error',
        'upstream_connect_failed',
      );
    } finally {
      res.off('close', onClose);
    }
  }

  async close(): Promise<void> {
    for (const c of this.clients.values()) c.destroy();
    this.clients.clear();
  }
}
