// The virtual runner end to end: the real decision path against simulated engines on one
// discrete-event clock. Same seed -> same decisions and results; inference-perf semantics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plan, runBench, type BenchOptions } from '../../src/bench/runner.js';
import { defaultHarness } from '../../src/bench/hosts.js';
import { resolveBench } from '../../src/bench/options.js';
import { runVirtualBench } from '../../src/bench/virtual/runner.js';
import { virtualOptions } from './virtual-options.js';
import type { BenchResults } from '../../src/bench/results.js';
import type { RequestResult } from '../../src/bench/client.js';

const options = (over: Partial<BenchOptions> = {}): BenchOptions => virtualOptions(['precise', 'approximate', 'sglang-cache-aware', 'random'], over);

/** results.json without what depends on the wall clock or the machine. */
function modelOnly(r: BenchResults): unknown {
  return JSON.parse(
    JSON.stringify(r, (k, v: unknown) => (['startedAt', 'wallSeconds', 'speedup', 'usPerRequest', 'heapUsedMb', 'breakdownUsPerRequest', 'host'].includes(k) ? undefined : v)),
  );
}

test('virtual bench: the same seed gives the same decisions and results.json (wall-time fields aside)', async () => {
  const a = await runBench(defaultHarness(), options());
  const b = await runBench(defaultHarness(), options());
  for (const s of a.strategies) {
    assert.equal(s.error, undefined, `${s.name}: ${s.error}`);
    assert.equal(s.total.errors + s.total.shed, 0, `${s.name}: ${s.sampleErrors.join('; ')}`);
    assert.ok(s.total.ok > 20, `${s.name} served ${s.total.ok}`);
    assert.ok(s.virtual && s.virtual.modelSeconds >= 6, 'model time covers the stages');
  }
  assert.equal(a.meta.clock, 'virtual');
  assert.deepEqual(modelOnly(a), modelOnly(b));
  // Routed-per-pod counts are the decisions: they must differ between strategies (the test can fail).
  const routed = a.strategies.map((s) => JSON.stringify(s.total.routedPerPod));
  assert.ok(new Set(routed).size > 1, `every strategy routed the same way: ${routed.join(' ')}`);
  // A different seed changes the picks of the random strategy.
  const c = await runVirtualBench(options({ strategies: ['random'], seed: 8 }));
  assert.notDeepEqual(c.strategies[0].total.routedPerPod, a.strategies.find((s) => s.name === 'random')?.total.routedPerPod);
});

test('virtual bench: KV events reach the precise index (cache-aware beats random on hits), hooks see every response', async () => {
  const r = await runVirtualBench(options({ strategies: ['precise', 'random'] }), { eventDelayMs: 5, scrapeIntervalMs: 50, routerOverheadMs: 1, profile: true, heapSampleSec: 1 });
  const [precise, random] = r.strategies;
  assert.ok(precise.total.hitRate > random.total.hitRate + 0.05, `precise ${precise.total.hitRate} vs random ${random.total.hitRate}`);
  // Client-observed cached tokens (engine cachedTokens) equal the pods' hit counters without preemption.
  for (const s of r.strategies) {
    if (s.total.perPod.some((p) => p.preemptions > 0)) continue;
    assert.ok(Math.abs(s.total.clientHitRate - s.total.hitRate) < 1e-9, `${s.name}: client ${s.total.clientHitRate} pods ${s.total.hitRate}`);
  }
  const v = precise.virtual;
  assert.ok(v && v.eventBatches > 0 && v.eventBytes > 0, 'event batches were encoded');
  assert.ok(v.breakdownUsPerRequest && v.breakdownUsPerRequest['index (apply)'] > 0, 'the index applied events');
  // Memory samples carry the cached state next to the heap: 3 pods x 95 usable blocks; the
  // caches fill as the run goes on, without exceeding them.
  const mem = v.memSamples ?? [];
  assert.ok(mem.length >= 3, `${mem.length} memory samples`);
  for (const x of mem) assert.ok(x.cacheCapacity === 3 * 95 && x.cachedBlocks <= x.cacheCapacity, JSON.stringify(x));
  // The memory figure counts typed arrays' backing stores (external) on top of the JS heap.
  for (const x of mem) assert.ok(x.externalMb > 0 && x.heapMb > x.externalMb, JSON.stringify(x));
  const cached = mem.map((x) => x.cachedBlocks);
  assert.ok(cached[0] > 0 && Math.max(...cached) > cached[0] && Math.max(...cached) >= 0.5 * 285, JSON.stringify(cached));
  // Router overhead is part of TTFT: raising it by 100 ms raises every TTFT by at least that.
  const slow = await runVirtualBench(options({ strategies: ['random'] }), { routerOverheadMs: 101 });
  assert.ok(slow.strategies[0].total.ttft.p50 >= random.total.ttft.p50 + 0.1 - 1e-9, `${slow.strategies[0].total.ttft.p50} vs ${random.total.ttft.p50}`);
});

