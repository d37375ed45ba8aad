// Benchmark fidelity: strategies named by what they reproduce, the documented time model,
// presets (Mooncake traces from the repository copy), the oracle over served requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pluginContext } from '../helpers/plugin-context.js';
import { registerBenchPlugins } from '../../src/bench/peers/index.js';
import { STRATEGIES, strategyByName, strategyYaml } from '../../src/bench/strategies.js';
import { resolveBench } from '../../src/bench/options.js';
import { servedOracle } from '../../src/bench/oracle.js';
import { simPodOptions } from '../../src/bench/sim-options.js';
import { buildSchedulerConfig, parseEndpointPickerConfig } from '../../src/scheduler/config.js';
import { ApproxPrefixCacheScorer } from '../../src/scheduler/plugins/approx-prefix.js';
import type { Endpoint, InferenceRequest, PluginContext } from '../../src/scheduler/types.js';
import { Engine } from '../../src/sim/engine.js';
import { VirtualClock } from '../../src/sim/clock.js';
import { BlockHasher } from '../../src/sim/hashing.js';
import { PROFILES, QWEN3_32B_TP2_H100, calibrationCheck, deriveTiming } from '../../src/sim/timing.js';

const ctx = (): PluginContext => {
  registerBenchPlugins();
  return pluginContext({ kvEvents: true });
};
const sctx = { model: 'm', blockSize: 64, zmqEndpoint: 'tcp://127.0.0.1:5557', timeScale: 1 };

test('strategies: every config loads; the named baselines carry their weights, parameters and source', async () => {
  for (const s of STRATEGIES) {
    assert.ok(s.source.repository && s.source.path && /^\d{4}/.test(s.source.date), `${s.name} names its source`);
    const cfg = buildSchedulerConfig(parseEndpointPickerConfig(strategyYaml(s, sctx)), ctx());
    for (const p of cfg.plugins.values()) await p.close?.();
  }
  const weights = (name: string) => {
    const cfg = buildSchedulerConfig(parseEndpointPickerConfig(strategyYaml(strategyByName(name), sctx)), ctx());
    return { cfg, w: Object.fromEntries(cfg.profiles.get('default')!.scorers.map((x) => [x.scorer.type, x.weight])) };
  };
  assert.deepEqual(weights('precise-3-2-2').w, { 'precise-prefix-cache-scorer': 3, 'kv-cache-utilization-scorer': 2, 'queue-scorer': 2 });
  assert.deepEqual(weights('precise-1-1-1').w, { 'precise-prefix-cache-scorer': 1, 'kv-cache-utilization-scorer': 1, 'queue-scorer': 1 });
  const { cfg, w } = weights('approximate-llmd73');
  assert.deepEqual(w, { 'prefix-cache-scorer': 1, 'kv-cache-utilization-scorer': 1, 'queue-scorer': 1 });
  assert.equal(strategyByName('approximate-llmd73').source.path, 'benchmarking/73-capacity/README.md');
  // No autoTune: 64-character blocks even when the endpoint reports 64-token blocks, at most 256 of them.
  const scorer = [...cfg.plugins.values()].find((p) => p instanceof ApproxPrefixCacheScorer) as ApproxPrefixCacheScorer;
  const ep = { address: 'a:1', metrics: { blockSize: 64, numGpuBlocks: 10 } } as unknown as Endpoint;
  const req = (chars: number) => ({ api: 'completions', prompt: 'x'.repeat(chars), targetModel: 'm' }) as unknown as InferenceRequest;
  assert.equal(scorer.hashes(req(640), [ep]).length, 10);
  assert.equal(scorer.hashes(req(64 * 300), [ep]).length, 256);
});

test('time model: the h100-tp2-qwen3-32b constants follow from the roofline, and the engine runs them', () => {
  const d = deriveTiming(QWEN3_32B_TP2_H100);
  // 32.76e9 bf16 params over TP2: 32.76 GB per GPU per step; 64 x 4 x 128 x 2 x 2 B of KV per token per GPU.
  assert.equal(d.weightBytesPerGpu, 32.76e9);
  assert.equal(d.kvBytesPerTokenPerGpu, 131_072);
  assert.ok(Math.abs(d.weightReadMs - 32.76e9 / (3.35e12 * 0.6) * 1e3) < 1e-9);
  assert.ok(Math.abs(d.timing.prefillPerTokenMs - 0.06625) < 1e-4);
  assert.deepEqual(PROFILES['h100-tp2-qwen3-32b'].timing, d.timing);
  const check = calibrationCheck(d.timing);
  assert.equal(check.within20, true, check.lines.join('\n'));
  // A cheaper decode (the old 0.25 ms per sequence, no context term) misses llm-d's figures by > 20 %.
  assert.equal(calibrationCheck({ stepOverheadMs: 12, prefillPerTokenMs: 0.065, decodePerSeqMs: 0.25 }).within20, false);

  // The engine, closed loop at N running sequences of the llm-d-73 shape on one pod: its mean
  // ITL matches the steady-state formula the check uses.
  const N = 64;
  const B = 64;
  const clock = new VirtualClock();
  const engine = new Engine({
    blockSize: B, numGpuBlocks: 4802, maxNumSeqs: 1024, maxNumBatchedTokens: 8192, maxModelLen: 40_960,
    timing: d.timing, hasher: new BlockHasher('sha256', '0'), eventsEnabled: false,
    eventFields: { medium: 'GPU', extraKeys: false, groupIdx: null, kvCacheSpecKind: null }, clock, outputMode: 'random', seed: 1,
  });
  const system = Array.from({ length: 6000 }, (_, i) => 1000 + i);
  let submitted = 0;
  let itlSum = 0;
  let itlN = 0;
  const submit = () => {
    const q = Array.from({ length: 1200 }, (_, i) => 50_000 + submitted * 1200 + i);
    submitted++;
    engine.submit({
      promptTokens: system.concat(q), maxTokens: 1000,
      onFinish: (r) => {
        if (clock.now() > 60) { itlSum += (r.finished - r.firstToken) / (r.outputCount - 1); itlN++; }
        if (clock.now() < 150) submit();
      },
    });
  };
  // Staggered starts so finishes (and the prefills that replace them) spread over time.
  for (let i = 0; i < N; i++) clock.at(i * 1.1, submit);
  clock.runUntil(150);
  engine.stop();
  const predicted = (d.timing.stepOverheadMs + N * check.perSeqMs) / 1000;
  const measured = itlSum / itlN;
  assert.ok(itlN > 20);
  assert.ok(Math.abs(measured / predicted - 1) < 0.1, `engine ITL ${measured} s vs formula ${predicted} s`);
});

