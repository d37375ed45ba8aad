// The OpenAI-compatible HTTP front: routes, body limits, error bodies, and the per-request
// life cycle (parse -> Director.schedule -> UpstreamProxy.forward -> metrics).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { EndpointPool } from '../endpoints/pool.js';
import type { Director } from './director.js';
import { GatewayError, badRequest } from './errors.js';
import type { RouterMetrics } from './metrics.js';
import { clientClosed, parseOpenAIRequest, parseOpenAIRequestAsync, REQUEST_ID_HEADER, type ParseOptions } from './parse.js';
import { INLINE_JSON_BYTES, parseJsonBody } from './json-body.js';
import { RequestLimits } from './request-limits.js';

const DEFAULT_BODY_LIMITS = new RequestLimits();
import { createEdgeServer, readBody, type EdgeLimits } from './http-front.js';
import { HTTP_EDGE_DEFAULTS } from './limits.js';
import type { UpstreamProxy } from './proxy.js';
import type { InferenceRequest } from '../scheduler/types.js';

export interface ScoreApi {
  /** Per endpoint matched blocks and normalized prefix score for a parsed request. */
  score(req: InferenceRequest): Promise<unknown>;
}

export interface TokenizeApi {
  handle(body: unknown): Promise<{ status: number; body: unknown }>;
}

