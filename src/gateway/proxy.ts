// Proxies one scheduled request to its endpoint through an undici Pool per endpoint and streams
// the answer back chunk by chunk (never buffered), with backpressure both ways. Upstream faults
// are handled as Envoy does them: while nothing has reached the client, a refused connection,
// a reset before the response head, or a 502/503 from the pod is retried on the next-best
// endpoint (bounded); after the first byte went to the client nothing is retried. Every attempt's
// outcome feeds the outlier detector (ejection, slow start).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { Pool, type Dispatcher } from 'undici';
import { isConnectError, type EndpointPool, type PoolEndpoint } from '../endpoints/pool.js';
import type { OutlierDetector } from '../endpoints/outlier.js';
import type { Endpoint, InferenceRequest, ResponseInfo, SchedulingResult } from '../scheduler/types.js';
import type { Director } from './director.js';
import { GatewayError } from './errors.js';
import { HTTP_EDGE_DEFAULTS } from './limits.js';
import type { RouterMetrics } from './metrics.js';
import { REQUEST_ID_HEADER } from './parse.js';
import { realClock, type Clock, type ClockTimer } from '../util/clock.js';

export const ENDPOINT_HEADER = 'x-kvrouter-endpoint';
/** Non-streamed responses up to this size go out in a single write. */
const HOLD_LIMIT = 256 * 1024;
/** Connection attempts on refused connections (nothing was sent: always safe to move on). */
const CONNECT_ATTEMPTS = 3;

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
  outlier?: OutlierDetector;
  /** Time to open a connection to an endpoint. */
  connectTimeoutMs?: number;
  /** Time to the upstream's response head (504 beyond). */
  firstByteTimeoutMs?: number;
  /** Longest silence between body chunks (the answer is cut beyond). */
  idleTimeoutMs?: number;
  /** Retries after a reset before the head or a 502/503, while nothing reached the client. */
  retries?: number;
  /** Connections per endpoint. */
  connectionsPerEndpoint?: number;
  /** Timers of the half-close probe. */
  clock?: Clock;
}

const EMPTY = Buffer.alloc(0);

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

/** Why an attempt ended without a response going to the client. */
type FailKind = 'connect' | 'reset' | 'status' | 'timeout' | 'bad_response';

type Outcome = { ok: true; info: ResponseInfo & { endpoint: string } } | { ok: false; kind: FailKind; err: Error; status?: number };

const RESET_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'UND_ERR_CLOSED']);

function classify(err: Error & { code?: string }): FailKind {
  if (isConnectError(err)) return 'connect';
  if (err.code === 'UND_ERR_HEADERS_TIMEOUT') return 'timeout';
  if (err.code && RESET_CODES.has(err.code)) return 'reset';
  return 'bad_response';
}

/**
 * One attempt at one endpoint, as an undici dispatch handler: the upstream's callbacks write
 * straight into the client's response, in the same tick the bytes arrive.
 */
class Exchange implements Dispatcher.DispatchHandler {
  readonly done: Promise<Outcome>;
  private settle!: (o: Outcome) => void;
  private settled = false;
  /** The response head went to the client: from here on nothing is retried. */
  private started = false;
  private controller: Dispatcher.DispatchController | null = null;
  private cancelled = false;
  readonly info: ResponseInfo & { endpoint: string };
  /** Non-streamed answers are small: held to leave with the headers in one write. */
  private held: Buffer[] | null = null;
  private heldBytes = 0;
  /** The last chunks of the body (at least TAIL_BYTES) to read `usage` from at the end. */
  private recent: Buffer[] = [];
  private recentBytes = 0;
  private readonly onDrain = () => this.controller?.resume();

