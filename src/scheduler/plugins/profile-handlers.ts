// Profile handlers: which profiles run, and which result is the destination.
import { z } from 'zod';
import { parseParams } from './params.js';
import type { CycleState, InferenceRequest, ProfileHandler, ProfileRunResult, SchedulerProfile, SchedulingResult } from '../types.js';

/** Runs the only profile once; its targets are the destination. */
export class SingleProfileHandler implements ProfileHandler {
  constructor(
    readonly type: string,
    readonly name: string,
    params: unknown,
  ) {
    parseParams(z.object({}).strict(), params);
  }
  pickProfiles(
    _s: CycleState,
    _r: InferenceRequest,
    profiles: ReadonlyMap<string, SchedulerProfile>,
    results: ReadonlyMap<string, ProfileRunResult | null>,
  ): Map<string, SchedulerProfile> {
    if (results.size > 0) return new Map();
    if (profiles.size !== 1) throw new Error(`single-profile-handler needs exactly one profile, got ${profiles.size}`);
    return new Map(profiles);
  }
  processResults(_s: CycleState, _r: InferenceRequest, results: ReadonlyMap<string, ProfileRunResult | null>): SchedulingResult {
    const [name, res] = results.entries().next().value ?? ['default', null];
    return { primaryProfileName: name, profileResults: new Map(results), targets: res?.targets ?? [] };
  }
}