test('virtual bench: --drain-stages starts a stage once the previous one finished; --max-inflight caps the client', async () => {
  const load = { type: 'poisson' as const, stages: [{ rate: 20, duration: 1 }, { rate: 20, duration: 1 }] };
  let reqs: readonly RequestResult[] = [];
  const keep = { onRequests: (_s: string, r: readonly RequestResult[]) => void (reqs = r) };
  await runVirtualBench(options({ strategies: ['random'], drainStages: true, load }), keep);
  const end = (r: RequestResult) => r.sentMs + (r.e2eMs ?? NaN);
  const stage0End = Math.max(...reqs.filter((r) => r.stage === 0).map(end));
  const stage1Start = Math.min(...reqs.filter((r) => r.stage === 1).map((r) => r.sentMs));
  assert.ok(reqs.every((r) => r.ok));
  assert.ok(stage1Start >= stage0End, `stage 2 sent at ${stage1Start} ms before stage 1 ended at ${stage0End} ms`);
  await runVirtualBench(options({ strategies: ['random'], load }), keep);
  const overlap = Math.min(...reqs.filter((r) => r.stage === 1).map((r) => r.sentMs)) < Math.max(...reqs.filter((r) => r.stage === 0).map(end));
  assert.ok(overlap, 'without draining the stages overlap (else the assertion above proves nothing)');

  await runVirtualBench(options({ strategies: ['random'], maxInflight: 2, load }), keep);
  assert.ok(reqs.every((r) => r.ok));
  for (const r of reqs) {
    const inflight = reqs.filter((x) => x.sentMs <= r.sentMs && end(x) > r.sentMs).length;
    assert.ok(inflight <= 2, `${inflight} in flight at ${r.sentMs} ms`);
  }
  const queued = reqs.filter((r) => r.sentMs > r.scheduledMs + 1);
  assert.ok(queued.length > 0, 'the cap delayed some sends');
  // TTFT runs from the actual send, so queueing in the client does not count.
  for (const r of queued) assert.ok((r.ttftMs ?? 0) < end(r) - r.sentMs + 1e-9 && (r.ttftMs ?? 0) < 1000);
});

test('inference-perf options: cyclic order, per-stage durations, concurrency cap parse', () => {
  const { options: o } = resolveBench({ preset: 'smoke', order: 'cyclic', qps: '1,2,3', stageDurations: '4,5,6', maxInflight: 3, drainStages: true, clock: 'virtual' });
  assert.deepEqual(o.load.stages.map((s) => s.duration), [4, 5, 6]);
  assert.equal(o.maxInflight, 3);
  assert.equal(o.drainStages, true);
  assert.equal(o.clock, 'virtual');
  const reqs = o.workload.take(24 * 2);
  const first = new Set(reqs.slice(0, 24).map((r) => r.prompt));
  assert.equal(first.size, 24, 'the first cycle serves every prompt of the 6 x 4 pool once');
  assert.deepEqual(reqs.slice(24).map((r) => r.prompt), reqs.slice(0, 24).map((r) => r.prompt), 'then the same order again');
  assert.throws(() => resolveBench({ preset: 'smoke', qps: '1,2', stageDurations: '1,2,3' }), /3 durations for 2 stages/);
  assert.throws(() => resolveBench({ preset: 'smoke', order: 'sorted' }), /--order/);
  assert.throws(() => resolveBench({ preset: 'smoke', clock: 'fast' }), /--clock/);
});

