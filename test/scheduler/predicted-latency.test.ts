import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pluginContext } from '../helpers/plugin-context.js';
import { Registry } from 'prom-client';
import { buildSchedulerConfig, parseEndpointPickerConfig, readEndpointPickerConfig } from '../../src/scheduler/config.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { CycleState, type Endpoint, type InferenceRequest, type PluginContext, type SchedulingResult } from '../../src/scheduler/types.js';
import { emptyMetrics } from '../../src/endpoints/vllm-metrics.js';
import { parseOpenAIRequest } from '../../src/gateway/parse.js';
import { ManualClock } from '../../src/util/clock.js';
import type { PrecisePrefixCacheScorer } from '../../src/scheduler/plugins/precise-prefix.js';
import type { PredictedLatencyScorer } from '../../src/scheduler/plugins/predicted-latency/scorer.js';
import { Multiplier, copyCostMs, kvWaitMs, predict, withKvWait, type StepCosts } from '../../src/scheduler/plugins/predicted-latency/model.js';

const COSTS: StepCosts = { prefillMsPerToken: 0.1, stepOverheadMs: 10, decodeMsPerSeq: 0.5, maxNumBatchedTokens: 1000 };

function ep(address: string, m: Partial<Endpoint['metrics']> = {}): Endpoint {
  return { name: address, address, labels: {}, metrics: { ...emptyMetrics(), updatedAt: Date.now(), ...m }, inflightRequests: 0, inflightTokens: 0, ready: true };
}

/** A completions request whose prompt is `n` token ids starting at `base`. */
function req(base: number, n = 100): InferenceRequest {
  const prompt = Array.from({ length: n }, (_, i) => base + i);
  return parseOpenAIRequest('/v1/completions', {}, JSON.stringify({ model: 'm', prompt, stream: true }));
}

