import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pluginContext } from '../helpers/plugin-context.js';
import { buildSchedulerConfig, parseEndpointPickerConfig } from '../../src/scheduler/config.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { CycleState, type Endpoint, type InferenceRequest, type SchedulingResult } from '../../src/scheduler/types.js';
import { emptyMetrics } from '../../src/endpoints/vllm-metrics.js';
import { parseOpenAIRequest } from '../../src/gateway/parse.js';
import { strategyByName } from '../../src/bench/strategies.js';
import type { InflightLoadProducer, PrefixCacheAffinityFilter } from '../../src/bench/peers/sticky-until-saturated.js';

function ep(address: string): Endpoint {
  return { name: address, address, labels: {}, metrics: { ...emptyMetrics(), updatedAt: Date.now() }, inflightRequests: 0, inflightTokens: 0, ready: true };
}
function req(text: string): InferenceRequest {
  return parseOpenAIRequest('/v1/completions', {}, JSON.stringify({ model: 'm', prompt: text, stream: true }));
}

function setup(maxTTFTPenaltyMs: number) {
  const doc = strategyByName('llmd-sticky').config({ model: 'm', blockSize: 16, zmqEndpoint: 'tcp://127.0.0.1:0' }) as {
    plugins: { type: string; parameters?: Record<string, unknown> }[];
  };
  // A 1 s gate at 1,000 tokens/s: stickiness breaks past a 1,000-token in-flight gap.
  for (const p of doc.plugins) if (p.type === 'llmd-prefix-cache-affinity-filter') p.parameters = { ...p.parameters, maxTTFTPenaltyMs, peakPrefillThroughput: 1000 };
  const cfg = buildSchedulerConfig(parseEndpointPickerConfig(doc), pluginContext());
  const scheduler = new Scheduler(cfg.profiles, cfg.profileHandler);
  const route = async (r: InferenceRequest, eps: Endpoint[]) => {
    const result: SchedulingResult = await scheduler.schedule(r, eps, new CycleState());
    for (const h of cfg.preRequest) await h.preRequest(r, result);
    return result.targets[0];
  };
  return {
    cfg,
    route,
    producer: cfg.plugins.get('llmd-inflight-load-producer') as InflightLoadProducer,
    filter: cfg.plugins.get('llmd-prefix-cache-affinity-filter') as PrefixCacheAffinityFilter,
  };
}

const sys = 'You are a helpful assistant. '.repeat(80);

test('llmd-sticky: a group sticks to its pod until the in-flight token gap passes tau, then goes by token load', async () => {
  const A = ep('10.0.0.1:8000');
  const B = ep('10.0.0.2:8000');
  const s = setup(1000);
  const first = await s.route(req(sys + 'q0'), [A, B]);
  const other = first === A ? B : A;
  // Cache-discounted in-flight tokens: the first request was all uncached.
  assert.ok(s.producer.inflight(first.address) > 400);
  const second = req(sys + 'q1');
  assert.equal(await s.route(second, [A, B]), first, 'sticky below tau');
  assert.ok(s.producer.inflight(first.address) < 2 * 600, 'the hit is discounted');
  assert.equal(s.filter.outcomes.sticky, 1);
  // Pile cold in-flight work on the sticky pod until its estimated TTFT is > 1 s worse.
  let n = 0;
  while (s.producer.inflight(first.address) - s.producer.inflight(other.address) <= 1000 && n < 20) {
    const r = req(`${n} unrelated `.repeat(100));
    const to = await s.route(r, [first]);
    assert.equal(to, first);
    n++;
  }
  assert.equal(await s.route(req(sys + 'q2'), [A, B]), other, 'saturated: the token-load scorer sends it to the lighter pod');
  assert.equal(s.filter.outcomes.load_override, 1);
  // The first token releases a request's in-flight tokens (StartOfStream).
  const before = s.producer.inflight(first.address);
  s.producer.responseFirstToken(second);
  assert.ok(s.producer.inflight(first.address) < before);
  for (const p of s.cfg.plugins.values()) await p.close?.();
});