  constructor(
    private readonly proxy: UpstreamProxy,
    private readonly ireq: InferenceRequest,
    private readonly res: ServerResponse,
    private readonly target: PoolEndpoint,
    private readonly startedAt: number,
    /** 502/503 from the pod is retried rather than relayed (a later attempt remains). */
    private readonly retryStatus: boolean,
  ) {
    this.info = { status: 502, endpoint: target.address };
    this.done = new Promise((resolve) => (this.settle = resolve));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.cancelled) controller.abort(new Error('client closed request'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    this.controller = controller;
    if (this.settled) return;
    if (this.retryStatus && (status === 502 || status === 503)) {
      // Nothing went to the client yet: drop this answer and let the caller try elsewhere.
      this.finish({ ok: false, kind: 'status', status, err: new Error(`endpoint answered ${status}`) });
      controller.abort(new Error('retrying elsewhere'));
      return;
    }
    this.started = true;
    const { ireq, target, res } = this;
    const director = this.proxy.director;
    director.responseStarted(ireq, target);
    const out: Record<string, string | string[]> = {};
    for (const k in headers) {
      const v = headers[k];
      if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
    }
    const len = headers['content-length'];
    if (typeof len === 'string') out['content-length'] = len;
    out[REQUEST_ID_HEADER] = ireq.requestId;
    out[ENDPOINT_HEADER] = target.address;
    Object.assign(out, director.responseHeaders(ireq, target));
    this.info.status = status;
    res.writeHead(status, out);
    const sse = String(headers['content-type'] ?? '').includes('event-stream');
    if (ireq.stream || sse) res.flushHeaders();
    else this.held = [];
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.started || this.settled) return;
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
      if (this.heldBytes <= HOLD_LIMIT) return;
      for (const c of this.held) this.res.write(c);
      this.held = null;
      return;
    }
    if (this.res.write(chunk)) return;
    // Backpressure: stop reading the upstream until the client has taken what it has.
    controller.pause();
    this.res.once('drain', this.onDrain);
  }

  onResponseEnd(): void {
    if (!this.started || this.settled) return;
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

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.settled) return;
    if (!this.started) {
      this.finish({ ok: false, kind: classify(err), err });
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
    this.cancelled = true;
    this.res.off('drain', this.onDrain);
    if (!this.started) this.info.status = 499;
    this.info.error = 'client closed request';
    this.finish({ ok: true, info: this.info });
    this.controller?.abort(new Error('client closed request'));
  }

  private finish(o: Outcome): void {
    if (this.settled) return;
    this.settled = true;
    this.settle(o);
  }
}

export class UpstreamProxy {
  private readonly clients = new Map<string, Pool>();
  private readonly connectTimeoutMs: number;
  private readonly firstByteTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly retries: number;
  private readonly connections: number;
  private readonly clock: Clock;
  readonly logger: Logger;
  readonly director: Director;

  constructor(private readonly o: ProxyOptions) {
    this.clock = o.clock ?? realClock;
    this.connectTimeoutMs = o.connectTimeoutMs ?? HTTP_EDGE_DEFAULTS.upstreamConnectTimeoutMs;
    this.firstByteTimeoutMs = o.firstByteTimeoutMs ?? HTTP_EDGE_DEFAULTS.upstreamFirstByteTimeoutMs;
    this.idleTimeoutMs = o.idleTimeoutMs ?? HTTP_EDGE_DEFAULTS.upstreamIdleTimeoutMs;
    this.retries = o.retries ?? HTTP_EDGE_DEFAULTS.upstreamRetries;
    this.connections = o.connectionsPerEndpoint ?? 1024;
    this.logger = o.logger;
    this.director = o.director;
    o.pool.on('removed', (e: PoolEndpoint) => {
      const c = this.clients.get(e.address);
      this.clients.delete(e.address);
      // Requests in flight finish; idle connections close now.
      void c?.close().catch(() => {});
    });
  }

  private client(e: PoolEndpoint): Pool {
    let c = this.clients.get(e.address);
    if (!c) {
      c = new Pool(e.origin, {
        connections: this.connections,
        pipelining: 1,
        connect: { timeout: this.connectTimeoutMs, noDelay: true },
        headersTimeout: this.firstByteTimeoutMs,
        bodyTimeout: this.idleTimeoutMs,
      });
      this.clients.set(e.address, c);
    }
    return c;
  }

  /** Targets to try: the scheduler's ranking, then the remaining candidates by total score. */
  private attemptOrder(result: SchedulingResult, candidatesOf: readonly Endpoint[] | (() => readonly Endpoint[])): PoolEndpoint[] {
    let candidates: readonly Endpoint[];
    try {
      candidates = typeof candidatesOf === 'function' ? candidatesOf() : candidatesOf;
    } catch {
      candidates = []; // e.g. no subset endpoint is ready any more: the retries go round the targets
    }
    const order = [...result.targets] as PoolEndpoint[];
    const totals = result.profileResults.get(result.primaryProfileName)?.totals;
    const rest = candidates.filter((e) => !order.includes(e as PoolEndpoint)) as PoolEndpoint[];
    rest.sort((a, b) => (totals?.get(b.address) ?? 0) - (totals?.get(a.address) ?? 0));
    return order.concat(rest);
  }

