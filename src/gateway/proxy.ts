// Proxies one scheduled request to its endpoint through pooled undici clients and streams the
// answer back chunk by chunk (never buffered). A connect failure (nothing sent) moves on to
// the next-best endpoint; anything later is reported, never retried (POST is not idempotent).
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { isConnectError, type EndpointPool, type PoolEndpoint } from '../endpoints/pool.js';
import type { Endpoint, InferenceRequest, ResponseInfo, SchedulingResult } from '../scheduler/types.js';
import type { Director } from './director.js';
import { GatewayError } from './errors.js';
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

/**
 * Per-request cancellation. undici takes an EventEmitter with `aborted` as a request signal;
 * an AbortController costs several times more (EventTarget, AbortSignal) on every request.
 */
class Cancel extends EventEmitter {
  aborted = false;
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
  }
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

export class Proxy {
  private readonly clients = new Map<string, Pool>();
  private readonly o: Required<Pick<ProxyOptions, 'headersTimeoutMs' | 'bodyTimeoutMs' | 'connectionsPerEndpoint' | 'maxAttempts'>> & ProxyOptions;

  constructor(opts: ProxyOptions) {
    // Explicit `undefined` options (e.g. an unset flag passed through) must not erase the defaults.
    this.o = {
      ...opts,
      headersTimeoutMs: opts.headersTimeoutMs ?? 600_000,
      bodyTimeoutMs: opts.bodyTimeoutMs ?? 600_000,
      connectionsPerEndpoint: opts.connectionsPerEndpoint ?? 1024,
      maxAttempts: opts.maxAttempts ?? 3,
    };
    opts.pool.on('removed', (e: PoolEndpoint) => {
      const c = this.clients.get(e.address);
      this.clients.delete(e.address);
      void c?.close().catch(() => {});
    });
  }

