// The small virtual-clock bench both virtual-runner and virtual-scenarios tests run.
import type { BenchOptions } from '../../src/bench/runner.js';
import { Progress } from '../../src/bench/progress.js';
import { sharedPrefixWorkload } from '../../src/bench/workloads/shared-prefix.js';

export const quiet = () => new Progress({ write: () => true, isTTY: false }, true);

/**
 * 8 groups x 3 prompts with 256-token (16-block) prefixes on 3 pods of 96 blocks: a pod holds
 * ~4 prefixes beside its running requests, so where a group goes decides its hits (and a pod
 * losing its cache shows in the hit rate).
 */
export function virtualOptions(strategies: string[], over: Partial<BenchOptions> = {}): BenchOptions {
  return {
    workload: sharedPrefixWorkload({ numGroups: 8, promptsPerGroup: 3, systemPromptLen: 256, questionLen: 32, outputLen: 24, seed: 3 }),
    load: { type: 'poisson', stages: [{ rate: 8, duration: 3, warmup: true }, { rate: 16, duration: 3 }] },
    strategies,
    sim: { pods: 3, model: 'Qwen/Qwen3-0.6B', blockSize: 16, numGpuBlocks: 96, profile: 'h100-tp2-qwen3-32b' },
    timeScale: 1,
    seed: 7,
    drainTimeoutSec: 60,
    progress: quiet(),
    clock: 'virtual',
    ...over,
  };
}
