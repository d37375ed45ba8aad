// SimHost: many pods in one process on one shared clock, each with its own cache and metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimHost, VirtualClock } from '../../src/sim/index.js';

test('SimHost runs pods on one shared clock; caches are independent; DP ranks are listed', async () => {
  const clock = new VirtualClock();
  const host = await SimHost.start(
    [
      { model: 'a', profile: 'h100-qwen3-0.6b', numGpuBlocks: 200, maxModelLen: 1024, pythonHashSeed: '0' },
      { model: 'a', profile: 'h100-qwen3-0.6b', numGpuBlocks: 200, maxModelLen: 1024, pythonHashSeed: '0', dataParallelSize: 2 },
    ],
    clock,
  );
  try {
    assert.equal(host.pods.length, 3);
    assert.ok(host.pods.every((p) => p.clock === clock));
    assert.deepEqual(
      host.pods.map((p) => p.dataParallelRank),
      [0, 0, 1],
    );
    const done: number[] = [];
    const prompt = Array.from({ length: 40 }, (_, i) => i + 1);
    host.pods[0].engine.submit({ promptTokens: prompt, maxTokens: 4, onFinish: (r) => done.push(r.finished) });
    host.pods[2].engine.submit({ promptTokens: prompt, maxTokens: 4, onFinish: (r) => done.push(r.finished) });
    clock.runUntil();
    assert.equal(done.length, 2);
    assert.equal(done[0], done[1], 'identical work finishes at the same model time on the shared clock');
    // Same seed, same tokens: identical engine hashes, but each pod holds its own copy.
    assert.deepEqual(
      host.pods[0].cacheSnapshot().map((e) => e.blockHash),
      host.pods[2].cacheSnapshot().map((e) => e.blockHash),
    );
    assert.equal(host.pods[1].cacheSnapshot().length, 0);
    const m = await host.pods[2].registry.metrics();
    assert.match(m, /vllm:prompt_tokens_total\{model_name="a",engine="1"\} 40/);
  } finally {
    await host.close();
  }
});