  /**
   * Sends `body` to the scheduled endpoint and streams the answer into `res`. Throws
   * GatewayError (502/503/504) only while nothing has been written to `res`. `candidates`
   * (or the function giving them, called only if a retry needs them) order the retries.
   */
  async forward(
    ireq: InferenceRequest,
    clientReq: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    result: SchedulingResult,
    candidates: readonly Endpoint[] | (() => readonly Endpoint[]),
    startedAt: number,
  ): Promise<ResponseInfo & { endpoint?: string }> {
    const headers: Record<string, string> = {};
    for (const k in ireq.headers) if (!HOP_BY_HOP.has(k)) headers[k] = ireq.headers[k];
    headers[REQUEST_ID_HEADER] = ireq.requestId;
    headers['content-length'] = String(body.length);
    if (result.headers) Object.assign(headers, result.headers);

    let current: Exchange | null = null;
    let clientGone = false;
    // The client is gone when its response closes unfinished (its socket closed). A half-closed
    // client (request sent, then FIN) keeps its socket writable and still gets the answer.
    const onClose = () => {
      if (res.writableFinished) return;
      clientGone = true;
      current?.cancel();
    };
    res.on('close', onClose);
    // A FIN from the client is a half-close or a full close; only a write tells them apart (a
    // closed peer answers it with a reset, which the next write reports). Before the answer's
    // head, that write is an interim `100 Continue`, which HTTP/1.1 clients must accept and skip
    // (RFC 9110 §15.2); then empty writes probe for the reset until the head goes out.
    const socket = clientReq.socket;
    const clock = this.clock;
    let probe: ClockTimer | undefined;
    const onFin = () => {
      if (res.headersSent || res.writableEnded || clientReq.httpVersion !== '1.1' || !socket.writable) return;
      res.writeContinue();
      let wait = 5;
      const check = () => {
        if (res.headersSent || res.writableEnded || socket.destroyed) return;
        socket.write(EMPTY);
        wait = Math.min(1000, wait * 4);
        probe = clock.setTimeout(check, wait);
      };
      probe = clock.setTimeout(check, wait);
    };
    if (socket.readableEnded) onFin();
    else socket.once('end', onFin);

    // The first attempt goes to the scheduler's pick; the full order is worked out for a retry.
    let order: PoolEndpoint[] | undefined;
    const first = result.targets[0] as PoolEndpoint | undefined;
    const orderNow = () => (order ??= this.attemptOrder(result, candidates));
    const path = clientReq.url ?? '/';
    const metrics = this.o.metrics;
    const outlier = this.o.outlier;
    let retriesLeft = this.retries;
    let connectsLeft = Math.max(CONNECT_ATTEMPTS, 1 + this.retries);
    let last: Extract<Outcome, { ok: false }> | undefined;
    let last_target: PoolEndpoint | undefined;
    try {
      for (let i = 0; ; i++) {
        // Past the candidates, retries go round again (e.g. one endpoint: a fresh connection to it).
        const target = i === 0 && first ? first : orderNow()[i % orderNow().length];
        if (clientGone) return { status: 499, error: 'client closed request', endpoint: target.address };
        this.director.requestSent(ireq, target);
        const ex = new Exchange(this, ireq, res, target, startedAt, retriesLeft > 0);
        current = ex;
        this.client(target).dispatch(
          { path, method: 'POST', headers, body, headersTimeout: this.firstByteTimeoutMs, bodyTimeout: this.idleTimeoutMs },
          ex,
        );
        const out = await ex.done;
        current = null;
        if (out.ok) {
          this.director.requestFinished(ireq, target, out.info);
          if (out.info.status >= 500) outlier?.failure(target.address);
          else if (out.info.status !== 499) outlier?.success(target.address);
          return out.info;
        }
        last = out;
        last_target = target;
        this.director.requestFinished(ireq, target, { status: out.status ?? 502, error: out.err.message });
        outlier?.failure(target.address);
        if (out.kind === 'connect') {
          this.o.pool.reportConnectFailure(target.address, out.err);
          if (--connectsLeft <= 0) break;
        } else if (out.kind === 'reset' || out.kind === 'status') {
          if (retriesLeft-- <= 0) break;
        } else break;
        metrics?.retries.inc({ endpoint: target.address, reason: out.kind === 'status' ? `status_${out.status}` : out.kind });
        this.logger.warn(
          { 'x-request-id': ireq.requestId, endpoint: target.address, reason: out.kind, err: out.err.message },
          'upstream failed before answering; trying the next endpoint',
        );
      }
      const addr = last_target!.address;
      const err = last!;
      if (err.kind === 'timeout') {
        throw new GatewayError(504, `endpoint ${addr} did not answer within ${this.firstByteTimeoutMs} ms`, 'gateway_timeout_error', 'upstream_timeout');
      }
      if (err.kind === 'connect') {
        throw new GatewayError(
          502,
          `no endpoint accepted the connection (${[...new Set(orderNow().map((e) => e.address))].join(', ')}): ${err.err.message}`,
          'bad_gateway_error',
          'upstream_connect_failed',
        );
      }
      if (err.kind === 'status') {
        throw new GatewayError(err.status!, `endpoint ${addr} answered ${err.status}, and so did the retries`, err.status === 503 ? 'service_unavailable_error' : 'bad_gateway_error', 'upstream_unavailable');
      }
      throw new GatewayError(502, `endpoint ${addr} failed: ${err.err.message}`, 'bad_gateway_error', 'upstream_error');
    } finally {
      res.off('close', onClose);
      socket.off('end', onFin);
      clock.clearTimeout(probe);
    }
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((c) => c.destroy().catch(() => {})));
  }
}
