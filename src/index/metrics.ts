// Index metrics (llm-d names, shared/reference/block-keys-and-index.md §6) and the
// "metrics beat" log line. Hot paths bump plain numbers; prom-client reads them at scrape
// time, so ingest and lookup never pay for label hashing.
import { Counter, Gauge, type Registry } from 'prom-client';
import { FastHistogram, type HistogramSeries } from '../util/fast-metrics.js';
import type { Logger } from 'pino';
import { realClock, type Clock } from '../util/clock.js';
import type { IndexStats, RemovalCounts } from './types.js';

export class IndexMetrics {
  admissions = 0;
  evictions = 0;
  lookups = 0;
  hits = 0;
  latencyCount = 0;
  latencySum = 0;
  /** Entries dropped because the index was at capacity (a subset of evictions). */
  capacityEvictions = 0;
  private readonly latency: HistogramSeries;
  private statsSource: (() => IndexStats | Promise<IndexStats>) | null = null;
  /** Removals the backend counts itself, added to `evictions` and `capacityEvictions` when read. */
  private removalSource: RemovalCounts | null = null;

  constructor(registry: Registry) {
    const source = () => this.statsSource;
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    counter('kvcache_index_admissions_total', 'Block keys added to the index', () => this.admissions);
    counter('kvcache_index_evictions_total', 'Entries removed from the index (events, TTL and capacity)', () => this.totalEvictions());
    counter('kvcache_index_capacity_evictions_total', 'Entries removed because the index reached its capacity (LRU)', () => this.totalCapacityEvictions());
    counter('kvcache_index_lookup_requests_total', 'Longest-prefix lookups', () => this.lookups);
    counter('kvcache_index_lookup_hits_total', 'Leading blocks found by lookups (held by at least one pod)', () => this.hits);
    // observed on every lookup: arithmetic, not prom-client's per-call label hashing
    this.latency = new FastHistogram(
      'kvcache_index_lookup_latency_seconds',
      'Latency of a longest-prefix lookup',
      [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1],
      registry,
    ).unlabelled();
    const gauge = (name: string, help: string, field: keyof IndexStats) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        async collect() {
          const src = source();
          if (!src) return;
          const s = await src();
          this.set(s[field]);
        },
      });
    gauge('kvcache_index_size_keys', 'Distinct request keys held', 'keys');
    gauge('kvcache_index_size_entries', '(request key, pod entry) pairs held', 'entries');
    gauge('kvcache_index_size_engine_keys', 'Engine key mappings held', 'engineKeys');
    gauge('kvcache_index_capacity_entries', 'Configured capacity in entries', 'capacity');
  }

  /** The index whose size the gauges report. */
  setStatsSource(fn: () => IndexStats | Promise<IndexStats>): void {
    this.statsSource = fn;
  }

  /** A backend's own removal counts (read at scrape and beat time). */
  setRemovalSource(counts: RemovalCounts): void {
    this.removalSource = counts;
  }

  totalEvictions(): number {
    return this.evictions + (this.removalSource?.evictions ?? 0);
  }

  totalCapacityEvictions(): number {
    return this.capacityEvictions + (this.removalSource?.capacityEvictions ?? 0);
  }

  observeLookup(seconds: number, hits: number): void {
    this.lookups++;
    this.hits += hits;
    this.latencyCount++;
    this.latencySum += seconds;
    this.latency.observe(seconds);
  }

  snapshot(): { admissions: number; evictions: number; lookups: number; hits: number; latency_count: number; latency_sum: number; latency_avg: number } {
    return {
      admissions: this.admissions,
      evictions: this.totalEvictions(),
      lookups: this.lookups,
      hits: this.hits,
      latency_count: this.latencyCount,
      latency_sum: this.latencySum,
      latency_avg: this.latencyCount ? this.latencySum / this.latencyCount : 0,
    };
  }
}

export const DEFAULT_METRICS_BEAT_MS = 60_000;

/** Logs "metrics beat" every `intervalMs` (default 1 min). Returns a stop function. */
export function startMetricsBeat(logger: Logger, intervalMs: number = DEFAULT_METRICS_BEAT_MS, metrics: IndexMetrics, clock: Clock = realClock): () => void {
  if (!(intervalMs > 0)) return () => {};
  const log = logger.child({ logger: 'metrics' });
  const timer = clock.setInterval(() => log.info(metrics.snapshot(), 'metrics beat'), intervalMs);
  timer.unref();
  return () => clock.clearInterval(timer);
}
