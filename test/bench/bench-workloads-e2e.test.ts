// End to end for the other workloads: multi-round chat (turns wait for their predecessor) and a
// Mooncake-style trace replay (arrival times from the records), through real pods and router.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBench } from '../../src/bench/runner.js';
import { defaultHarness } from '../../src/bench/hosts.js';
import { Progress } from '../../src/bench/progress.js';
import { multiRoundWorkload } from '../../src/bench/workloads/multi-round.js';
import { traceWorkload } from '../../src/bench/workloads/trace.js';

const quiet = new Progress({ write: () => true }, true);
const sim = { pods: 2, model: 'Qwen/Qwen3-0.6B', blockSize: 16, numGpuBlocks: 512, profile: 'h100-tp2-qwen3-32b' };

test('bench: multi_round chat with growing history', async () => {
  const r = await runBench(defaultHarness({ inProcessPods: true }), {
    workload: multiRoundWorkload({ numUsers: 3, numRounds: 3, sharedSystemPromptLen: 128, userHistoryPromptLen: 256, questionLen: 16, answerLen: 8, seed: 2 }),
    load: { type: 'constant', stages: [{ rate: 9, duration: 1 }] },
    strategies: ['precise'],
    sim,
    timeScale: 1,
    seed: 2,
    drainTimeoutSec: 20,
    progress: quiet,
  });
  const s = r.strategies[0];
  assert.equal(s.error, undefined, s.error);
  assert.equal(s.total.sent, 9);
  assert.equal(s.total.ok, 9, s.sampleErrors.join('; '));
  // Rounds 2 and 3 re-send the user's whole history: most of their prompt is cached.
  assert.ok(s.total.hitRate > 0.4, `hit rate ${s.total.hitRate}`);
  assert.ok(r.oracle.hitRate >= s.total.hitRate - 1e-9);
});

test('bench: Mooncake trace replay', async () => {
  const lines = [];
  for (let i = 0; i < 8; i++) {
    lines.push(JSON.stringify({ timestamp: i * 150, input_length: 700 + 10 * i, output_length: 6, hash_ids: [1, i % 2 ? 3 : 2] }));
  }
  const r = await runBench(defaultHarness({ inProcessPods: true }), {
    workload: traceWorkload({ text: lines.join('\n'), seed: 4 }),
    load: { type: 'constant', stages: [{ rate: 1, duration: 1 }] },
    strategies: ['round-robin'],
    sim,
    timeScale: 1,
    seed: 4,
    drainTimeoutSec: 20,
    progress: quiet,
  });
  const s = r.strategies[0];
  assert.equal(s.error, undefined, s.error);
  assert.equal(r.meta.load.type, 'trace');
  assert.equal(r.meta.requests, 8);
  assert.equal(s.total.ok, 8, s.sampleErrors.join('; '));
  // One stage spanning the trace (1.05 s).
  assert.equal(s.stages.length, 1);
  assert.ok(Math.abs(s.stages[0].duration - 1.05) < 1e-9);
  assert.ok(r.oracle.hitRate > 0.5, `oracle ${r.oracle.hitRate}`);
  assert.ok(s.total.hitRate > 0 && s.total.hitRate <= r.oracle.hitRate + 1e-9);
  assert.deepEqual(s.total.routedPerPod, [4, 4]);
});
