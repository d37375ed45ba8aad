// The request-path histogram exports exactly what prom-client's Histogram would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry } from 'prom-client';
import { FastHistogram } from '../../src/gateway/metrics.js';

test('FastHistogram: /metrics text identical to a prom-client Histogram fed the same observations', async () => {
  const viaProm = new Registry();
  const viaFast = new Registry();
  const h = new Histogram({ name: 'x_seconds', help: 'X', labelNames: ['model_name', 'target_model_name'], buckets: [0.1, 1, 10], registers: [viaProm] });
  const f = new FastHistogram<'model_name' | 'target_model_name'>('x_seconds', 'X', [0.1, 1, 10], viaFast);
  const observations: [string, number][] = [['a', 0.05], ['a', 0.1], ['b', 5], ['a', 100], ['b', 1], ['c', 0], ['a', 10]];
  for (const [m, v] of observations) {
    h.observe({ model_name: m, target_model_name: 'z' }, v);
    f.labelled(m, () => ({ model_name: m, target_model_name: 'z' })).observe(v);
  }
  // Non-finite values are dropped, never thrown on the request path.
  f.labelled('a', () => ({})).observe(NaN);
  assert.equal(await viaFast.metrics(), await viaProm.metrics());
  assert.match(await viaFast.metrics(), /x_seconds_count\{model_name="a",target_model_name="z"\} 4/);
  viaFast.resetMetrics();
  assert.match(await viaFast.metrics(), /x_seconds_count\{model_name="a",target_model_name="z"\} 0/);
  const single = new FastHistogram('y', 'Y', [1], viaFast).unlabelled();
  single.observe(0.5);
  assert.match(await viaFast.metrics(), /y_bucket\{le="1"\} 1\ny_bucket\{le="\+Inf"\} 1\ny_sum 0.5\ny_count 1/);
});