function setup(params: Record<string, unknown> = {}) {
  const clock = new ManualClock(1000);
  const registry = new Registry();
  const ctx: PluginContext = { ...pluginContext(), registry, clock };
  const cfg = buildSchedulerConfig(
    parseEndpointPickerConfig({
      plugins: [
        { type: 'precise-prefix-cache-scorer', parameters: { tokenProcessorConfig: { blockSize: 4 } } },
        {
          type: 'predicted-latency-scorer',
          // decodeWeight 0: these tests check the TTFT and copy arithmetic; the decode side has its own.
          parameters: { prefillMsPerToken: 0.1, stepOverheadMs: 10, decodeMsPerSeq: 0.5, maxNumBatchedTokens: 1000, decodeWeight: 0, ...params },
        },
        { type: 'max-score-picker' },
      ],
      schedulingProfiles: [{ name: 'default', plugins: [{ pluginRef: 'predicted-latency-scorer' }, { pluginRef: 'max-score-picker' }] }],
    }),
    ctx,
  );
  const precise = cfg.plugins.get('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
  const pl = cfg.plugins.get('predicted-latency-scorer') as PredictedLatencyScorer;
  const scheduler = new Scheduler(cfg.profiles, cfg.profileHandler);
  /** The pod now holds the request's prompt blocks (as a KV event would say). */
  const hold = async (r: InferenceRequest, pod: string) => {
    const tokens = (await r.getTokens())!;
    await precise.index.addSpeculative(precise.keyer.keys(tokens, { model: 'm', lora: null, cacheSalt: null }), pod, 1e9);
  };
  /** One scheduling decision and its PreRequest hooks; returns the chosen address. */
  const route = async (r: InferenceRequest, eps: Endpoint[], force?: Endpoint) => {
    const result = await scheduler.schedule(r, eps, new CycleState());
    const sent: SchedulingResult = force ? { ...result, targets: [force] } : result;
    for (const h of cfg.preRequest) await h.preRequest(r, sent);
    return sent.targets[0].address;
  };
  const close = async () => {
    for (const p of cfg.plugins.values()) await p.close?.();
  };
  return { clock, registry, precise, pl, route, hold, close, cfg };
}

test('model: queued prefill, own uncached tokens and the decode batch add up; a copy costs its extra prefill again', () => {
  const idle = predict(COSTS, { queuedTokens: 0, decoding: 0, kPrefill: 1, kStep: 1, queuedCount: 0, admitGapMs: 0, futureBatch: 0 }, 100);
  // 100 tokens x 0.1 ms + (100/1000 + 1) steps x 10 ms
  assert.ok(Math.abs(idle.ttftMs - 21) < 1e-9, String(idle.ttftMs));
  assert.equal(idle.queueMs, 0);
  const busy = predict(COSTS, { queuedTokens: 900, decoding: 100, kPrefill: 1, kStep: 1, queuedCount: 0, admitGapMs: 0, futureBatch: 0 }, 100);
  assert.ok(busy.queueMs > 90, 'queued prefill is waited for');
  assert.ok(busy.decodeSlowdownMs > 0 && busy.ttftMs > idle.ttftMs + busy.queueMs, 'the decode batch slows every step');
  const slow = predict(COSTS, { queuedTokens: 0, decoding: 0, kPrefill: 2, kStep: 2, queuedCount: 0, admitGapMs: 0, futureBatch: 0 }, 100);
  assert.ok(Math.abs(slow.ttftMs - 42) < 1e-9, 'learned multipliers scale the prediction');
  assert.ok(Math.abs(copyCostMs(COSTS, { queuedTokens: 0, decoding: 0, kPrefill: 1, kStep: 1, queuedCount: 0, admitGapMs: 0, futureBatch: 0 }, 96, 1) - 9.6) < 1e-9);
  assert.equal(copyCostMs(COSTS, { queuedTokens: 0, decoding: 0, kPrefill: 1, kStep: 1, queuedCount: 0, admitGapMs: 0, futureBatch: 0 }, 96, 0), 0);
  const m = new Multiplier(0.05, 0.05, 20);
  for (let i = 0; i < 200; i++) m.observe(2);
  assert.ok(Math.abs(m.value - 2) < 0.01);
  m.observe(NaN);
  m.observe(-1);
  assert.ok(Math.abs(m.value - 2) < 0.01, 'bad samples are ignored');
});

test('a warm pod keeps its prefix group until its queue costs more than a second copy (the myopic argmin leaves earlier)', async () => {
  const A = ep('10.0.0.1:8000');
  const B = ep('10.0.0.2:8000');
  for (const [weight, expect] of [
    [1, A.address],
    [0, B.address],
  ] as const) {
    const s = setup({ localityWeight: weight });
    const group = req(1);
    await s.hold(group, A.address);
    // 150 uncached tokens already queued on A: A's TTFT = 150 x 0.11 + 10.44 = 26.9 ms, B's cold
    // TTFT = 21 ms, and B's copy costs 96 x 0.1 = 9.6 ms more.
    await s.route(req(10_000, 150), [A, B], A);
    assert.equal(s.pl.podState(A.address).queuedTokens, 150);
    assert.equal(await s.route(req(1), [A, B]), expect, `localityWeight ${weight}`);
    await s.close();
  }
});

test('a saturated holder gets its hot prefix replicated; with a TTFT SLO earlier', async () => {
  const A = ep('10.0.0.1:8000');
  const B = ep('10.0.0.2:8000');
  const s = setup();
  await s.hold(req(1), A.address);
  await s.route(req(10_000, 400), [A, B], A); // A: 400 x 0.11 + 10.44 = 54 ms > B's 30.6 ms cost
  assert.equal(await s.route(req(1), [A, B]), B.address);
  const decisions = await s.registry.getSingleMetricAsString('kvrouter_predicted_latency_decisions_total');
  assert.match(decisions, /outcome="copy"} 1/);
  await s.close();

  const slo = setup({ ttftSLO: '25ms' });
  await slo.hold(req(1), A.address);
  await slo.route(req(10_000, 150), [A, B], A); // A 26.9 ms misses 25 ms, B 21 ms meets it
  assert.equal(await slo.route(req(1), [A, B]), B.address);
  await slo.close();
});

