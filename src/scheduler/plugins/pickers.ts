// Pickers: choose the target (and fallbacks, when maxNumOfEndpoints > 1) from scored endpoints.
import { z } from 'zod';
import { parseParams } from './params.js';
import type { CycleState, Endpoint, InferenceRequest, Picker, ScoredEndpoint } from '../types.js';

const pickerParams = z.object({ maxNumOfEndpoints: z.number().int().positive().default(1) }).strict();

abstract class BasePicker implements Picker {
  readonly k: number;
  constructor(
    readonly type: string,
    readonly name: string,
    params: unknown,
  ) {
    this.k = parseParams(pickerParams, params).maxNumOfEndpoints;
  }
  abstract pick(state: CycleState, req: InferenceRequest, scored: ScoredEndpoint[]): Endpoint[];
}

/** Highest total wins; ties broken at random (llm-d shuffles, then stable-sorts). */
export class MaxScorePicker extends BasePicker {
  pick(_s: CycleState, _r: InferenceRequest, scored: ScoredEndpoint[]): Endpoint[] {
    if (this.k === 1) {
      // One pass with reservoir tie-breaking: uniform among the maxima, no allocation.
      let best: ScoredEndpoint | undefined;
      let ties = 0;
      for (const s of scored) {
        if (!best || s.score > best.score) {
          best = s;
          ties = 1;
        } else if (s.score === best.score && Math.random() * ++ties < 1) best = s;
      }
      return best ? [best.endpoint] : [];
    }
    const keyed = scored.map((s) => ({ s, r: Math.random() }));
    keyed.sort((a, b) => b.s.score - a.s.score || a.r - b.r);
    return keyed.slice(0, this.k).map((x) => x.s.endpoint);
  }
}

export class RandomPicker extends BasePicker {
  pick(_s: CycleState, _r: InferenceRequest, scored: ScoredEndpoint[]): Endpoint[] {
    const keyed = scored.map((s) => ({ e: s.endpoint, r: Math.random() }));
    keyed.sort((a, b) => a.r - b.r);
    return keyed.slice(0, this.k).map((x) => x.e);
  }
}

/** A-Res weighted sampling without replacement: key = U^(1/score); all zero -> uniform. */
export class WeightedRandomPicker extends BasePicker {
  pick(_s: CycleState, _r: InferenceRequest, scored: ScoredEndpoint[]): Endpoint[] {
    const anyPositive = scored.some((s) => s.score > 0);
    const keyed = scored.map((s) => ({
      e: s.endpoint,
      key: anyPositive ? (s.score > 0 ? Math.pow(Math.random(), 1 / s.score) : -1) : Math.random(),
    }));
    keyed.sort((a, b) => b.key - a.key);
    return keyed.slice(0, this.k).map((x) => x.e);
  }
}

/** Cycles through the candidates in address order, ignoring scores. */
export class RoundRobinPicker extends BasePicker {
  private next = 0;
  pick(_s: CycleState, _r: InferenceRequest, scored: ScoredEndpoint[]): Endpoint[] {
    if (scored.length === 0) return [];
    const sorted = scored.map((s) => s.endpoint).sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    const start = this.next++ % sorted.length;
    const out: Endpoint[] = [];
    for (let i = 0; i < Math.min(this.k, sorted.length); i++) out.push(sorted[(start + i) % sorted.length]);
    return out;
  }
}
