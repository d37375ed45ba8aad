// Prometheus metrics whose request-path cost is arithmetic: prom-client validates and hashes
// the label object on every observation (several us each); these keep plain numbers per
// caller-built key and export what prom-client's Counter / Gauge / Histogram would at scrape.
import { Counter, Gauge, type Metric, type Registry } from 'prom-client';

/**
 * A labelled counter whose hot path is a Map lookup on a caller-built key; prom-client reads
 * the totals at scrape time (label hashing per request would cost more than the routing).
 */
export class Tally<L extends string> {
  private readonly counts = new Map<string, { labels: Partial<Record<L, string>>; n: number }>();
  constructor(name: string, help: string, labelNames: L[], registry: Registry, kind: 'counter' | 'gauge' = 'counter') {
    const counts = this.counts;
    const collect = function (this: Counter<L> | Gauge<L>) {
      this.reset();
      for (const { labels, n } of counts.values()) (this as Gauge<L>).set(labels, n);
    };
    if (kind === 'counter') {
      // Counter has no set(): read through a gauge-like collect by resetting and incrementing.
      new Counter({
        name,
        help,
        labelNames,
        registers: [registry],
        collect() {
          this.reset();
          for (const { labels, n } of counts.values()) if (n > 0) this.inc(labels, n);
        },
      });
    } else new Gauge({ name, help, labelNames, registers: [registry], collect });
  }
  add(key: string, labels: () => Partial<Record<L, string>>, delta = 1): void {
    let c = this.counts.get(key);
    if (!c) this.counts.set(key, (c = { labels: labels(), n: 0 }));
    c.n += delta;
  }
}

/** One labelled series of a FastHistogram: observe() is a bucket scan and three additions. */
export class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Record<string, string>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }
  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]) i++;
    if (i < b.length) this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

/**
 * A Prometheus histogram for the request path. prom-client validates and hashes the label
 * object on every observation (several us each, ~10 per request); here the caller keeps the
 * series (per model, per plugin) and observing is arithmetic. It registers itself on the
 * Registry and exports exactly what a prom-client Histogram would.
 */
export class FastHistogram<L extends string = never> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, HistogramSeries>();
  private readonly bounds: number[];

  constructor(
    readonly name: string,
    readonly help: string,
    buckets: readonly number[],
    registry: Registry,
  ) {
    this.bounds = [...buckets].sort((a, b) => a - b);
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series for a caller-built key (labels computed on first use only). */
  labelled(key: string, labels: () => Partial<Record<L, string>>): HistogramSeries {
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = new HistogramSeries(labels() as Record<string, string>, this.bounds)));
    return s;
  }

  /** The series without labels. */
  unlabelled(): HistogramSeries {
    return this.labelled('', () => ({}));
  }

  /** prom-client's Metric contract: the values a prom-client Histogram would export. */
  get(): { name: string; help: string; type: string; aggregator: string; values: { labels: Record<string, string | number>; sharedLabels: Record<string, string>; value: number; metricName: string }[] } {
    const values = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.series.values()) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += s.counts[i];
        values.push({ labels: { le: this.bounds[i] }, sharedLabels: s.labels, value: acc, metricName: bucket });
      }
      values.push({ labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: bucket });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const s of this.series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}