test('queued prefill is tracked from the decision to the first token, the decode batch until completion', async () => {
  const A = ep('10.0.0.1:8000');
  const s = setup();
  const r = req(1);
  assert.equal(await s.route(r, [A]), A.address);
  assert.deepEqual({ ...s.pl.podState(A.address), kPrefill: 0, kStep: 0 }, { queuedTokens: 100, queuedCount: 1, decoding: 0, kPrefill: 0, kStep: 0 });
  s.clock.advance(21);
  s.pl.responseFirstToken(r, A);
  assert.equal(s.pl.podState(A.address).queuedTokens, 0);
  assert.equal(s.pl.podState(A.address).decoding, 1);
  s.pl.responseStart(req(5), A); // headers of another request: no effect once first tokens are seen
  s.pl.responseComplete(r, A, { status: 200, completionTokens: 10 });
  assert.deepEqual({ ...s.pl.podState(A.address), kPrefill: 0, kStep: 0 }, { queuedTokens: 0, queuedCount: 0, decoding: 0, kPrefill: 0, kStep: 0 });
  const err = await s.registry.getSingleMetricAsString('kvrouter_predicted_ttft_error_seconds');
  assert.match(err, /kvrouter_predicted_ttft_error_seconds_count 1/);
  await s.close();
});

test('a pod twice as slow is learned from its TTFT and ITL, then predicted twice as slow, and cold work goes to the faster pod while both serve as many groups', async () => {
  const A = ep('10.0.0.1:8000');
  const B = ep('10.0.0.2:8000');
  const s = setup();
  // Cold 600-token requests forced alternately onto each pod; B takes twice as long for everything.
  for (let i = 0; i < 30; i++) {
    for (const [pod, slow] of [
      [A, 1],
      [B, 2],
    ] as const) {
      const r = req(100_000 + i * 1000 + (slow - 1) * 500, 600);
      await s.route(r, [A, B], pod);
      s.clock.advance(slow * (600 * 0.1 + (600 / 1000 + 1) * 10));
      s.pl.responseFirstToken(r, pod);
      s.clock.advance(slow * 9 * 10.5);
      s.pl.responseComplete(r, pod, { status: 200, completionTokens: 10 });
    }
  }
  const a = s.pl.podState(A.address);
  const b = s.pl.podState(B.address);
  assert.ok(Math.abs(a.kPrefill - 1) < 0.15 && Math.abs(a.kStep - 1) < 0.15, JSON.stringify(a));
  assert.ok(b.kPrefill > 1.6 && b.kStep > 1.6, JSON.stringify(b));
  // Both pods serve as many groups (30 each): the cost decides, and it knows B is slower.
  const cold = await s.pl.detail(req(900_000, 600), [A, B]);
  const [ca, cb] = cold.endpoints;
  assert.ok(cb.ttftMs / ca.ttftMs > 1.6 && cb.ttftMs / ca.ttftMs < 2.4, JSON.stringify(cold.endpoints));
  assert.equal(await s.route(req(900_000, 600), [A, B]), A.address, 'cold work goes to the faster pod');
  const d = await s.pl.detail(req(5), [A, B]);
  assert.ok(d.endpoints.every((e) => Number.isFinite(e.ttftMs) && Number.isFinite(e.costMs)), JSON.stringify(d));
  await s.close();
});

test('ties between equally cold idle pods go where the prefix hashes, so a new group lands together', async () => {
  const eps = ['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000', '10.0.0.4:8000'].map((a) => ep(a));
  const s = setup();
  const first = await s.pl.detail(req(7), eps);
  const again = await s.pl.detail(req(7), eps);
  assert.equal(first.chosen, again.chosen);
  const chosen = new Set<string>();
  for (let g = 0; g < 20; g++) chosen.add((await s.pl.detail(req(g * 1000), eps)).chosen!);
  assert.ok(chosen.size >= 3, 'different prefixes spread over the pods');
  const parts = first.endpoints[0];
  assert.equal(parts.uncachedTokens, 100);
  assert.ok(Math.abs(parts.ttftMs - (parts.queueMs + parts.prefillMs)) < 0.01);
  await s.close();
});

