// The endpoint pool: a static list of endpoints (address + labels), their load scraped from
// each one's /metrics (default every 50 ms, as llm-d's data layer), health derived from the
// scrapes (a silent endpoint leaves the candidates within `unhealthyAfterMs`, a refused
// connection at once; it returns on its next good scrape), the models each serves (from
// /v1/models), and the router's own in-flight counters.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Pool } from 'undici';
import { realClock, type Clock, type ClockTimer } from '../util/clock.js';
import { withDefaults } from '../util/options.js';
import type { Endpoint, EndpointMetrics } from '../scheduler/types.js';
import { applyMetricsPage, emptyMetrics } from './vllm-metrics.js';

export interface EndpointSpec {
  /** `ip:port` (also the KV-event pod identity). */
  address: string;
  name?: string;
  labels?: Record<string, string>;
}

export interface EndpointPoolOptions {
  logger: Logger;
  /** Scrape period in ms (llm-d --refresh-metrics-interval 50ms). 0 disables scraping: always ready. */
  scrapeIntervalMs?: number;
  /** One scrape's time limit. */
  scrapeTimeoutMs?: number;
  /** Without a good scrape for this long an endpoint is not ready. */
  unhealthyAfterMs?: number;
  /** Period of /v1/models refreshes. */
  modelsIntervalMs?: number;
  metricsPath?: string;
  /** Time for scrape ages, health and model refreshes (default the real clock). */
  clock?: Clock;
}

type PoolTunables = Omit<EndpointPoolOptions, 'logger' | 'clock'>;
const POOL_DEFAULTS: Required<PoolTunables> = { scrapeIntervalMs: 50, scrapeTimeoutMs: 500, unhealthyAfterMs: 750, modelsIntervalMs: 10_000, metricsPath: '/metrics' };

export interface ServedModel {
  id: string;
  /** Base model for a LoRA adapter (vLLM's `parent`), else undefined. */
  parent?: string;
  /** vLLM's `max_model_len` for this model, when reported. */
  maxModelLen?: number;
}

/** Largest /metrics or /v1/models page read from an endpoint. */
const MAX_PAGE_BYTES = 16 * 1024 * 1024;

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);

export function isConnectError(err: unknown): boolean {
  let e = err as { code?: string; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 4; depth++) {
    if (e.code && CONNECT_ERRORS.has(e.code)) return true;
    e = e.cause as typeof e;
  }
  return false;
}

/** One endpoint's live state; it *is* the scheduler's Endpoint. */
export class PoolEndpoint implements Endpoint {
  readonly metrics: EndpointMetrics = emptyMetrics();
  inflightRequests = 0;
  inflightTokens = 0;
  ready: boolean;
  /** Models from /v1/models; null until fetched. */
  models: ServedModel[] | null = null;
  lastOk = 0;
  lastError = '';
  scraping = false;
  fetchingModels = false;
  /** Clock ms of the last /v1/models fetch (-Infinity: never, whatever the clock's origin). */
  modelsFetchedAt = -Infinity;
  routed = 0;
  constructor(
    readonly address: string,
    readonly name: string,
    readonly labels: Readonly<Record<string, string>>,
    initiallyReady: boolean,
  ) {
    this.ready = initiallyReady;
  }
  get origin(): string {
    return this.address.includes('://') ? this.address : `http://${this.address}`;
  }
}

export type PoolEvent = 'ready' | 'unready' | 'added' | 'removed';

export class EndpointPool extends EventEmitter {
  private readonly byAddress = new Map<string, PoolEndpoint>();
  private readyList: PoolEndpoint[] = [];
  private timer: ClockTimer | undefined;
  /** Keep-alive connections per endpoint for scrapes and model lists. */
  private readonly clients = new Map<string, Pool>();
  private readonly o: Required<PoolTunables>;
  private readonly clock: Clock;
  /** Timestamps (lastOk, modelsFetchedAt, metrics.updatedAt): Date.now() on the real clock, as before. */
  private readonly now: () => number;
  private readonly log: Logger;
  private closed = false;