test('virtual bench: --stage-interval waits between drained stages; --request-timeout abandons slow requests and frees their KV', async () => {
  const load = { type: 'poisson' as const, stages: [{ rate: 20, duration: 1 }, { rate: 20, duration: 1 }] };
  let reqs: readonly RequestResult[] = [];
  const keep = { onRequests: (_s: string, r: readonly RequestResult[]) => void (reqs = r) };
  const end = (r: RequestResult) => r.sentMs + (r.e2eMs ?? NaN);
  await runVirtualBench(options({ strategies: ['random'], drainStages: true, stageIntervalSec: 2.5, load }), keep);
  const stage0End = Math.max(...reqs.filter((r) => r.stage === 0).map(end));
  const stage1Start = Math.min(...reqs.filter((r) => r.stage === 1).map((r) => r.scheduledMs));
  assert.ok(reqs.every((r) => r.ok));
  assert.ok(stage1Start >= stage0End + 2500 - 1e-6, `stage 2 started ${stage1Start - stage0End} ms after stage 1 drained`);

  // The timeout sits at the median latency of a run without one, so some requests beat it and some do not.
  await runVirtualBench(options({ strategies: ['random'], drainStages: true, load }), keep);
  const e2es = reqs.map((x) => x.e2eMs ?? NaN).sort((a, b) => a - b);
  const limitMs = Math.round(e2es[Math.floor(e2es.length / 2)]);
  assert.ok(e2es[0] < limitMs && e2es[e2es.length - 1] > limitMs, `latencies ${e2es[0]}-${e2es[e2es.length - 1]} ms`);
  const r = await runVirtualBench(options({ strategies: ['random'], drainStages: true, requestTimeoutSec: limitMs / 1000, load }), keep);
  const timedOut = reqs.filter((x) => x.error?.startsWith('client timeout'));
  assert.ok(timedOut.length > 0, 'some requests timed out');
  assert.ok(timedOut.every((x) => !x.ok), 'a timed-out request is not a success');
  assert.equal(reqs.filter((x) => x.ok).length + timedOut.length, reqs.length, 'every request either finished in time or timed out');
  for (const x of reqs.filter((y) => y.ok)) assert.ok((x.e2eMs ?? Infinity) <= limitMs + 1e-6, `${x.e2eMs} ms finished after the timeout`);
  const s = r.strategies[0];
  assert.equal(s.total.errors, timedOut.filter((x) => !r.meta.load.stages[x.stage].warmup).length);
  assert.equal(s.total.ttft.count, s.total.ok, 'TTFT counts successes only');
  assert.equal(r.meta.client?.requestTimeoutSec, limitMs / 1000);
  // The engines aborted them (freeing their slots): the pods completed fewer generations than were sent.
  const generated = s.stages.reduce((a, st) => a + st.perPod.reduce((b, p) => b + p.generationTokens, 0), 0);
  assert.ok(generated < reqs.length * 24, `${generated} tokens generated for ${reqs.length} requests of 24`);
});

