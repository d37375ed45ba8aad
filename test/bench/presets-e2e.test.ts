// Every preset, in a quick variant, through real pods and the router: requests are served whole
// (no 400 over the context limit), and what clients saw cached never exceeds the oracle over the
// requests that were served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveBench } from '../../src/bench/options.js';
import { PRESETS } from '../../src/bench/presets.js';
import { runBench } from '../../src/bench/runner.js';
import { defaultHarness } from '../../src/bench/hosts.js';
import { Progress } from '../../src/bench/progress.js';

const quiet = new Progress({ write: () => true }, true);

// Trace records per quick run: the synthetic trace's first shared prefix is request 49.
const traceRequests = (preset: string) => (preset === 'mooncake-synthetic' ? 60 : 12);

function quick(preset: string) {
  const p = PRESETS[preset];
  const isTrace = p.workload === 'trace';
  const { options } = resolveBench({
    preset, clock: 'real', strategies: 'precise-3-2-2', timeScale: 1, pods: Math.min(p.pods, 3),
    // Traces: the first records (conversation #11 is an 87k-token prompt), replayed 100x faster.
    ...(isTrace ? { maxRequests: traceRequests(preset), maxOutputLen: 4, traceSpeed: 100 } : { groups: 3, promptsPerGroup: 2, outputLen: 4 }),
  });
  if (!isTrace) options.load = { type: 'constant', stages: [{ rate: 8, duration: 1 }, { rate: 8, duration: 1 }] };
  // Cheap steps: this test is about accounting, not timing.
  options.sim.timing = { stepOverheadMs: 1, prefillPerTokenMs: 0.0005, prefillAttnPerPairMs: 0, decodePerSeqMs: 0.01, kvReadPerTokenMs: 0 };
  options.drainTimeoutSec = 60;
  options.progress = quiet;
  return options;
}

for (const preset of Object.keys(PRESETS)) {
  test(`preset ${preset} (quick variant): served whole, client hit rate <= oracle over served requests`, async () => {
    const options = quick(preset);
    const r = await runBench(defaultHarness({ inProcessPods: true }), options);
    const s = r.strategies[0];
    assert.equal(s.error, undefined, s.error);
    assert.equal(s.total.ok, r.meta.requests);
    assert.ok(s.total.oracleHitRate > 0 && s.total.clientHitRate > 0, `client ${s.total.clientHitRate}, oracle ${s.total.oracleHitRate}`);
    assert.equal(s.total.errors + s.total.shed, 0, s.sampleErrors.join('; '));
    for (const st of [s.total, ...s.stages]) {
      if (st.ok === 0) continue;
      assert.ok(st.clientHitRate <= st.oracleHitRate + 1e-9, `stage ${st.index}: client ${st.clientHitRate} > oracle ${st.oracleHitRate}`);
    }
    if (preset.startsWith('mooncake')) {
      // Prompts above Qwen3-32B's native 40,960 tokens were among those served, not refused.
      assert.ok(options.workload.take(traceRequests(preset)).some((q) => q.prompt.length > 40_960));
    }
  });
}