  constructor(specs: EndpointSpec[], opts: EndpointPoolOptions) {
    super();
    this.log = opts.logger.child({ component: 'endpoints' });
    this.clock = opts.clock ?? realClock;
    const clock = this.clock;
    this.now = clock === realClock ? Date.now : () => clock.now();
    const { logger: _logger, clock: _clock, ...tunables } = opts;
    this.o = withDefaults(POOL_DEFAULTS, tunables);
    for (const s of specs) this.add(s);
  }

  get scraping(): boolean {
    return this.o.scrapeIntervalMs > 0;
  }

  add(spec: EndpointSpec): PoolEndpoint {
    const existing = this.byAddress.get(spec.address);
    if (existing) return existing;
    const e = new PoolEndpoint(spec.address, spec.name ?? spec.address, Object.freeze({ ...(spec.labels ?? {}) }), !this.scraping);
    this.byAddress.set(e.address, e);
    this.rebuildReady();
    this.emit('added', e);
    if (this.timer) void this.scrape(e);
    return e;
  }

  remove(address: string): void {
    const e = this.byAddress.get(address);
    if (!e) return;
    this.byAddress.delete(address);
    void this.clients.get(address)?.destroy().catch(() => {});
    this.clients.delete(address);
    e.ready = false;
    this.rebuildReady();
    this.emit('removed', e);
  }

  get(address: string): PoolEndpoint | undefined {
    return this.byAddress.get(address);
  }

  all(): PoolEndpoint[] {
    return [...this.byAddress.values()];
  }

  /** Ready endpoints (a cached array, rebuilt on changes; do not mutate). */
  ready(): readonly PoolEndpoint[] {
    return this.readyList;
  }

  private rebuildReady(): void {
    this.readyList = [...this.byAddress.values()].filter((e) => e.ready);
  }

  private setReady(e: PoolEndpoint, ready: boolean, why: string): void {
    if (e.ready === ready || !this.byAddress.has(e.address)) return;
    e.ready = ready;
    this.rebuildReady();
    if (ready) this.log.info({ endpoint: e.address }, 'endpoint ready');
    else this.log.warn({ endpoint: e.address, reason: why }, 'endpoint not ready: left the candidates');
    this.emit(ready ? 'ready' : 'unready', e);
  }

  /** The proxy could not connect: drop the endpoint from the candidates until a scrape succeeds. */
  reportConnectFailure(address: string, err: unknown): void {
    const e = this.byAddress.get(address);
    if (e && this.scraping) this.setReady(e, false, `connect failed: ${(err as Error)?.message ?? err}`);
  }

  start(): void {
    if (!this.scraping || this.timer) return;
    const clock = this.clock;
    let lastTick = this.now();
    let graceUntil = -Infinity;
    const tick = () => {
      const now = this.now();
      // If our own event loop stalled (a long synchronous task), scrapes could not complete:
      // that says nothing about the endpoints, so give them a fresh window.
      if (now - lastTick > this.o.scrapeIntervalMs + 200) graceUntil = now + this.o.unhealthyAfterMs;
      lastTick = now;
      for (const e of this.byAddress.values()) {
        if (e.ready && now > graceUntil && now - e.lastOk > this.o.unhealthyAfterMs) this.setReady(e, false, `no metrics for ${now - e.lastOk} ms (${e.lastError || 'timeout'})`);
        if (!e.scraping) void this.scrape(e);
        if (e.ready && !e.fetchingModels && now - e.modelsFetchedAt > this.o.modelsIntervalMs) void this.fetchModels(e);
      }
    };
    this.timer = clock.setInterval(tick, this.o.scrapeIntervalMs);
    this.timer.unref();
    tick();
  }