test('stage-cyclic order: prompts restart from the first one at every stage (inference-perf numbers requests per stage)', () => {
  const { options: o } = resolveBench({ preset: 'smoke', order: 'stage-cyclic', qps: '10,10', stageDurations: '3,3', clock: 'virtual' });
  // plan() (both runners) numbers each stage's requests from 0.
  const { planned } = plan(o.workload, o.load, o.seed);
  const firstOf = (st: number) => planned.find((p) => p.stage === st)?.req.prompt;
  assert.ok(firstOf(1) !== undefined && firstOf(1) === firstOf(0), 'stage 2 opens with stage 1\'s first prompt');
  const positions = [0, 1, 2, 0, 1, 2, 3];
  const reqs = o.workload.take(positions.length, positions);
  assert.equal(reqs[3].prompt, reqs[0].prompt);
  assert.equal(reqs[5].prompt, reqs[2].prompt);
  assert.notEqual(reqs[6].prompt, reqs[0].prompt);
  const cyclic = resolveBench({ preset: 'smoke', order: 'cyclic', clock: 'virtual' }).options.workload.take(positions.length, positions);
  assert.notEqual(cyclic[3].prompt, cyclic[0].prompt, 'plain cyclic ignores stage positions');
  const llmd = resolveBench({ preset: 'llm-d-73' }).options;
  assert.equal(llmd.workload.params.order, 'stage-cyclic');
  assert.equal(llmd.drainStages, true);
  assert.equal(llmd.stageIntervalSec, 1);
  assert.equal(llmd.requestTimeoutSec, 300);
  assert.throws(() => resolveBench({ preset: 'smoke', requestTimeout: 5 }), /--clock virtual/);
  const real = resolveBench({ preset: 'llm-d-73', clock: 'real' }).options;
  assert.equal(real.requestTimeoutSec, undefined, "the real clock drops the preset's virtual-only client times");
});

test('virtual bench: pickSeedOffset redraws the pickers without touching the schedule', async () => {
  const load = { type: 'poisson' as const, stages: [{ rate: 20, duration: 1 }] };
  const a = await runVirtualBench(options({ strategies: ['random'], load }), { pickSeedOffset: 1 });
  const b = await runVirtualBench(options({ strategies: ['random'], load }), { pickSeedOffset: 1 });
  const c = await runVirtualBench(options({ strategies: ['random'], load }), { pickSeedOffset: 2 });
  assert.deepEqual(a.strategies[0].total.routedPerPod, b.strategies[0].total.routedPerPod);
  assert.notDeepEqual(a.strategies[0].total.routedPerPod, c.strategies[0].total.routedPerPod);
  assert.equal(a.meta.requests, c.meta.requests, 'the same schedule');
});

test('virtual bench: engineTimerLagMs (cross-validation) makes every engine step late, deterministically; 0 is the default model', async () => {
  const o = () => virtualOptions(['round-robin']);
  const ttfts = (r: readonly RequestResult[]) => r.filter((q) => q.ok).map((q) => q.ttftMs as number);
  let base: readonly RequestResult[] = [];
  let zero: readonly RequestResult[] = [];
  let lag1: readonly RequestResult[] = [];
  let lag2: readonly RequestResult[] = [];
  await runVirtualBench(o(), { onRequests: (_s, rs) => void (base = rs) });
  await runVirtualBench(o(), { engineTimerLagMs: 0, onRequests: (_s, rs) => void (zero = rs) });
  await runVirtualBench(o(), { engineTimerLagMs: 2, onRequests: (_s, rs) => void (lag1 = rs) });
  await runVirtualBench(o(), { engineTimerLagMs: 2, onRequests: (_s, rs) => void (lag2 = rs) });
  assert.deepEqual(ttfts(zero), ttfts(base), 'a zero lag is the default model');
  assert.deepEqual(ttfts(lag1), ttfts(lag2), 'deterministic with a lag');
  // Round-robin's placements do not depend on timing; a late step moves step boundaries (a
  // request may join an earlier batch), so single requests can gain, but every first token waits
  // for at least one late timer: the mean rises by more than half the lag.
  assert.equal(lag1.length, base.length);
  assert.deepEqual(lag1.map((q) => q.endpoint), base.map((q) => q.endpoint));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(mean(ttfts(lag1)) > mean(ttfts(base)) + 1, `mean TTFT ${mean(ttfts(lag1))} with a 2 ms lag vs ${mean(ttfts(base))}`);
});
