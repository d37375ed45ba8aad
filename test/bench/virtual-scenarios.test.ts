// Scenarios on the virtual clock: restarts, joins and KV sizing applied at their model times
// through the same applyScenarioEvent as the real clock, and the served-request oracle bounding
// the client's hit rate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BenchOptions } from '../../src/bench/runner.js';
import { parseScenario } from '../../src/bench/scenarios.js';
import { runVirtualBench } from '../../src/bench/virtual/runner.js';
import { virtualOptions } from './virtual-options.js';
import { podAddress } from '../../src/bench/virtual/cluster.js';
import type { BenchResults } from '../../src/bench/results.js';
import type { RequestResult } from '../../src/bench/client.js';

const options = (over: Partial<BenchOptions> = {}): BenchOptions => virtualOptions(['precise'], over);

function assertClientWithinOracle(r: BenchResults): void {
  for (const s of r.strategies) {
    assert.equal(s.error, undefined, `${s.name}: ${s.error}`);
    assert.ok(s.total.clientHitRate <= s.total.oracleHitRate + 1e-12, `${s.name}: client ${s.total.clientHitRate} > oracle ${s.total.oracleHitRate}`);
    for (const st of s.stages) {
      if (Number.isNaN(st.clientHitRate)) continue;
      assert.ok(st.clientHitRate <= st.oracleHitRate + 1e-12, `${s.name} stage: client ${st.clientHitRate} > oracle ${st.oracleHitRate}`);
    }
  }
}

test('virtual scenarios: a restart at T empties the pod\'s cache at T on the model clock; client hits <= served oracle', async () => {
  const base = await runVirtualBench(options({ strategies: ['precise', 'random'] }));
  assertClientWithinOracle(base);
  assert.equal(base.strategies[0].scenarioEvents, undefined);
  assert.ok(base.meta.timeModel && base.meta.timeModel.profile === 'h100-tp2-qwen3-32b', 'meta.timeModel is reported');

  let reqs: readonly RequestResult[] = [];
  const scenario = parseScenario('restart@4:pod=0', 3);
  const r = await runVirtualBench(options({ strategies: ['precise', 'random'], scenario }), {
    onRequests: (s, rs) => void (s === 'precise' && (reqs = rs)),
  });
  assertClientWithinOracle(r);
  assert.deepEqual(r.meta.scenario?.names, ['restart@4:pod=0']);
  for (const s of r.strategies) {
    assert.deepEqual(s.scenarioEvents, [{ kind: 'restart', pod: 0, at: 4, doneAt: 4 }], s.name);
  }
  // Requests pod 0 was serving at T end aborted, and the first request pod 0 serves after T finds
  // nothing cached (the router still believes pod 0 holds its prefixes).
  const pod0 = podAddress(0);
  const toPod0 = reqs.filter((q) => q.endpoint === pod0);
  assert.ok(toPod0.some((q) => !q.ok && q.sentMs < 4000), 'a request in flight on pod 0 at the restart failed');
  const firstAfter = toPod0.filter((q) => q.ok && q.sentMs > 4001).sort((a, b) => a.sentMs - b.sentMs)[0];
  assert.ok(firstAfter, 'pod 0 served requests after its restart');
  assert.equal(firstAfter.cachedTokens, 0, 'the restarted pod started with an empty cache');
  // The restart costs hits against the same run without it.
  const hit = (x: BenchResults) => x.strategies[0].total.clientHitRate;
  assert.ok(hit(r) < hit(base), `precise with restart ${hit(r)} vs without ${hit(base)}`);
});

test('virtual scenarios: a late joiner receives nothing before its join; hetero and pressure reach the pods', async () => {
  let reqs: readonly RequestResult[] = [];
  const scenario = parseScenario('join@4:pod=2,hetero:x=3,pressure:f=2', 3);
  const r = await runVirtualBench(options({ strategies: ['load-only'], scenario }), { onRequests: (_s, rs) => void (reqs = rs) });
  assertClientWithinOracle(r);
  const pod2 = podAddress(2);
  const sends = reqs.filter((q) => q.endpoint === pod2).map((q) => q.sentMs);
  assert.ok(sends.length > 0, 'the joiner was used after joining');
  assert.ok(Math.min(...sends) >= 4000, `pod 2 got a request at ${Math.min(...sends)} ms, before its join`);
  assert.deepEqual(r.meta.timeModel?.podTimingMultipliers, [1, 3, 1]);
  assert.notEqual(r.meta.sim.numGpuBlocks, 96, 'pressure sized the pods\' KV from the workload');
});
