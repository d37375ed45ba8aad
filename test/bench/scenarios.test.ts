// Scenarios: parsed as data any runner can apply; the real-clock runner restarts, adds, removes
// and resets pods at their model times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventTime, parseScenario, scenarioSpec } from '../../src/bench/scenarios.js';
import { podTiming } from '../../src/bench/sim-options.js';
import { PROFILES } from '../../src/sim/timing.js';
import { runBench } from '../../src/bench/runner.js';
import { defaultHarness } from '../../src/bench/hosts.js';
import { Progress } from '../../src/bench/progress.js';
import { sharedPrefixWorkload } from '../../src/bench/workloads/shared-prefix.js';

test('scenarios parse into events, multipliers and KV sizing', () => {
  const sc = parseScenario('restart@30:pod=1,join,leave@50:pod=2,reset,hetero:x=1.5,pressure:f=2', 4);
  assert.deepEqual(sc.events.map((e) => [e.kind, e.pod, e.at]), [['restart', 1, 30], ['join', 3, undefined], ['leave', 2, 50], ['reset', 'all', undefined]]);
  assert.deepEqual(sc.lateJoiners, [3]);
  assert.deepEqual(sc.podTimingMultipliers, [1, 1.5, 1, 1.5]);
  assert.equal(sc.residentFraction, 2);
  // Default time: 40 % into the measured stages, after the warm-up.
  assert.equal(eventTime(sc.events[1], [{ rate: 1, duration: 50, warmup: true }, { rate: 1, duration: 100 }]), 90);
  // Pressure: 4 pods x 64-token blocks so 1.6M distinct tokens are 2x the cluster's KV.
  const spec = scenarioSpec({ pods: 4, blockSize: 64, numGpuBlocks: 4802, maxModelLen: 40_960 }, sc, 1_600_000);
  assert.equal(spec.numGpuBlocks, Math.ceil(1_600_000 / (2 * 4 * 64)));
  // ...but never below one max-length sequence.
  assert.equal(scenarioSpec({ pods: 4, blockSize: 64, numGpuBlocks: 4802, maxModelLen: 40_960 }, sc, 1000).numGpuBlocks, 641);
  const base = PROFILES['h100-tp2-qwen3-32b'].timing;
  assert.equal(podTiming({ podTimingMultipliers: [1, 1.5] }, 1)?.stepOverheadMs, base.stepOverheadMs * 1.5);
  assert.equal(podTiming({ podTimingMultipliers: [1, 1.5] }, 0), undefined);
  assert.equal(podTiming({ timing: { stepOverheadMs: 5 }, podTimingMultipliers: [2] }, 0)?.stepOverheadMs, 10);
  assert.throws(() => parseScenario('explode', 2), /unknown scenario "explode"/);
  assert.throws(() => parseScenario('restart:pod=9', 2), /pod must be 0..1/);
  assert.throws(() => parseScenario('join', 1), /at least 2 pods/);
  assert.throws(() => parseScenario('hetero:y=2', 2), /unknown parameter "y"/);
  // every=3: a third of the pods (1, 4, 7 of 8) slow.
  assert.deepEqual(parseScenario('hetero:x=2:every=3', 8).podTimingMultipliers, [1, 2, 1, 1, 2, 1, 1, 2]);
  assert.throws(() => parseScenario('hetero:every=1', 8), /every must be a number >= 2/);
  assert.throws(() => parseScenario('hetero:every=2.5', 8), /every must be an integer >= 2/);
});

const quiet = new Progress({ write: () => true }, true);
const sim = { pods: 3, model: 'Qwen/Qwen3-0.6B', blockSize: 16, numGpuBlocks: 512, maxModelLen: 4096, profile: 'h100-qwen3-0.6b' };
const workload = sharedPrefixWorkload({ numGroups: 3, promptsPerGroup: 2, systemPromptLen: 128, questionLen: 16, outputLen: 4, seed: 3 });
// Events at 1.5 s fall inside stage 1, so stages 0 and 2 are clear of them even when this
// shared event loop runs timers late.
const load = { type: 'constant' as const, stages: [{ rate: 12, duration: 1 }, { rate: 12, duration: 1 }, { rate: 12, duration: 1 }] };

test('real clock: a pod joins the pool at its model time', async () => {
  // The join sits two stages after stage 0 ends, so a stage-0 request would have to be sent
  // 1.5 s late (a loaded machine's timer lag) to meet the joined pod.
  const joinLoad = { type: 'constant' as const, stages: [...load.stages, { rate: 12, duration: 1 }] };
  const r = await runBench(defaultHarness({ inProcessPods: true }), {
    workload, load: joinLoad, strategies: ['round-robin'], sim, timeScale: 1, seed: 3, drainTimeoutSec: 20, progress: quiet,
    scenario: parseScenario('join@2.5:pod=2', 3),
  });
  const s = r.strategies[0];
  assert.equal(s.error, undefined, s.error);
  assert.equal(s.total.errors, 0, s.sampleErrors.join('; '));
  assert.ok(s.scenarioEvents?.[0].doneAt !== undefined && s.scenarioEvents[0].doneAt >= 2.5);
  // Round robin: pod 2 gets nothing before it joins, a share after.
  assert.equal(s.stages[0].routedPerPod?.[2], 0, `routed per stage ${JSON.stringify(s.stages.map((x) => x.routedPerPod))}, join ${JSON.stringify(s.scenarioEvents)}`);
  assert.ok((s.stages[3].routedPerPod?.[2] ?? 0) > 0);
  assert.deepEqual(r.meta.scenario?.names, ['join@2.5:pod=2']);
});

test('real clock: a pod restarts with an empty cache, another resets its cache', async () => {
  const r = await runBench(defaultHarness({ inProcessPods: true }), {
    workload, load, strategies: ['precise'], sim, timeScale: 1, seed: 3, drainTimeoutSec: 20, progress: quiet,
    scenario: parseScenario('restart@1:pod=0,reset@1:pod=1', 3),
  });
  const s = r.strategies[0];
  assert.equal(s.error, undefined, s.error);
  assert.deepEqual(s.scenarioEvents?.map((e) => [e.kind, e.pod, e.error]), [['restart', 0, undefined], ['reset', 1, undefined]]);
  assert.ok(s.scenarioEvents?.every((e) => e.doneAt !== undefined && e.doneAt >= e.at));
  // Counters reset by the restart are counted from zero, not as a negative delta.
  for (const st of s.stages) for (const p of st.perPod) assert.ok(p.prefixQueries >= 0 && p.requests >= 0);
  assert.ok(s.total.ok > 0);
});

test('real clock: a pod leaves the pool and gets no more requests', async () => {
  const r = await runBench(defaultHarness({ inProcessPods: true }), {
    workload, load, strategies: ['round-robin'], sim, timeScale: 1, seed: 3, drainTimeoutSec: 20, progress: quiet,
    scenario: parseScenario('leave@1.5:pod=1', 3),
  });
  const s = r.strategies[0];
  assert.equal(s.error, undefined, s.error);
  assert.equal(s.scenarioEvents?.[0].error, undefined);
  assert.ok((s.stages[0].routedPerPod?.[1] ?? 0) > 0);
  assert.equal(s.stages[2].routedPerPod?.[1], 0);
});