test('the predicted-latency example config loads', async () => {
  const cfg = buildSchedulerConfig(readEndpointPickerConfig('examples/predicted-latency.yaml'), pluginContext());
  const prof = cfg.profiles.get('default')!;
  assert.deepEqual(prof.scorers.map((s) => [s.scorer.type, s.weight]), [['predicted-latency-scorer', 1]]);
  const pl = cfg.plugins.get('predicted-latency-scorer') as PredictedLatencyScorer;
  pl.start();
  assert.ok(cfg.preRequest.includes(cfg.plugins.get('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer), 'speculative entries still follow decisions');
  assert.ok(cfg.responseHooks.includes(pl));
  for (const p of cfg.plugins.values()) await p.close?.();
});

test('a new prefix group goes to the pod serving fewer groups, not to the one with fewer sequences this instant', async () => {
  const A = ep('10.0.0.1:8000');
  const B = ep('10.0.0.2:8000');
  for (const [decodeWeight, expect] of [
    [1, B.address],
    // Without the decode side, this instant decides: A decodes fewer sequences.
    [0, A.address],
  ] as const) {
    // The cost alone (balanceGroups off): the decode side prices the groups a pod serves.
    const s = setup({ decodeWeight, balanceGroups: false });
    // A serves three groups with one request each; B one group with four, all decoding.
    const sent: [InferenceRequest, Endpoint][] = [];
    for (const g of [1, 2, 3]) sent.push([req(g * 10_000), A]);
    for (let k = 0; k < 4; k++) sent.push([req(50_000), B]);
    for (const [r, pod] of sent) await s.route(r, [A, B], pod);
    for (const [r, pod] of sent) s.pl.responseFirstToken(r, pod);
    const d = await s.pl.detail(req(90_000), [A, B]);
    // 7 sequences over 4 groups: A's next batch is 4 groups x 1.75 sequences, B's 2 x 1.75.
    assert.equal(d.chosen, expect, `decodeWeight ${decodeWeight}: ${JSON.stringify(d.endpoints)}`);
    assert.ok(d.endpoints.every((e) => Math.abs(e.costMs - (e.ttftMs + e.copyMs + e.decodeCostMs)) < 0.01));
    await s.close();
  }
});

test('the KV wait sees a pod saturating before any request waits there; it is the queue wait when longest (again in the cost with kvWaitWeight)', async () => {
  assert.equal(kvWaitMs(90, 100, 1000), 0);
  assert.equal(kvWaitMs(110, 0, 1000), 0, 'unknown capacity: no prediction');
  assert.ok(Math.abs(kvWaitMs(110, 100, 1000) - 100) < 1e-9, '10 % over capacity waits a tenth of a decode lifetime');
  const pr = { ttftMs: 30, queueMs: 10, admissionMs: 5, prefillMs: 20, decodeSlowdownMs: 1, itlMs: 10 };
  assert.equal(withKvWait(pr, 8), pr, 'a shorter KV wait does not bind');
  assert.deepEqual(withKvWait(pr, 50), { ...pr, ttftMs: 70, queueMs: 50 });
  // A: the prefix cached, KV 90 % in use by running sequences (100 blocks x 4 tokens); B: empty.
  const full = { kvUsage: 0.9, numGpuBlocks: 100, blockSize: 4 };
  for (const kvWaitWeight of [0, 1]) {
    const A = ep('10.0.0.1:8000', full);
    const B = ep('10.0.0.2:8000', { numGpuBlocks: 100, blockSize: 4 });
    const s = setup({ kvWaitWeight });
    await s.hold(req(1), A.address);
    const d = await s.pl.detail(req(1), [A, B]);
    const [a, b] = d.endpoints;
    // A: 360 in use + 4 uncached + 256 expected output tokens > 400, B: 100 + 256 fits.
    assert.ok(a.kvWaitMs > 0 && b.kvWaitMs === 0, JSON.stringify(d.endpoints));
    assert.equal(a.admissionMs, 0, 'no backlog exists yet');
    assert.equal(a.queueMs, a.kvWaitMs, 'the wait for KV room is the queue wait');
    assert.equal(d.chosen, B.address, `kvWaitWeight ${kvWaitWeight}`);
    assert.ok(d.endpoints.every((e) => Math.abs(e.costMs - (e.ttftMs + e.copyMs + e.decodeCostMs + kvWaitWeight * e.kvWaitMs)) < 0.01));
    await s.close();
  }
});

test('a new group is homed on a pod with KV room for it, even where a pod predicted to wait for KV costs less', async () => {
  // A: KV 99 % in use (4,000 tokens): a short KV wait. B: a large KV and 30,000 tokens of
  // prefill queued (~3.3 s), more than A's wait: the cost alone would pick A.
  const A = ep('10.0.0.1:8000', { kvUsage: 0.99, numGpuBlocks: 1000, blockSize: 4 });
  const B = ep('10.0.0.2:8000', { numGpuBlocks: 1_000_000, blockSize: 4 });
  const s = setup();
  await s.route(req(50_000, 30_000), [A, B], B);
  const d = await s.pl.detail(req(1), [A, B]);
  const [a, b] = d.endpoints;
  assert.ok(a.kvWaitMs > 0 && b.kvWaitMs === 0 && a.costMs < b.costMs, JSON.stringify(d.endpoints));
  assert.equal(d.chosen, B.address);
  // Once B holds the group it is not new and the rule does not apply: the cost decides, and a
  // copy onto A (its 100 tokens) costs less than waiting behind B's queue.
  await s.hold(req(1), B.address);
  const later = await s.pl.detail(req(1), [A, B]);
  assert.equal(later.chosen, A.address);
  await s.close();
});

test('a copy is priced by the KV its target will hold (queued requests included), not only the scraped usage', async () => {
  // A holds the prefix; B and C both scrape an empty KV (4,000 tokens), but B has a request of
  // this router queued (200 uncached tokens, 256 expected output tokens): predicted fill 456 / 4,000.
  const kv = { numGpuBlocks: 1000, blockSize: 4 };
  const A = ep('10.0.0.1:8000', kv);
  const B = ep('10.0.0.2:8000', kv);
  const C = ep('10.0.0.3:8000', kv);
  const s = setup();
  await s.hold(req(1), A.address);
  await s.route(req(10_000, 200), [A, B, C], B);
  const d = await s.pl.detail(req(1), [A, B, C]);
  const [a, b, c] = d.endpoints;
  assert.equal(a.copyMs, 0);
  assert.ok(c.copyMs > 0, JSON.stringify(d.endpoints));
  // Congestion is the same for both (one request waiting over 3 pods); only the room differs.
  assert.ok(Math.abs(b.copyMs / c.copyMs - 1 / (1 - 456 / 4000)) < 1e-3, `${b.copyMs} / ${c.copyMs}`);
  await s.close();
});

test('a new group goes to a pod serving the fewest groups; among those the cost, which prices a slower pod, decides', async () => {
  const A = ep('10.0.0.1:8000');
  const B = ep('10.0.0.2:8000');
  const s = setup({ groupSlack: 0 });
  // A serves two groups (decoding), B one group with a queued request: by this instant's queues
  // A is the lighter pod, but B then serves fewer groups.
  for (const g of [1, 2]) {
    const r = req(g * 10_000);
    await s.route(r, [A, B], A);
    s.pl.responseFirstToken(r, A);
  }
  await s.route(req(50_000), [A, B], B);
  const fresh = await s.pl.detail(req(90_000), [A, B]);
  assert.ok(fresh.endpoints[0].costMs < fresh.endpoints[1].costMs, JSON.stringify(fresh.endpoints));
  assert.equal(fresh.chosen, B.address);
  // Once placed, the group is homed (cached on B): its next requests are priced, not balanced.
  assert.equal(await s.route(req(90_000), [A, B]), B.address);
  await s.close();

  // B learned to be 3x slower at prefill. Group counts are not weighted by speed (the cost
  // already charges it): with fewer groups B is still the only home; with as many as A, the
  // cost decides and the faster A takes the group.
  const slowPod = async (bGroups: number[]) => {
    const t = setup({ groupSlack: 0 });
    // One group of five prompts (a shared 300-token half, then 300 tokens of their own): the
    // first is cold (600 uncached tokens), the others follow it (300 each).
    for (let i = 0; i < 5; i++) {
      const prompt = [...Array.from({ length: 300 }, (_, j) => 200_000 + j), ...Array.from({ length: 300 }, (_, j) => 300_000 + i * 1000 + j)];
      const r = parseOpenAIRequest('/v1/completions', {}, JSON.stringify({ model: 'm', prompt, stream: true }));
      await t.route(r, [A, B], B);
      t.clock.advance(3 * ((i === 0 ? 600 : 300) * 0.1) + 11);
      t.pl.responseFirstToken(r, B);
    }
    // That group is older than a request lifetime: no longer counted. It drew four follow-ups,
    // so groups recur and new homes stay balanced.
    t.clock.advance(31_000);
    for (const g of [1, 2]) await t.route(req(g * 10_000), [A, B], A);
    for (const g of bGroups) await t.route(req(g), [A, B], B);
    assert.ok(t.pl.podState(B.address).kPrefill > 2, JSON.stringify(t.pl.podState(B.address)));
    const d = await t.pl.detail(req(90_000), [A, B]);
    await t.close();
    return d;
  };
  const fewer = await slowPod([50_000]);
  assert.equal(fewer.chosen, B.address, JSON.stringify(fewer.endpoints));
  const equal = await slowPod([50_000, 60_000]);
  assert.ok(equal.endpoints[0].costMs < equal.endpoints[1].costMs, JSON.stringify(equal.endpoints));
  assert.equal(equal.chosen, A.address, JSON.stringify(equal.endpoints));
});

test('after the pool changes (a pod joins or fails mid-stream), a prefill delays the decoding batch once (pod time), not once per sequence, so a group can leave its queued home', async () => {
  // A holds the prefix and has 1,000 tokens of prefill queued (TTFT ~121 ms). B has 20 sequences
  // decoding (scraped): a copy there costs its TTFT (32 ms) and copy price (14.4 ms), and stalls
  // each of those sequences for its 100-token prefill (10 ms): 200 ms per sequence, 10 ms once.
  // One output token expected, so the own-decode terms are small.
  const A = ep('10.0.0.1:8000');
  const B = ep('10.0.0.2:8000', { running: 20 });
  const s = setup({ decodeWeight: 1, defaultOutputTokens: 1 });
  await s.hold(req(1), A.address);
  await s.route(req(10_000, 1000), [A, B], A);
  const stable = await s.pl.detail(req(1), [A, B]);
  assert.equal(stable.chosen, A.address, JSON.stringify(stable.endpoints));
  assert.ok(stable.endpoints[1].decodeCostMs > 200, JSON.stringify(stable.endpoints));
  // A 5xx before the first token can be about the request alone: no change.
  const refused = req(30_000);
  await s.route(refused, [A, B], B);
  s.pl.responseComplete(refused, B, { status: 500 });
  assert.equal((await s.pl.detail(req(1), [A, B])).chosen, A.address);
  // B fails a request mid-stream (a restart aborts its in-flight ones): the pool changed.
  const aborted = req(20_000);
  await s.route(aborted, [A, B], B);
  s.pl.responseFirstToken(aborted, B);
  s.pl.responseComplete(aborted, B, { status: 500 });
  const after = await s.pl.detail(req(1), [A, B]);
  assert.ok(after.endpoints[1].decodeCostMs < stable.endpoints[1].decodeCostMs - 180, JSON.stringify(after.endpoints));
  assert.equal(after.chosen, B.address);
  // A request lifetime later (30 s before any completed) the pool is stable again.
  s.clock.advance(30_001);
  assert.equal((await s.pl.detail(req(1), [A, B])).chosen, A.address);
  // A pod that joins after the first decision is a change too.
  assert.notEqual((await s.pl.detail(req(1), [A, B, ep('10.0.0.3:8000', { running: 20 })])).chosen, A.address);
  await s.close();
});

test('a new group goes to the pod with the least committed prompt work, not the fewest groups: one long prompt outweighs two short ones', async () => {
  const A = ep('10.0.0.1:8000');
  const B = ep('10.0.0.2:8000');
  const s = setup({ groupSlack: 0 });
  // A serves one group of a 1,000-token prompt, B two groups of 100-token prompts, all decoding.
  const sent: [InferenceRequest, Endpoint][] = [[req(10_000, 1000), A], [req(20_000), B], [req(30_000), B]];
  for (const [r, pod] of sent) await s.route(r, [A, B], pod);
  for (const [r, pod] of sent) s.pl.responseFirstToken(r, pod);
  // Counted in groups, A (1 + 1) would be the only home; in prompt tokens B (300 against 1,100).
  const d = await s.pl.detail(req(90_000), [A, B]);
  assert.equal(d.chosen, B.address, JSON.stringify(d.endpoints));
  // Equal prompts weigh as counts do: B, serving two groups, is then not a home.
  const t = setup({ groupSlack: 0 });
  const same: [InferenceRequest, Endpoint][] = [[req(10_000), A], [req(20_000), B], [req(30_000), B]];
  for (const [r, pod] of same) await t.route(r, [A, B], pod);
  for (const [r, pod] of same) t.pl.responseFirstToken(r, pod);
  assert.equal((await t.pl.detail(req(90_000), [A, B])).chosen, A.address);
  await s.close();
  await t.close();
});

/**
 * Three prompts no later request shares go to `pod`, then a request lifetime passes with nothing:
 * at the next decision they expire without a follow-up (the mean follow-ups falls to 0.95^3).
 */
async function placeOneOffsThenWait(s: ReturnType<typeof setup>, pods: Endpoint[], pod: Endpoint): Promise<void> {
  for (const g of [1, 2, 3]) {
    const r = req(g * 1000);
    await s.route(r, pods, pod);
    s.pl.responseFirstToken(r, pod);
  }
  s.clock.advance(31_000);
}

test('new homes are balanced while groups recur; once expired groups drew no follow-ups, the cost alone places a new prefix', async () => {
  const A = ep('10.0.0.1:8000');
  const B = ep('10.0.0.2:8000');
  const decide = async (oneOffsFirst: boolean) => {
    const s = setup({ groupSlack: 0 });
    if (oneOffsFirst) await placeOneOffsThenWait(s, [A, B], A);
    // A serves one group with its request still queued (100 tokens of prefill ahead), B two
    // groups decoding: A carries less prompt work, B costs less now.
    await s.route(req(10_000), [A, B], A);
    for (const g of [2, 3]) {
      const r = req(g * 10_000);
      await s.route(r, [A, B], B);
      s.pl.responseFirstToken(r, B);
    }
    const d = await s.pl.detail(req(90_000), [A, B]);
    assert.ok(d.endpoints[1].costMs < d.endpoints[0].costMs, JSON.stringify(d.endpoints));
    await s.close();
    return d.chosen;
  };
  assert.equal(await decide(false), A.address);
  assert.equal(await decide(true), B.address);
});

test('a second copy is priced by how often prefixes are reused: less once groups expire without follow-ups', async () => {
  const A = ep('10.0.0.1:8000');
  const B = ep('10.0.0.2:8000');
  const copyOnB = async (oneOffsFirst: boolean) => {
    const s = setup();
    if (oneOffsFirst) {
      await placeOneOffsThenWait(s, [A, B], A);
      await s.pl.detail(req(5000), [A, B]); // a decision: the three expire
    }
    await s.hold(req(50_000, 400), A.address);
    const d = await s.pl.detail(req(50_000, 400), [A, B]);
    await s.close();
    return d.endpoints[1].copyMs;
  };
  const recurring = await copyOnB(false);
  const oneOffs = await copyOnB(true);
  // 396 extra tokens at 0.1 ms, charged once more (localityWeight 1, no queue, KV room unknown).
  assert.ok(Math.abs(recurring - 39.6) < 0.01, String(recurring));
  // Three groups expired with 0 follow-ups: the mean (EWMA, weight 0.05, from 1) is 0.95^3 (copyMs is rounded to us).
  assert.ok(Math.abs(oneOffs - recurring * 0.95 ** 3) < 0.002, `${oneOffs} / ${recurring}`);
});
