import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fmtNum, lineChart } from '../../src/bench/report/svg.js';
import { markdownReport } from '../../src/bench/report/tables.js';
import { charts } from '../../src/bench/report/write.js';
import { aggregateStage, type BenchResults } from '../../src/bench/results.js';
import type { RequestResult } from '../../src/bench/client.js';

test('svg: log scale when values span > 50x, one path per series, escaped labels', () => {
  const svg = lineChart({
    title: 'TTFT <p90>',
    xLabel: 'qps',
    yLabel: 's',
    series: [
      { name: 'a & b', points: [[3, 0.5], [10, 0.6], [60, 0.7]] },
      { name: 'random', points: [[3, 1], [10, 20], [60, 90]] },
    ],
  });
  assert.match(svg, /TTFT &lt;p90&gt;/);
  assert.match(svg, /a &amp; b/);
  assert.match(svg, /\(log scale\)/);
  assert.equal((svg.match(/<path /g) ?? []).length, 2);
  assert.equal((svg.match(/<circle /g) ?? []).length, 6);
  // Higher values are drawn higher (smaller y).
  const ys = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"[^>]*><title>random/g)].map((m) => Number(m[1]));
  assert.ok(ys[0] > ys[1] && ys[1] > ys[2]);
  const lin = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 's', points: [[1, 10], [2, 12]] }] });
  assert.doesNotMatch(lin, /log scale/);
  assert.equal(fmtNum(8730), '8730');
  assert.equal(fmtNum(12345), '12.3k');
  assert.equal(fmtNum(0.542), '0.54');
  assert.equal(fmtNum(NaN), '-');
});

function req(i: number, stage: number, ok: boolean, ttftMs: number, endpoint: string): RequestResult {
  return {
    id: i, stage, scheduledMs: i * 100, sentMs: i * 100, ok, status: ok ? 200 : 503, shed: !ok, itlMs: ok ? [20, 30] : [],
    ttftMs: ok ? ttftMs : undefined, e2eMs: ok ? 1000 : undefined, promptTokens: 100, outputTokens: ok ? 3 : 0,
    cachedTokens: ok ? 50 : undefined, endpoint, error: ok ? undefined : 'HTTP 503',
  };
}

test('aggregation and markdown: model-time conversion, shed counted, imbalance from routed endpoints', () => {
  const pods = [
    { prefixQueries: 300, prefixHits: 150, promptTokens: 300, generationTokens: 9, requests: 3, preemptions: 0 },
    { prefixQueries: 0, prefixHits: 0, promptTokens: 0, generationTokens: 0, requests: 0, preemptions: 0 },
  ];
  const rs = [req(0, 0, true, 200, 'p1'), req(1, 0, true, 400, 'p1'), req(2, 0, true, 600, 'p1'), req(3, 0, false, 0, 'p2')];
  // Time scale 2: 200 ms wall = 0.1 s model.
  const st = aggregateStage(0, { rate: 4, duration: 1 }, rs, (ms) => ms / 2000, pods, { prompt: 400, cached: 300 }, ['p1', 'p2']);
  assert.equal(st.sent, 4);
  assert.equal(st.ok, 3);
  assert.equal(st.shed, 1);
  assert.equal(st.errors, 0);
  assert.equal(st.errorRate, 0.25);
  assert.ok(Math.abs(st.ttft.p50 - 0.2) < 1e-12);
  // (1000 - ttft) ms over 2 gaps, / 2000: requests' means 0.2, 0.15, 0.1 s.
  assert.ok(Math.abs(st.itl.p50 - 0.15) < 1e-12);
  assert.equal(st.hitRate, 0.5);
  assert.equal(st.clientHitRate, 0.5);
  assert.equal(st.oracleHitRate, 0.75);
  assert.deepEqual(st.routedPerPod, [3, 1]);
  assert.equal(st.imbalanceRequests, 1.5);
  // 9 output tokens over (200 + 1000 ms wall) / 2000 = 0.6 model s.
  assert.ok(Math.abs(st.outputTokPerSec - 15) < 1e-9);

  const results: BenchResults = {
    meta: {
      startedAt: 'now', wallSeconds: 1, workload: { kind: 'shared_prefix', params: {} }, load: { type: 'poisson', stages: [{ rate: 4, duration: 1 }] },
      pods: 2, sim: {}, timeScale: 2, seed: 1, model: 'm', requests: 4, host: { cpus: 2, node: 'v20', platform: 'linux' }, notes: ['a note'],
    },
    oracle: { hitRate: 0.75, perStage: [0.75] },
    strategies: [{ name: 'precise', label: 'precise', description: 'd', config: '', stages: [st], total: st, wallSeconds: 1, sampleErrors: ['HTTP 503'] }],
  };
  const md = markdownReport(results);
  assert.match(md, /\| precise \| 4 \| 0\.200 s \|/);
  assert.match(md, /25\.0% \(1 shed\)/);
  assert.match(md, /- a note/);
  const c = charts(results);
  assert.deepEqual(Object.keys(c), ['ttft-p90', 'throughput', 'hit-rate']);
  assert.deepEqual(c['hit-rate'].series.at(-1)?.points, [[4, 75]]);
});
