import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildSchedulerConfig, parseEndpointPickerConfig } from '../../src/scheduler/config.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { CycleState, PREFIX_MATCH_STATE, SchedulingError, type Endpoint, type InferenceRequest, type PluginContext, type Scorer, type Filter, type Picker, type PreRequest, type SchedulingResult } from '../../src/scheduler/types.js';
import { pluginContext } from '../helpers/plugin-context.js';
import { emptyMetrics } from '../../src/endpoints/vllm-metrics.js';
import { parseOpenAIRequest } from '../../src/gateway/parse.js';

const ctx = (): PluginContext => pluginContext();
function ep(address: string, m: Partial<Endpoint['metrics']> = {}, extra: Partial<Endpoint> = {}): Endpoint {
  return { name: address, address, labels: {}, metrics: { ...emptyMetrics(), updatedAt: Date.now(), ...m }, inflightRequests: 0, inflightTokens: 0, ready: true, ...extra };
}
function req(body: Record<string, unknown> = { model: 'm', prompt: 'hello world' }, headers: Record<string, string> = {}): InferenceRequest {
  return parseOpenAIRequest(body.messages ? '/v1/chat/completions' : '/v1/completions', headers, JSON.stringify(body));
}
function plugin<T>(type: string, parameters: unknown = {}): T {
  const cfg = buildSchedulerConfig(parseEndpointPickerConfig({ plugins: [{ name: 'p', type, parameters }], schedulingProfiles: [{ name: 'default', plugins: [] }] }), ctx());
  return cfg.plugins.get('p') as T;
}
const S = new CycleState();

test('queue-scorer: min-max of waiting, all equal -> 1', async () => {
  const s = plugin<Scorer>('queue-scorer');
  assert.deepEqual(Array.from(await s.score(S, req(), [ep('a', { waiting: 0 }), ep('b', { waiting: 5 }), ep('c', { waiting: 10 })])), [1, 0.5, 0]);
  assert.deepEqual(Array.from(await s.score(S, req(), [ep('a', { waiting: 3 }), ep('b', { waiting: 3 })])), [1, 1]);
});

test('kv-cache-utilization-scorer: 1 - usage; load-aware-scorer: 0.5 idle, 0.5(1 - q/T)', async () => {
  const kv = plugin<Scorer>('kv-cache-utilization-scorer');
  assert.deepEqual(Array.from(await kv.score(S, req(), [ep('a', { kvUsage: 0.25 }), ep('b', { kvUsage: 1 })])), [0.75, 0]);
  const la = plugin<Scorer>('load-aware-scorer', { threshold: 10 });
  assert.deepEqual(Array.from(await la.score(S, req(), [ep('a'), ep('b', { waiting: 5 }), ep('c', { waiting: 50 })])), [0.5, 0.25, 0]);
});

test('active-request-scorer: idle -> 1, else (max - c)/max * maxBusyScore', async () => {
  const s = plugin<Scorer>('active-request-scorer', { maxBusyScore: 0.8 });
  const out = await s.score(S, req(), [ep('a', {}, { inflightRequests: 0 }), ep('b', {}, { inflightRequests: 2 }), ep('c', {}, { inflightRequests: 4 })]);
  assert.deepEqual(Array.from(out), [1, 0.4, 0]);
});

test('session-affinity-scorer follows x-session-token (base64 address) and sets it on responses', async () => {
  const s = plugin<Scorer & { responseHeaders(r: InferenceRequest, e: Endpoint): Record<string, string> }>('session-affinity-scorer');
  const token = s.responseHeaders(req(), ep('10.0.0.2:8000'))['x-session-token'];
  assert.equal(Buffer.from(token, 'base64').toString(), '10.0.0.2:8000');
  assert.deepEqual(Array.from(await s.score(S, req(undefined, { 'x-session-token': token }), [ep('10.0.0.1:8000'), ep('10.0.0.2:8000')])), [0, 1]);
  assert.deepEqual(Array.from(await s.score(S, req(), [ep('10.0.0.1:8000')])), [0]);
});

test('no-hit-lru-scorer: cold requests prefer never/least recently used endpoints; warm ones get 0.5', async () => {
  const s = plugin<Scorer & PreRequest>('no-hit-lru-scorer');
  const eps = [ep('a'), ep('b'), ep('c')];
  const r1 = req();
  const st = new CycleState();
  st.set(PREFIX_MATCH_STATE, { matched: new Map(), totalBlocks: 3 });
  assert.deepEqual(Array.from(await s.score(st, r1, eps)), [1, 1, 1]);
  await s.preRequest(r1, { primaryProfileName: 'default', profileResults: new Map(), targets: [eps[1]] });
  const r2 = req();
  const out = Array.from(await s.score(st, r2, eps));
  assert.equal(out[0], 1);
  assert.equal(out[2], 1);
  assert.ok(out[1] < 1, 'the just-used endpoint ranks below never-used ones');
  const warm = new CycleState();
  warm.set(PREFIX_MATCH_STATE, { matched: new Map([['a', 2]]), totalBlocks: 3 });
  assert.deepEqual(Array.from(await s.score(warm, req(), eps)), [0.5, 0.5, 0.5]);
});

