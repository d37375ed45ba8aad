// Benchmark fidelity: strategies named by what they reproduce, the documented time model,
// presets (Mooncake traces from the repository copy), the oracle over served requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Registry } from 'prom-client';
import { STRATEGIES, strategyByName, strategyYaml } from '../../src/bench/strategies.js';
import { buildSchedulerConfig, parseEndpointPickerConfig } from '../../src/scheduler/config.js';
import { ApproxPrefixCacheScorer } from '../../src/scheduler/plugins/approx-prefix.js';
import type { Endpoint, InferenceRequest, PluginContext } from '../../src/scheduler/types.js';

const ctx = (): PluginContext => ({ logger: pino({ level: 'silent' }), registry: new Registry(), services: new Map(), options: { speculativeIndexingDefault: true } });
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