export interface GatewayServerOptions {
  logger: Logger;
  registry: Registry;
  pool: EndpointPool;
  director: Director;
  proxy: UpstreamProxy;
  metrics: RouterMetrics;
  parseOptions: ParseOptions;
  scoreApi?: ScoreApi;
  tokenizeApi?: TokenizeApi;
  /** Client-side limits and timeouts (limits.ts has the defaults). */
  limits?: Partial<EdgeLimits>;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

/** The abort controller of a client connection's requests (see clientGone). */
const CLIENT_GONE = Symbol('kvrouter.clientGone');

/**
 * Aborted when the client's connection closes: stops the rendering and tokenization of every
 * request on it. One per connection, not per request: a response closes unfinished only when
 * its socket closes (node:http), which ends every request on that connection anyway, and an
 * AbortSignal costs more to make than the rest of a request's bookkeeping (router CPU profile
 * under bench:router). A half-closed client (FIN only) keeps its socket, so nothing aborts.
 */
function clientGone(socket: Socket & { [CLIENT_GONE]?: AbortController }): AbortSignal {
  let c = socket[CLIENT_GONE];
  if (!c) {
    const ac = (c = socket[CLIENT_GONE] = new AbortController());
    socket.once('close', () => ac.abort());
  }
  return c.signal;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendError(res: ServerResponse, err: GatewayError, requestId?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string> = { ...err.headers };
  if (requestId) headers[REQUEST_ID_HEADER] = requestId;
  sendJson(res, err.status, err.body(), headers);
}

export class GatewayServer {
  readonly server: Server;
  private readonly maxBody: number;
  private readonly log: Logger;
  /** Requests being handled (for a draining shutdown). */
  private active = 0;

  constructor(private readonly o: GatewayServerOptions) {
    const limits: EdgeLimits = { ...HTTP_EDGE_DEFAULTS };
    for (const [k, v] of Object.entries(o.limits ?? {})) if (v !== undefined) limits[k as keyof EdgeLimits] = v;
    this.maxBody = limits.maxBodyBytes;
    this.log = o.logger.child({ component: 'gateway' });
    this.server = createEdgeServer(
      limits,
      (req, res) => {
        this.active++;
        this.handle(req, res)
          .catch((err: unknown) => {
            this.log.error({ err }, 'unhandled error in request handler');
            sendError(res, new GatewayError(500, 'internal error', 'internal_error', 'internal'));
          })
          .finally(() => this.active--);
      },
      (err: Error) => this.log.debug({ err: err.message }, 'malformed HTTP request refused'),
    );
    this.server.on('drop', () => this.log.debug('connection over the cap closed'));
  }

  async listen(port: number, host: string): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** Stops accepting, lets requests in flight finish for up to `drainMs`, then cuts the rest. */
  async close(drainMs = 0): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeIdleConnections();
    const deadline = Date.now() + drainMs;
    if (this.active > 0 && drainMs > 0) this.log.info({ inflight: this.active, drainMs }, 'draining requests in flight');
    while (this.active > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      this.server.closeIdleConnections();
    }
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const method = req.method ?? 'GET';
    if (method === 'POST' && (path === '/v1/completions' || path === '/v1/chat/completions')) return this.inference(req, res, path);
    if (method === 'GET' || method === 'HEAD') {
      switch (path) {
        case '/health':
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
          return;
        case '/ready': {
          const n = this.o.pool.ready().length;
          sendJson(res, n > 0 ? 200 : 503, { ready: n > 0, readyEndpoints: n, endpoints: this.o.pool.all().length });
          return;
        }
        case '/metrics': {
          const text = await this.o.registry.metrics();
          res.writeHead(200, { 'content-type': this.o.registry.contentType }).end(text);
          return;
        }
        case '/v1/models':
          return this.models(res);
        case '/endpoints':
          sendJson(res, 200, {
            endpoints: this.o.pool.all().map((e) => ({
              address: e.address,
              name: e.name,
              labels: e.labels,
              ready: e.ready,
              metrics: e.metrics,
              inflightRequests: e.inflightRequests,
              inflightTokens: e.inflightTokens,
              routed: e.routed,
              models: e.models?.map((m) => m.id) ?? null,
            })),
          });
          return;
      }
    }
    if (method === 'POST' && (path === '/score_completions' || path === '/score_chat_completions')) return this.score(req, res, path);
    if (method === 'POST' && path === '/tokenize') return this.tokenize(req, res);
    const known = ['/v1/completions', '/v1/chat/completions', '/v1/models', '/tokenize', '/score_completions', '/score_chat_completions', '/health', '/ready', '/metrics'];
    if (known.includes(path)) sendError(res, new GatewayError(405, `method ${method} not allowed on ${path}`, 'invalid_request_error', 'method_not_allowed'));
    else sendError(res, new GatewayError(404, `no route for ${method} ${path}`, 'not_found_error', 'unknown_path'));
  }

  private models(res: ServerResponse): void {
    const entries = this.o.pool.modelEntries();
    const created = Math.floor(Date.now() / 1000);
    sendJson(res, 200, {
      object: 'list',
      data: [...entries.values()].map((m) => ({ id: m.id, object: 'model', created, owned_by: 'vllm', root: m.parent ?? m.id, parent: m.parent ?? null })),
    });
  }

  private async inference(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const started = performance.now();
    const m = this.o.metrics;
    let ireq: InferenceRequest | undefined;
    let body: Buffer;
    // Aborts the request's rendering and tokenization when the client goes away.
    const gone = clientGone(req.socket);
    try {
      body = await readBody(req, res, this.maxBody);
      // A large body's JSON is parsed in a worker thread (json-body.ts); a small one right here.
      ireq = body.length <= INLINE_JSON_BYTES ? parseOpenAIRequest(path, req.headers, body, this.o.parseOptions, gone) : await parseOpenAIRequestAsync(path, req.headers, body, this.o.parseOptions, gone);
    } catch (err) {
      const ge = err instanceof GatewayError ? err : badRequest(`could not read the request: ${(err as Error).message}`, 'bad_body');
      m.errors.add(`\u0000\u0000${ge.status}`, () => ({ model_name: '', target_model_name: '', error_code: String(ge.status) }));
      sendError(res, ge, req.headers[REQUEST_ID_HEADER] as string | undefined);
      return;
    }
    const labels = { model_name: ireq.model, target_model_name: ireq.targetModel };
    const key = ireq.model + '\u0000' + ireq.targetModel;
    const labelsOf = () => labels;
    const model = ireq.model;
    const modelLabels = () => ({ model_name: model });
    m.requests.add(key, labelsOf);
    m.running.add(model, modelLabels);
    try {
      const result = await this.o.director.schedule(ireq);
      if (gone.aborted) throw clientClosed();
      // The other candidates matter only to a retry: found then, off the first attempt's path.
      const info = await this.o.proxy.forward(ireq, req, res, body, result, () => this.o.director.candidates(ireq), started);
      if (info.status >= 400) m.errors.add(`${key}\u0000${info.status}`, () => ({ ...labels, error_code: String(info.status) }));
      else {
        const ms = m.forModel(ireq.model, ireq.targetModel);
        ms.duration.observe((performance.now() - started) / 1000);
        if (info.ttftMs !== undefined) ms.ttft.observe(info.ttftMs / 1000);
        if (info.promptTokens !== undefined) ms.inputTokens.observe(info.promptTokens);
        if (info.completionTokens !== undefined) ms.outputTokens.observe(info.completionTokens);
      }
    } catch (err) {
      const ge = err instanceof GatewayError ? err : new GatewayError(500, (err as Error).message, 'internal_error', 'internal');
      if (ge.status >= 500 && ge.status !== 503) this.log.warn({ 'x-request-id': ireq.requestId, status: ge.status, err: ge.message }, 'request failed');
      m.errors.add(`${key}\u0000${ge.status}`, () => ({ ...labels, error_code: String(ge.status) }));
      sendError(res, ge, ireq.requestId);
    } finally {
      m.running.add(model, modelLabels, -1);
    }
  }

  private async score(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    try {
      const body = await readBody(req, res, this.maxBody);
      if (!this.o.scoreApi) throw new GatewayError(404, 'the scoring API needs a precise-prefix-cache-scorer in the config', 'not_found_error', 'no_precise_scorer');
      const api = path === '/score_chat_completions' ? '/v1/chat/completions' : '/v1/completions';
      const ireq = await parseOpenAIRequestAsync(api, req.headers, body, this.o.parseOptions);
      sendJson(res, 200, await this.o.scoreApi.score(ireq));
    } catch (err) {
      sendError(res, err instanceof GatewayError ? err : new GatewayError(500, (err as Error).message, 'internal_error', 'internal'));
    }
  }

  private async tokenize(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const raw = await readBody(req, res, this.maxBody);
      if (!this.o.tokenizeApi) throw new GatewayError(404, 'no tokenizer available in this router', 'not_found_error', 'no_tokenizer');
      const limits = this.o.parseOptions.limits;
      const body = await parseJsonBody(raw, (limits ?? DEFAULT_BODY_LIMITS).bodyCaps, false).catch((err: unknown) => {
        throw limits ? limits.counted(err) : err;
      });
      const out = await this.o.tokenizeApi.handle(body);
      sendJson(res, out.status, out.body);
    } catch (err) {
      sendError(res, err instanceof GatewayError ? err : new GatewayError(500, (err as Error).message, 'internal_error', 'internal'));
    }
  }
}
