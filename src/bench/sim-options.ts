// Benchmark pod spec -> simulator options (shared by the in-process and child-process hosts).
import type { SimPodOptions } from '../sim/index.js';
import type { SimSpec } from './harness.js';

export function simPodOptions(spec: SimSpec): SimPodOptions[] {
  return Array.from({ length: spec.pods }, (_v, i) => ({
    port: 0,
    model: spec.model,
    blockSize: spec.blockSize,
    numGpuBlocks: spec.numGpuBlocks,
    maxNumSeqs: spec.maxNumSeqs,
    maxNumBatchedTokens: spec.maxNumBatchedTokens,
    profile: spec.profile,
    timeScale: spec.timeScale,
    llmdTopic: true,
    kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint: spec.kvEventsEndpoint },
    pythonHashSeed: '42',
    enablePromptTokensDetails: true,
    seed: spec.seed * 1000 + i,
  }));
}
