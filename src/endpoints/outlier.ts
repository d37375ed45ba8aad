// Outlier ejection and slow start, as Envoy does them for a cluster's hosts
// (envoyproxy/envoy, api/envoy/config/cluster/v3/outlier_detection.proto and
// cluster.proto SlowStartConfig, v1.31):
// - an endpoint that fails `consecutiveFailures` times in a row (5xx answers, resets, timeouts,
//   refused connections) leaves the candidates for base ejection time x number of times it was
//   ejected, capped at `maxEjectionMs`; each healthy stretch of one base ejection time after it
//   returns takes one off that count (Envoy decrements the multiplier per healthy interval);
// - a returning endpoint (back from ejection, or ready again after being unready) is in slow
//   start for `slowStartMs`: it may hold at most a growing share of the concurrent requests its
//   peers hold (from `slowStartMinPercent` to all of them, linear over the window), instead of
//   looking idle and drawing every concurrent request at once;
// - the filter never empties the candidate list: when every candidate is ejected or capped,
//   all are returned (Envoy's panic mode), so ejection alone never turns into a 503.
import type { Clock } from '../util/clock.js';
import { realClock } from '../util/clock.js';

export interface OutlierOptions {
  /** Failures in a row that eject an endpoint (Envoy consecutive_5xx default 5). 0 disables ejection. */
  consecutiveFailures?: number;
  /** First ejection's length in ms; the n-th lasts n times this (Envoy base_ejection_time 30 s). */
  baseEjectionMs?: number;
  /** Longest ejection in ms (Envoy max_ejection_time 300 s). */
  maxEjectionMs?: number;
  /** Slow-start window in ms after an endpoint returns. 0 disables slow start. */
  slowStartMs?: number;
  /** Share of its peers' concurrency a returning endpoint gets at the start of the window (Envoy min_weight_percent 10). */
  slowStartMinPercent?: number;
  clock?: Clock;
}

export const OUTLIER_DEFAULTS = {
  consecutiveFailures: 5,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  slowStartMs: 30_000,
  slowStartMinPercent: 10,
} as const;

/** What the detector needs of an endpoint (PoolEndpoint fits). */
export interface OutlierEndpoint {
  readonly address: string;
  readonly inflightRequests: number;
}

interface State {
  /** Failures in a row since the last success. */
  failures: number;
  /** Ejections counted for the next ejection's length (decays while healthy). */
  ejections: number;
  /** Ejected until this time (0: not ejected). */
  ejectedUntil: number;
  /** When the endpoint last came back; slow start runs from here. */
  returnedAt: number;
  /** When the decay of `ejections` was last applied. */
  decayFrom: number;
}

export type OutlierListener = (address: string, event: 'ejected' | 'returned', detail: { ejections: number; ejectedMs: number }) => void;

export class OutlierDetector {
  private readonly o: Required<Omit<OutlierOptions, 'clock'>>;
  private readonly clock: Clock;
  private readonly states = new Map<string, State>();
  private listeners: OutlierListener[] = [];
  /** Ejections since start, per endpoint (for metrics). */
  readonly ejectionsTotal = new Map<string, number>();

  constructor(opts: OutlierOptions = {}) {
    this.clock = opts.clock ?? realClock;
    this.o = {
      consecutiveFailures: opts.consecutiveFailures ?? OUTLIER_DEFAULTS.consecutiveFailures,
      baseEjectionMs: opts.baseEjectionMs ?? OUTLIER_DEFAULTS.baseEjectionMs,
      maxEjectionMs: opts.maxEjectionMs ?? OUTLIER_DEFAULTS.maxEjectionMs,
      slowStartMs: opts.slowStartMs ?? OUTLIER_DEFAULTS.slowStartMs,
      slowStartMinPercent: opts.slowStartMinPercent ?? OUTLIER_DEFAULTS.slowStartMinPercent,
    };
  }

  on(listener: OutlierListener): void {
    this.listeners.push(listener);
  }

  private state(address: string): State {
    let s = this.states.get(address);
    if (!s) {
      s = { failures: 0, ejections: 0, ejectedUntil: 0, returnedAt: -Infinity, decayFrom: 0 };
      this.states.set(address, s);
    }
    return s;
  }

  /** An answer the endpoint served (any non-5xx status). */
  success(address: string): void {
    const s = this.states.get(address);
    if (s) s.failures = 0;
  }