  private client(e: PoolEndpoint): Pool {
    let c = this.clients.get(e.address);
    if (!c) {
      c = new Pool(e.origin, {
        connections: this.o.connectionsPerEndpoint,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        headersTimeout: this.o.headersTimeoutMs,
        bodyTimeout: this.o.bodyTimeoutMs,
        connectTimeout: 2_000,
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
    clientReq: IncomingMessage,
    res: ServerResponse,
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

    const abort = new Cancel();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.on('close', onClose);

    const order = this.attemptOrder(result, candidates);
    let lastErr: unknown;
    try {
      for (let i = 0; i < order.length; i++) {
        const target = order[i];
        if (abort.aborted) return { status: 499, error: 'client closed request', endpoint: target.address };
        this.o.director.requestSent(ireq, target);
        let upstream: Dispatcher.ResponseData;
        try {
          upstream = await this.client(target).request({
            path: clientReq.url ?? ireq.path,
            method: 'POST',
            headers,
            body,
            signal: abort,
          });
        } catch (err) {
          const connect = isConnectError(err);
          const info: ResponseInfo = { status: 502, error: (err as Error).message };
          this.o.director.requestFinished(ireq, target, info);
          if (connect) {
            this.o.pool.reportConnectFailure(target.address, err);
            this.o.metrics?.retries.inc({ endpoint: target.address, reason: 'connect' });
            this.o.logger.warn({ 'x-request-id': ireq.requestId, endpoint: target.address, err: (err as Error).message }, 'upstream refused the connection; trying the next endpoint');
            lastErr = err;
            continue;
          }
          if (abort.aborted) return { status: 499, error: 'client closed request', endpoint: target.address };
          if (err instanceof undiciErrors.HeadersTimeoutError) {
            throw new GatewayError(504, `endpoint ${target.address} did not answer within ${this.o.headersTimeoutMs} ms`, 'gateway_timeout_error', 'upstream_timeout');
          }
          throw new GatewayError(502, `endpoint ${target.address} failed: ${(err as Error).message}`, 'bad_gateway_error', 'upstream_error');
        }
        return await this.relay(ireq, res, upstream, target, startedAt, abort);
      }
      throw new GatewayError(
        502,
        `no endpoint accepted the connection (${order.map((e) => e.address).join(', ')}): ${(lastErr as Error)?.message ?? 'unknown error'}`,
        'bad_gateway_error',
        'upstream_connect_failed',
      );
    } finally {
      res.off('close', onClose);
    }
  }

  private async relay(
    ireq: InferenceRequest,
    res: ServerResponse,
    up: Dispatcher.ResponseData,
    target: PoolEndpoint,
    startedAt: number,
    signal: { readonly aborted: boolean },
  ): Promise<ResponseInfo & { endpoint: string }> {
    const director = this.o.director;
    director.responseStarted(ireq, target);
    const out: Record<string, string | string[]> = {};
    for (const k in up.headers) {
      const v = up.headers[k];
      if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
    }
    const len = up.headers['content-length'];
    if (typeof len === 'string') out['content-length'] = len;
    out[REQUEST_ID_HEADER] = ireq.requestId;
    out[ENDPOINT_HEADER] = target.address;
    Object.assign(out, director.responseHeaders(ireq, target));
    res.writeHead(up.statusCode, out);
    if (ireq.stream) res.flushHeaders();

    const info: ResponseInfo & { endpoint: string } = { status: up.statusCode, endpoint: target.address };
    // The last chunks of the body (at least TAIL_BYTES) to read `usage` from at the end.
    let recent: Buffer[] = [];
    let recentBytes = 0;
    const body = up.body;
    const sse = String(up.headers['content-type'] ?? '').includes('event-stream');
    let held: Buffer[] | null = ireq.stream || sse ? null : [];
    let heldBytes = 0;
    await new Promise<void>((resolve) => {
      let settled = false;
      const finish = (err?: Error) => {
        if (settled) return;
        settled = true;
        res.off('drain', onDrain);
        res.off('close', onClientClose);
        if (err) {
          info.error = signal.aborted ? 'client closed request' : `upstream body failed: ${err.message}`;
          if (!signal.aborted) this.o.logger.warn({ 'x-request-id': ireq.requestId, endpoint: target.address, err: err.message }, 'upstream stream failed mid-response');
          res.destroy();
          body.destroy();
        } else if (held) res.end(held.length === 1 ? held[0] : Buffer.concat(held));
        else res.end();
        resolve();
      };
      const onDrain = () => body.resume();
      const onClientClose = () => {
        if (!res.writableFinished) finish(new Error('client closed request'));
      };
      res.on('drain', onDrain);
      res.on('close', onClientClose);
      // Chunks go out as they come: no buffering, backpressure through pause/resume.
      body.on('data', (chunk: Buffer) => {
        if (info.ttftMs === undefined) info.ttftMs = performance.now() - startedAt;
        if (held) {
          // Non-streamed answers are small: hold them to send headers and body in one write.
          held.push(chunk);
          heldBytes += chunk.length;
          if (heldBytes > HOLD_LIMIT) {
            for (const c of held) res.write(c);
            held = null;
          }
        } else if (!res.write(chunk)) body.pause();
        recent.push(chunk);
        recentBytes += chunk.length;
        if (recentBytes - recent[0].length >= TAIL_BYTES && recent.length > 8) {
          // Drop chunks no longer needed for the tail (in batches: no shift per chunk).
          let drop = 0;
          while (recentBytes - recent[drop].length >= TAIL_BYTES) recentBytes -= recent[drop++].length;
          recent = recent.slice(drop);
        }
      });
      body.once('end', () => finish());
      body.once('error', (err: Error) => finish(err));
    });
    const usage = recent.length ? extractUsage(tailText(recent)) : undefined;
    if (usage) {
      info.promptTokens = usage.prompt;
      info.completionTokens = usage.completion;
      info.cachedTokens = usage.cached;
    }
    director.requestFinished(ireq, target, info);
    return info;
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.destroy().catch(() => {})));
    this.clients.clear();
  }
}
