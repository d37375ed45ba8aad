// The picker's metrics export what prom-client's own types would, from cheap request-path series.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { EppMetrics } from '../../src/k8s/metrics.js';

describe('EppMetrics', () => {
  it('exports counters, the running gauge and histograms with their labels', async () => {
    const registry = new Registry();
    const m = new EppMetrics(registry);
    const mm = m.forModel('m1', 't1');
    mm.requests.inc();
    mm.requests.inc();
    mm.running.inc();
    mm.running.inc();
    mm.running.dec();
    mm.duration.observe(0.03);
    mm.inputTokens.observe(100);
    m.pickOk.observe(0.0003);
    m.streamsBy.picked.inc();
    m.error('m1', 't1', 503);
    const text = await registry.metrics();
    assert.match(text, /inference_objective_request_total\{model_name="m1",target_model_name="t1"\} 2\n/);
    assert.match(text, /inference_objective_running_requests\{model_name="m1"\} 1\n/);
    assert.match(text, /inference_objective_request_error_total\{model_name="m1",target_model_name="t1",error_code="503"\} 1\n/);
    assert.match(text, /# TYPE inference_objective_request_duration_seconds histogram/);
    assert.match(text, /inference_objective_request_duration_seconds_bucket\{le="0.025",model_name="m1",target_model_name="t1"\} 0\n/);
    assert.match(text, /inference_objective_request_duration_seconds_bucket\{le="0.05",model_name="m1",target_model_name="t1"\} 1\n/);
    assert.match(text, /inference_objective_input_tokens_sum\{model_name="m1",target_model_name="t1"\} 100\n/);
    assert.match(text, /kvrouter_extproc_pick_duration_seconds_count\{result="ok"\} 1\n/);
    assert.match(text, /kvrouter_extproc_streams_total\{kind="picked"\} 1\n/);
  });

  it('a second instance on the same registry is the first one', () => {
    const registry = new Registry();
    const a = new EppMetrics(registry);
    assert.equal(new EppMetrics(registry), a);
    assert.notEqual(new EppMetrics(new Registry()), a);
  });
});
