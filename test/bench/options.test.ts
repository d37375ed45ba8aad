import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveBench } from '../../src/bench/options.js';
import { VIRTUAL_CLOCK_READY } from '../../src/bench/presets.js';
import { plan } from '../../src/bench/runner.js';
import { STRATEGIES, strategyYaml } from '../../src/bench/strategies.js';
import { parseEndpointPickerConfig } from '../../src/scheduler/config.js';

test('presets: llm-d-73 has the llm-d shape; flags override', () => {
  const { options } = resolveBench({ preset: 'llm-d-73', clock: 'real' });
  assert.equal(options.sim.pods, 8);
  assert.equal(options.sim.blockSize, 64);
  assert.equal(options.sim.numGpuBlocks, 4802);
  assert.deepEqual(options.workload.params, { numGroups: 150, promptsPerGroup: 5, systemPromptLen: 6000, questionLen: 1200, outputLen: 1000, multiTurn: false, order: 'stage-cyclic', seed: 42 });
  assert.equal(options.load.type, 'poisson');
  assert.equal(options.load.stages[0].warmup, true);
  // llm-d's exact ladder: warm-up 15 QPS x 50 s, then 16 stages (QPS x s) as in its README.
  assert.deepEqual(options.load.stages[0], { rate: 15, duration: 50, warmup: true });
  assert.deepEqual(
    options.load.stages.slice(1).map((s) => `${s.rate}x${s.duration}`),
    ['3x20', '10x20', '15x20', '20x38', '22x34', '25x30', '30x25', '35x21', '40x38', '43x36', '46x33', '49x30', '52x29', '55x27', '57x26', '60x25'],
  );
  assert.deepEqual(resolveBench({ preset: 'llm-d-73-short' }).options.load.stages.slice(1).map((s) => s.rate), [3, 10, 20, 30, 40, 50, 60]);
  // The full ladder runs on the virtual clock; without that runner it is not started in scaled
  // real time by accident.
  if (VIRTUAL_CLOCK_READY) assert.equal(resolveBench({ preset: 'llm-d-73' }).options.clock, 'virtual');
  else assert.throws(() => resolveBench({ preset: 'llm-d-73' }), /virtual clock.*llm-d-73-short/);
  // Resident set = 73 % of the cluster's KV, as in llm-d's run.
  const resident = 150 * 6000 + 750 * 1200;
  const cluster = 8 * 4802 * 64;
  assert.ok(Math.abs(resident / cluster - 0.73) < 0.01);
  const o = resolveBench({ preset: 'smoke', qps: '1,2', pods: 3, strategies: 'random' }).options;
  assert.deepEqual(o.load.stages.map((s) => s.rate), [1, 2]);
  assert.equal(o.sim.pods, 3);
  assert.deepEqual(o.strategies, ['random']);
});

test('options: bad input gives a clear error', () => {
  assert.throws(() => resolveBench({ workload: 'nope' }), /--workload must be/);
  assert.throws(() => resolveBench({ strategies: 'precise,bogus' }), /unknown strategy "bogus"/);
  assert.throws(() => resolveBench({ qps: '3,x' }), /--qps/);
  assert.throws(() => resolveBench({ workload: 'trace' }), /--trace/);
  assert.throws(() => resolveBench({ preset: 'huge' }), /unknown preset/);
  assert.throws(() => resolveBench({ pods: 0 }), /--pods must be a positive integer/);
});

test('plan: same seed, same requests at the same times', () => {
  const a = resolveBench({ preset: 'smoke', seed: 9 }).options;
  const b = resolveBench({ preset: 'smoke', seed: 9 }).options;
  const pa = plan(a.workload, a.load, a.seed).planned;
  const pb = plan(b.workload, b.load, b.seed).planned;
  assert.ok(pa.length > 10);
  assert.deepEqual(pa.map((p) => [p.t, p.stage, p.req.prompt.length, p.req.prompt[0]]), pb.map((p) => [p.t, p.stage, p.req.prompt.length, p.req.prompt[0]]));
  const c = resolveBench({ preset: 'smoke', seed: 10 }).options;
  assert.notDeepEqual(plan(c.workload, c.load, c.seed).planned.map((p) => p.t), pa.map((p) => p.t));
});

test('strategies: every config parses as an EndpointPickerConfig', () => {
  for (const s of STRATEGIES) {
    const yaml = strategyYaml(s, { model: 'm', blockSize: 64, zmqEndpoint: 'tcp://127.0.0.1:5557', timeScale: 3 });
    const cfg = parseEndpointPickerConfig(yaml);
    assert.ok(cfg.schedulingProfiles.length === 1, s.name);
    if (s.usesKvEvents) assert.match(yaml, /speculativeTTL: 6s/);
  }
});
