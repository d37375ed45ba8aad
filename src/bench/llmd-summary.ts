// llm-d's "Summary across QPS" figures, computed from our per-stage results the way llm-d's report
// computed them from inference-perf's per-stage files, so a simulated row and a published row
// measure the same thing. Checked against llm-d/llm-d-kv-cache benchmarking/73-capacity/README.md
// (September 2025) itself: its summary output tok/s equals the mean of its 16 per-QPS rows
// (8,730.0, 6,944.4 and 4,428.7 to 0.1 tok/s), and a success-weighted mean of its per-QPS TTFT p90
// gives 0.537 / 33.3 / 91.1 s against the published 0.542 / 31.1 / 92.6 s (its success counts are
// not published, so every request is weighted as a success there).
import type { StageResult } from './results.js';

/** One requested rate: every stage run at it (llm-d's warm-up at 15 QPS shares the 15-QPS row). */
export interface LlmdRow {
  rate: number;
  stages: number;
  /** Mean over the row's stages of successful output tokens / (last end - first send). */
  outputTokPerSec: number;
  /** Mean over the row's stages of the stage's TTFT p90 / mean (successes only), seconds. */
  ttftP90: number;
  ttftMean: number;
  successes: number;
  failures: number;
}

export interface LlmdSummary {
  rows: LlmdRow[];
  /** Mean of the rows' output tok/s (each requested rate counts once). */
  outputTokPerSec: number;
  /** Rows' TTFT p90 and mean, weighted by their successes. */
  ttftP90: number;
  ttftMean: number;
  successRate: number;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/** llm-d's per-QPS rows and summary from one strategy's stages (warm-up included, as in llm-d's report). */
export function llmdSummary(stages: readonly StageResult[]): LlmdSummary {
  const byRate = new Map<number, StageResult[]>();
  for (const s of stages) byRate.set(s.rate, [...(byRate.get(s.rate) ?? []), s]);
  const rows: LlmdRow[] = [...byRate.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([rate, ss]) => ({
      rate,
      stages: ss.length,
      outputTokPerSec: mean(ss.map((s) => s.outputTokPerSec).filter(Number.isFinite)),
      ttftP90: mean(ss.map((s) => s.ttft.p90).filter(Number.isFinite)),
      ttftMean: mean(ss.map((s) => s.ttft.mean).filter(Number.isFinite)),
      successes: ss.reduce((a, s) => a + s.ok, 0),
      failures: ss.reduce((a, s) => a + s.sent - s.ok, 0),
    }));
  const weighted = (k: 'ttftP90' | 'ttftMean') => {
    const ok = rows.filter((r) => r.successes > 0 && Number.isFinite(r[k]));
    const n = ok.reduce((a, r) => a + r.successes, 0);
    return n > 0 ? ok.reduce((a, r) => a + r[k] * r.successes, 0) / n : NaN;
  };
  const successes = rows.reduce((a, r) => a + r.successes, 0);
  const total = successes + rows.reduce((a, r) => a + r.failures, 0);
  return {
    rows,
    outputTokPerSec: mean(rows.map((r) => r.outputTokPerSec).filter(Number.isFinite)),
    ttftP90: weighted('ttftP90'),
    ttftMean: weighted('ttftMean'),
    successRate: total > 0 ? successes / total : NaN,
  };
}