test('oracle over served requests: unserved ones neither count nor seed the cache; send order decides', () => {
  const B = 4;
  const base = Array.from({ length: 16 }, (_, i) => i + 1);
  const longer = base.concat([90, 91, 92, 93, 94, 95, 96, 97]);
  // Served: `longer` alone. `base` (refused) would have made 12 of its tokens hits.
  let o = servedOracle([{ prompt: longer, stage: 0, sentAt: 1, id: 1 }], B, 1).perStage[0];
  assert.deepEqual(o, { prompt: 24, cached: 0 });
  // Both served, `base` sent first: `longer` hits base's 4 full blocks (16 tokens).
  o = servedOracle([{ prompt: longer, stage: 0, sentAt: 2, id: 1 }, { prompt: base, stage: 0, sentAt: 1, id: 0 }], B, 1).perStage[0];
  assert.deepEqual(o, { prompt: 40, cached: 16 });
  // Sent the other way round: base hits floor((16-1)/4)*4 = 12 tokens of longer's blocks.
  o = servedOracle([{ prompt: longer, stage: 0, sentAt: 1, id: 1 }, { prompt: base, stage: 1, sentAt: 2, id: 0 }], B, 2).perStage[1];
  assert.deepEqual(o, { prompt: 16, cached: 12 });
});

test('Mooncake traces load whole from the repository copy (gzip)', () => {
  const conv = resolveBench({ preset: 'mooncake-conversation', clock: 'real' }).options;
  assert.equal(conv.workload.size, 12_031);
  const syn = resolveBench({ preset: 'mooncake-synthetic', clock: 'real' }).options;
  assert.equal(syn.workload.size, 3_993);
  // The first 120 conversation requests include 7 above Qwen3-32B's native 40,960 tokens; the
  // preset's context limit serves them all.
  const first = conv.workload.take(120);
  assert.equal(first.filter((r) => r.prompt.length + r.maxTokens > 40_960).length, 7);
  assert.ok(first.every((r) => r.prompt.length + r.maxTokens <= (conv.sim.maxModelLen as number)));
  assert.equal(resolveBench({ preset: 'mooncake-conversation', clock: 'real', maxModelLen: 40_960 }).options.sim.maxModelLen, 40_960);
});

test('every time-model and engine constant is settable from the bench flags and reaches each pod', () => {
  const { options } = resolveBench({
    preset: 'smoke', stepOverheadMs: 5, prefillMsPerToken: 0.1, decodeMsPerSeq: 0.3, kvReadMsPerToken: 0.0001, prefillAttnMsPerPair: 0,
    numGpuBlocks: 300, maxNumSeqs: 7, maxNumBatchedTokens: 512, maxModelLen: 2048, pods: 2, podTimingMultipliers: '1,3',
  });
  const pods = simPodOptions({ ...options.sim, timeScale: 1, kvEventsEndpoint: 'tcp://127.0.0.1:1', seed: 1 });
  assert.deepEqual(pods[0].timing, { stepOverheadMs: 5, prefillPerTokenMs: 0.1, decodePerSeqMs: 0.3, kvReadPerTokenMs: 0.0001, prefillAttnPerPairMs: 0 });
  assert.equal(pods[1].timing?.stepOverheadMs, 15);
  assert.deepEqual([pods[0].numGpuBlocks, pods[0].maxNumSeqs, pods[0].maxNumBatchedTokens, pods[0].maxModelLen], [300, 7, 512, 2048]);
  assert.throws(() => resolveBench({ preset: 'smoke', stepOverheadMs: -1 }), /--step-overhead-ms must be a number >= 0/);
  assert.throws(() => resolveBench({ preset: 'smoke', podTimingMultipliers: '1' }), /one per pod/);
});
