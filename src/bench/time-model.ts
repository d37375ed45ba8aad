// The time model a run used, for results.json and the report: the profile's constants with any
// overrides, how they were derived, and their check against llm-d's published precise run.
import { DEFAULT_PROFILE, PROFILES, calibrationCheck, type TimingModel } from '../sim/timing.js';
import type { SimSpec } from './harness.js';
import { podTiming } from './sim-options.js';

export interface TimeModelReport {
  profile: string;
  /** Pod 0's constants (ms), overrides applied. */
  timing: TimingModel;
  /** Set when any constant was overridden on the command line or by a scenario. */
  overridden: boolean;
  podTimingMultipliers?: number[];
  derivation: string[];
  check: string[];
  within20: boolean;
}

export function timeModelReport(sim: Pick<SimSpec, 'profile' | 'timing' | 'podTimingMultipliers'>): TimeModelReport {
  const name = sim.profile ?? DEFAULT_PROFILE;
  const profile = PROFILES[name];
  if (!profile) throw new Error(`unknown profile "${name}"`);
  const timing = podTiming({ profile: name, timing: sim.timing }, 0) ?? profile.timing;
  const overridden = Object.values(sim.timing ?? {}).some((v) => v !== undefined);
  const check = calibrationCheck(timing);
  return {
    profile: name,
    timing,
    overridden,
    podTimingMultipliers: sim.podTimingMultipliers,
    derivation: profile.derivation ?? [`${name}: constants as listed in src/sim/timing.ts`],
    check: check.lines,
    within20: check.within20,
  };
}
