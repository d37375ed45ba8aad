// llm-d's "summary across QPS" arithmetic: per-rate rows (the warm-up shares its rate's row),
// the plain mean of the rows' tok/s, and the rows' TTFT weighted by their successes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { llmdSummary } from '../../src/bench/llmd-summary.js';
import type { StageResult } from '../../src/bench/results.js';

function stage(rate: number, tok: number, p90: number, mean: number, ok: number, sent = ok, warmup = false): StageResult {
  return { rate, warmup, outputTokPerSec: tok, ttft: { p90, mean }, ok, sent } as unknown as StageResult;
}

test('llm-d summary: warm-up merged by rate, tok/s a plain mean of rows, TTFT weighted by successes', () => {
  const s = llmdSummary([
    stage(15, 3000, 1.0, 0.5, 100, 100, true),
    stage(3, 1000, 0.5, 0.2, 10),
    stage(15, 5000, 3.0, 1.5, 300),
    stage(60, 9000, 10, 4, 900, 1000),
  ]);
  assert.deepEqual(s.rows.map((r) => [r.rate, r.stages]), [[3, 1], [15, 2], [60, 1]]);
  const r15 = s.rows[1];
  assert.equal(r15.outputTokPerSec, 4000, 'the 15-QPS row averages the warm-up and the stage');
  assert.equal(r15.ttftP90, 2.0);
  assert.equal(r15.successes, 400);
  assert.equal(s.outputTokPerSec, (1000 + 4000 + 9000) / 3, 'each rate counts once, whatever its length');
  assert.equal(s.ttftP90, (0.5 * 10 + 2.0 * 400 + 10 * 900) / 1310);
  assert.equal(s.successRate, 1310 / 1410);
  assert.equal(s.rows[2].failures, 100);
});
