// Benchmark pod spec -> simulator options (shared by the in-process and child-process hosts).
import type { SimPodOptions } from '../sim/index.js';
import { DEFAULT_PROFILE, PROFILES, type TimingModel } from '../sim/timing.js';
import type { SimSpec } from './harness.js';

/** Pod i's step costs: the profile's, the spec's overrides, times the pod's multiplier. */
export function podTiming(spec: Pick<SimSpec, 'profile' | 'timing' | 'podTimingMultipliers'>, i: number): TimingModel | undefined {
  const x = spec.podTimingMultipliers?.[i] ?? 1;
  if (!spec.timing && x === 1) return undefined;
  const profile = PROFILES[spec.profile ?? DEFAULT_PROFILE];
  if (!profile) throw new Error(`unknown profile "${spec.profile}"`);
  const base: TimingModel = { ...profile.timing };
  for (const [k, v] of Object.entries(spec.timing ?? {})) if (v !== undefined) (base as unknown as Record<string, number>)[k] = v;
  const out = {} as Record<string, number>;
  for (const [k, v] of Object.entries(base)) if (typeof v === 'number') out[k] = v * x;
  return out as unknown as TimingModel;
}

export function simPodOptions(spec: SimSpec): SimPodOptions[] {
  return Array.from({ length: spec.pods }, (_v, i) => ({
    port: 0,
    model: spec.model,
    blockSize: spec.blockSize,
    numGpuBlocks: spec.numGpuBlocks,
    maxNumSeqs: spec.maxNumSeqs,
    maxNumBatchedTokens: spec.maxNumBatchedTokens,
    maxModelLen: spec.maxModelLen,
    profile: spec.profile,
    timing: podTiming(spec, i),
    timeScale: spec.timeScale,
    llmdTopic: true,
    kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint: spec.kvEventsEndpoint },
    pythonHashSeed: '42',
    enablePromptTokensDetails: true,
    seed: spec.seed * 1000 + i,
  }));
}