  /** A 5xx answer, reset, timeout or refused connection. Returns true when this ejected it. */
  failure(address: string): boolean {
    if (this.o.consecutiveFailures <= 0) return false;
    const now = this.clock.now();
    const s = this.state(address);
    this.expire(address, s, now);
    if (s.ejectedUntil > 0) return false;
    s.failures++;
    if (s.failures < this.o.consecutiveFailures) return false;
    this.decay(s, now);
    s.ejections++;
    s.failures = 0;
    const ms = Math.min(this.o.maxEjectionMs, this.o.baseEjectionMs * s.ejections);
    s.ejectedUntil = now + ms;
    this.ejectionsTotal.set(address, (this.ejectionsTotal.get(address) ?? 0) + 1);
    for (const l of this.listeners) l(address, 'ejected', { ejections: s.ejections, ejectedMs: ms });
    return true;
  }

  /** The endpoint came back (ready again after being unready): slow start from now. */
  returned(address: string): void {
    if (this.o.slowStartMs <= 0) return;
    const s = this.state(address);
    s.returnedAt = this.clock.now();
    s.failures = 0;
  }

  /** Forget an endpoint (removed from the pool). */
  forget(address: string): void {
    this.states.delete(address);
  }

  isEjected(address: string): boolean {
    const s = this.states.get(address);
    if (!s || s.ejectedUntil === 0) return false;
    return !this.expire(address, s, this.clock.now());
  }

  /** Share (0-1] of its peers' concurrency the endpoint may hold now; 1 outside slow start. */
  slowStartFactor(address: string): number {
    const s = this.states.get(address);
    if (!s || this.o.slowStartMs <= 0) return 1;
    const since = this.clock.now() - s.returnedAt;
    if (since >= this.o.slowStartMs) return 1;
    const min = this.o.slowStartMinPercent / 100;
    return Math.max(min, Math.min(1, since / this.o.slowStartMs));
  }

  /**
   * The candidates to schedule on: ejected endpoints removed, endpoints in slow start removed
   * while they hold their share of the peers' concurrency. Never empty when `endpoints` is not.
   */
  filter<E extends OutlierEndpoint>(endpoints: E[]): E[] {
    if (this.states.size === 0 || endpoints.length < 2) return endpoints;
    const now = this.clock.now();
    let out: E[] | null = null;
    let warming: E[] | null = null;
    for (let i = 0; i < endpoints.length; i++) {
      const e = endpoints[i];
      const s = this.states.get(e.address);
      const drop = s !== undefined && s.ejectedUntil > 0 && !this.expire(e.address, s, now);
      const warm = !drop && s !== undefined && now - s.returnedAt < this.o.slowStartMs;
      if (warm) (warming ??= []).push(e);
      if (drop && !out) out = endpoints.slice(0, i);
      else if (!drop && out) out.push(e);
    }
    let kept = out ?? endpoints;
    if (warming && kept.length > warming.length) {
      // Peers: the kept endpoints not in slow start. A warming endpoint stays a candidate while it
      // holds fewer requests than its share of the busiest peer's (at least one at a time).
      let peerMax = 0;
      for (const e of kept) if (!warming.includes(e)) peerMax = Math.max(peerMax, e.inflightRequests);
      const capped = warming.filter((e) => e.inflightRequests >= Math.max(1, Math.floor(this.slowStartFactor(e.address) * peerMax)));
      if (capped.length) kept = kept.filter((e) => !capped.includes(e));
    }
    return kept.length ? kept : endpoints;
  }

  /** Ends an ejection whose time is up; returns true when the endpoint is (now) not ejected. */
  private expire(address: string, s: State, now: number): boolean {
    if (s.ejectedUntil === 0) return true;
    if (now < s.ejectedUntil) return false;
    const ms = Math.min(this.o.maxEjectionMs, this.o.baseEjectionMs * s.ejections);
    s.ejectedUntil = 0;
    s.failures = 0;
    s.decayFrom = now;
    if (this.o.slowStartMs > 0) s.returnedAt = now;
    for (const l of this.listeners) l(address, 'returned', { ejections: s.ejections, ejectedMs: ms });
    return true;
  }

  /** One ejection forgiven per base ejection time spent healthy since the last return. */
  private decay(s: State, now: number): void {
    if (s.ejections === 0 || this.o.baseEjectionMs <= 0) return;
    const healthy = Math.floor((now - s.decayFrom) / this.o.baseEjectionMs);
    if (healthy > 0) s.ejections = Math.max(0, s.ejections - healthy);
  }
}