  /** Resolves once `n` endpoints are ready (or rejects after `timeoutMs`). */
  async waitReady(n = 1, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.readyList.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${this.readyList.length} of ${n} endpoints ready after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private client(e: PoolEndpoint): Pool {
    let c = this.clients.get(e.address);
    if (!c) {
      c = new Pool(e.origin, { connections: 2, connect: { timeout: this.o.scrapeTimeoutMs }, maxResponseSize: MAX_PAGE_BYTES });
      this.clients.set(e.address, c);
    }
    return c;
  }

  /** GET `path` from the endpoint: its status and body text, within `timeoutMs` per phase. */
  private async fetchPage(e: PoolEndpoint, path: string, timeoutMs: number): Promise<{ status: number; text: string }> {
    const res = await this.client(e).request({ method: 'GET', path, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    return { status: res.statusCode, text: await res.body.text() };
  }

  private async scrape(e: PoolEndpoint): Promise<void> {
    if (this.closed) return;
    e.scraping = true;
    try {
      const res = await this.fetchPage(e, this.o.metricsPath, this.o.scrapeTimeoutMs);
      // Any HTTP answer proves the server is up; a vLLM page also refreshes the load.
      const now = this.now();
      if (res.status < 400) applyMetricsPage(res.text, e.metrics, now);
      e.lastOk = now;
      e.lastError = '';
      if (!e.ready) {
        this.setReady(e, true, '');
        void this.fetchModels(e);
      }
    } catch (err) {
      e.lastError = (err as Error).message;
      if (isConnectError(err)) this.setReady(e, false, `metrics scrape: ${e.lastError}`);
    } finally {
      e.scraping = false;
    }
  }

  private async fetchModels(e: PoolEndpoint): Promise<void> {
    if (this.closed || e.fetchingModels) return;
    e.fetchingModels = true;
    e.modelsFetchedAt = this.now();
    try {
      const res = await this.fetchPage(e, '/v1/models', 2_000);
      if (res.status !== 200) return;
      const body = JSON.parse(res.text) as { data?: { id?: unknown; parent?: unknown; root?: unknown; max_model_len?: unknown }[] };
      if (!Array.isArray(body.data)) return;
      e.models = body.data
        .filter((m) => typeof m.id === 'string')
        .map((m) => ({
          id: m.id as string,
          parent: typeof m.parent === 'string' && m.parent !== m.id ? m.parent : undefined,
          maxModelLen: Number.isSafeInteger(m.max_model_len) && (m.max_model_len as number) > 0 ? (m.max_model_len as number) : undefined,
        }));
    } catch {
      // Models stay as last known; health is the scraper's business.
    } finally {
      e.fetchingModels = false;
    }
  }

  /**
   * Resolve a requested model against what the endpoints serve: the base model (for the
   * tokenizer) and the adapter name for a LoRA. Null when every endpoint's models are known
   * and none serves it. Endpoints whose models are unknown accept any model.
   */
  resolveModel(model: string): { baseModel: string; lora?: string } | null {
    let anyUnknown = false;
    for (const e of this.byAddress.values()) {
      if (!e.models) {
        anyUnknown = true;
        continue;
      }
      for (const m of e.models) if (m.id === model) return m.parent ? { baseModel: m.parent, lora: m.id } : { baseModel: model };
    }
    return anyUnknown || this.byAddress.size === 0 ? { baseModel: model } : null;
  }

  /** Whether `e` may serve `model` (unknown model lists accept everything). */
  serves(e: PoolEndpoint, model: string): boolean {
    if (!e.models) return true;
    for (const m of e.models) if (m.id === model) return true;
    return false;
  }

  /** Every model id served (for /v1/models), with the endpoints' own entries. */
  modelEntries(): Map<string, ServedModel> {
    const out = new Map<string, ServedModel>();
    for (const e of this.byAddress.values()) for (const m of e.models ?? []) if (!out.has(m.id)) out.set(m.id, m);
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) this.clock.clearInterval(this.timer);
    this.timer = undefined;
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((c) => c.destroy().catch(() => {})));
  }
}
