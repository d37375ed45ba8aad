// Summary statistics. Percentiles interpolate linearly between order statistics (numpy's default).

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  if (sorted.length === 1) return sorted[0];
  const pos = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export interface Summary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function summarize(values: number[]): Summary {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { count: 0, mean: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN };
  let sum = 0;
  for (const x of v) sum += x;
  return { count: v.length, mean: sum / v.length, p50: percentile(v, 50), p90: percentile(v, 90), p99: percentile(v, 99), max: v[v.length - 1] };
}

/** max/mean of per-pod counts: 1.0 is perfectly even; N means one pod took everything. */
export function imbalance(perPod: number[]): number {
  if (perPod.length === 0) return NaN;
  const total = perPod.reduce((a, b) => a + b, 0);
  if (total === 0) return 1;
  return Math.max(...perPod) / (total / perPod.length);
}