test('filters: decode-filter keeps decode roles and unlabelled; label-selector matchLabels/matchExpressions', async () => {
  const d = plugin<Filter>('decode-filter');
  const eps = [ep('a', {}, { labels: { 'llm-d.ai/role': 'prefill' } }), ep('b', {}, { labels: { 'llm-d.ai/role': 'decode' } }), ep('c')];
  assert.deepEqual((await d.filter(S, req(), eps)).map((e) => e.address), ['b', 'c']);
  const pf = plugin<Filter>('prefill-filter');
  assert.deepEqual((await pf.filter(S, req(), eps)).map((e) => e.address), ['a']);
  const ls = plugin<Filter>('label-selector-filter', { matchExpressions: [{ key: 'llm-d.ai/role', operator: 'In', values: ['decode', 'prefill'] }] });
  assert.deepEqual((await ls.filter(S, req(), eps)).map((e) => e.address), ['a', 'b']);
  const ml = plugin<Filter>('label-selector-filter', { matchLabels: { 'llm-d.ai/role': 'decode' } });
  assert.deepEqual((await ml.filter(S, req(), eps)).map((e) => e.address), ['b']);
});

test('pickers: max-score breaks ties at random, random/weighted-random/round-robin rank endpoints', () => {
  const eps = [ep('a'), ep('b'), ep('c')];
  const max = plugin<Picker>('max-score-picker');
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) seen.add(max.pick(S, req(), [{ endpoint: eps[0], score: 1 }, { endpoint: eps[1], score: 1 }, { endpoint: eps[2], score: 0.5 }])[0].address);
  assert.deepEqual([...seen].sort(), ['a', 'b']);
  const max2 = plugin<Picker>('max-score-picker', { maxNumOfEndpoints: 2 });
  assert.deepEqual(max2.pick(S, req(), [{ endpoint: eps[0], score: 0.1 }, { endpoint: eps[1], score: 0.9 }, { endpoint: eps[2], score: 0.5 }]).map((e) => e.address), ['b', 'c']);
  const wr = plugin<Picker>('weighted-random-picker');
  const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
  for (let i = 0; i < 2000; i++) counts[wr.pick(S, req(), [{ endpoint: eps[0], score: 3 }, { endpoint: eps[1], score: 1 }, { endpoint: eps[2], score: 0 }])[0].address]++;
  assert.equal(counts.c, 0);
  assert.ok(counts.a > counts.b * 2, JSON.stringify(counts));
  const rr = plugin<Picker>('round-robin-picker');
  const order = Array.from({ length: 6 }, () => rr.pick(S, req(), eps.map((e) => ({ endpoint: e, score: 0 })))[0].address);
  assert.deepEqual(order, ['a', 'b', 'c', 'a', 'b', 'c']);
  const rp = plugin<Picker>('random-picker', { maxNumOfEndpoints: 3 });
  assert.deepEqual(rp.pick(S, req(), eps.map((e) => ({ endpoint: e, score: 0 }))).map((e) => e.address).sort(), ['a', 'b', 'c']);
});

test('prefix-cache-scorer (approximate) learns from its own decisions: matchBlocks/totalBlocks', async () => {
  const s = plugin<Scorer & PreRequest>('prefix-cache-scorer', { blockSize: 8 });
  const eps = [ep('a'), ep('b')];
  const text = 'abcdefgh'.repeat(4); // 4 blocks of 8 chars
  const r1 = req({ model: 'm', prompt: text });
  assert.deepEqual(Array.from(await s.score(new CycleState(), r1, eps)), [0, 0]);
  await s.preRequest(r1, { primaryProfileName: 'default', profileResults: new Map(), targets: [eps[1]] } as SchedulingResult);
  const r2 = req({ model: 'm', prompt: text.slice(0, 16) + 'zzzzzzzzzzzzzzzz' });
  assert.deepEqual(Array.from(await s.score(new CycleState(), r2, eps)), [0, 0.5]);
  const other = req({ model: 'other-model', prompt: text });
  assert.deepEqual(Array.from(await s.score(new CycleState(), other, eps)), [0, 0], 'the model roots the chain');
});

test('scheduler: filters, clamped weighted sum (not normalized by weights), picker; 429 when filtered empty, 503 with no candidates', async () => {
  const cfg = buildSchedulerConfig(
    parseEndpointPickerConfig({
      plugins: [{ type: 'decode-filter' }, { type: 'queue-scorer' }, { type: 'load-aware-scorer' }],
      schedulingProfiles: [{ name: 'default', plugins: [{ pluginRef: 'decode-filter' }, { pluginRef: 'queue-scorer', weight: 2 }, { pluginRef: 'load-aware-scorer', weight: 3 }] }],
    }),
    ctx(),
  );
  const sched = new Scheduler(cfg.profiles, cfg.profileHandler);
  const eps = [ep('a', { waiting: 0 }), ep('b', { waiting: 64 }), ep('p', {}, { labels: { 'llm-d.ai/role': 'prefill' } })];
  const res = await sched.schedule(req(), eps);
  assert.equal(res.targets[0].address, 'a');
  const totals = res.profileResults.get('default')!.totals;
  assert.equal(totals.get('a'), 2 * 1 + 3 * 0.5);
  assert.equal(totals.get('b'), 2 * 0 + 3 * 0.25);
  assert.equal(totals.has('p'), false);
  await assert.rejects(sched.schedule(req(), [eps[2]]), (e: unknown) => e instanceof SchedulingError && e.status === 429);
  await assert.rejects(sched.schedule(req(), []), (e: unknown) => e instanceof SchedulingError && e.status === 503);
});

test('scheduler clamps out-of-range scorer outputs to [0,1]', async () => {
  const { registerPlugin } = await import('../../src/scheduler/registry.js');
  registerPlugin('test-wild-scorer', (_p, c) => ({ type: c.type, name: c.name, score: () => [5, -3, Number.NaN] }));
  const cfg = buildSchedulerConfig(parseEndpointPickerConfig({ plugins: [{ type: 'test-wild-scorer' }] }), ctx());
  const res = await new Scheduler(cfg.profiles, cfg.profileHandler).schedule(req(), [ep('a'), ep('b'), ep('c')]);
  assert.deepEqual([...res.profileResults.get('default')!.totals.values()], [1, 0, 0]);
});
