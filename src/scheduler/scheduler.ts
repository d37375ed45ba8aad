// The scheduling cycle, as llm-d's EPP runs it (scheduler.go, scheduler_profile.go):
// the profile handler picks profiles; each profile runs its filters in order (an emptied set
// fails the profile), clamps every scorer's output to [0,1], sums weight * score per endpoint
// (not divided by the weight total) and hands the result to its one picker.
import {
  CycleState,
  SchedulingError,
  type Endpoint,
  type InferenceRequest,
  type ProfileHandler,
  type ProfileRunResult,
  type SchedulerProfile,
  type ScoredEndpoint,
  type SchedulingResult,
} from './types.js';

type Sink = { observe(seconds: number): void };

export interface SchedulerObserver {
  /** Where the seconds spent in one plugin call go, by extension point (filter, scorer, picker), plugin type and name. */
  pluginDuration?(point: string, type: string, name: string): { observe(seconds: number): void };
}

/**
 * A picker's input. `score` is born a double (NaN) so every instance keeps one field
 * representation: a literal whose first score was a small integer (0, 1) had its map deprecated
 * at the first fractional score, deoptimizing runProfile and the picker (--trace-deopt, "wrong map").
 */
class Scored implements ScoredEndpoint {
  score = NaN;
  constructor(
    readonly endpoint: Endpoint,
    score: number,
  ) {
    this.score = score;
  }
}

/**
 * A profile's outcome. The per-address maps (totals, per-scorer scores) are read only by logs
 * and debug output, so they are built from the score arrays on first read: four maps of every
 * candidate per request were most of what a decision allocated at 64 endpoints.
 */
class ProfileRun implements ProfileRunResult {
  private totalsMap: Map<string, number> | undefined;
  private perScorerMap: Map<string, Map<string, number>> | undefined;

  constructor(
    readonly targets: Endpoint[],
    private readonly endpoints: readonly Endpoint[],
    private readonly totalScores: Float64Array,
    private readonly scorerNames: readonly string[],
    private readonly scorerScores: readonly Float64Array[],
  ) {}

  get totals(): Map<string, number> {
    if (this.totalsMap === undefined) this.totalsMap = this.byAddress(this.totalScores);
    return this.totalsMap;
  }

  get perScorer(): Map<string, Map<string, number>> {
    if (this.perScorerMap === undefined) {
      const m = new Map<string, Map<string, number>>();
      for (let k = 0; k < this.scorerNames.length; k++) m.set(this.scorerNames[k], this.byAddress(this.scorerScores[k]));
      this.perScorerMap = m;
    }
    return this.perScorerMap;
  }

  private byAddress(scores: Float64Array): Map<string, number> {
    const m = new Map<string, number>();
    for (let i = 0; i < this.endpoints.length; i++) m.set(this.endpoints[i].address, scores[i]);
    return m;
  }
}

function clamp01(x: number): number {
  if (!(x > 0)) return 0; // also NaN
  return x > 1 ? 1 : x;
}

export class Scheduler {
  constructor(
    readonly profiles: ReadonlyMap<string, SchedulerProfile>,
    readonly handler: ProfileHandler,
    private readonly observer: SchedulerObserver = {},
  ) {}

  /**
   * Runs one cycle over `candidates`. Throws SchedulingError 503 when there is no candidate,
   * 429 when the filters leave none (llm-d: scheduling failure).
   */
  async schedule(req: InferenceRequest, candidates: Endpoint[], state = new CycleState()): Promise<SchedulingResult> {
    if (candidates.length === 0) throw new SchedulingError('no ready endpoint for this request', 503, 'no_endpoints');
    const results = new Map<string, ProfileRunResult | null>();
    for (let guard = 0; guard < 16; guard++) {
      const next = this.handler.pickProfiles(state, req, this.profiles, results);
      if (next.size === 0) break;
      for (const [name, profile] of next) results.set(name, await this.runProfile(state, req, profile, candidates));
    }
    const result = this.handler.processResults(state, req, results);
    if (result.targets.length === 0) {
      throw new SchedulingError('every endpoint was filtered out for this request', 429, 'scheduling_failed');
    }
    return result;
  }

  /** Duration sinks per extension point and plugin instance, looked up once. */
  private readonly sinks = { filter: new WeakMap<object, Sink>(), scorer: new WeakMap<object, Sink>(), picker: new WeakMap<object, Sink>() };

  private time(point: 'filter' | 'scorer' | 'picker', plugin: { type: string; name: string }, start: number): void {
    const make = this.observer.pluginDuration;
    if (!make) return;
    let sink = this.sinks[point].get(plugin);
    if (!sink) this.sinks[point].set(plugin, (sink = make.call(this.observer, point, plugin.type, plugin.name)));
    sink.observe((performance.now() - start) / 1000);
  }

  async runProfile(state: CycleState, req: InferenceRequest, profile: SchedulerProfile, candidates: Endpoint[]): Promise<ProfileRunResult | null> {
    let endpoints = candidates;
    for (const f of profile.filters) {
      const t = performance.now();
      endpoints = await f.filter(state, req, endpoints);
      this.time('filter', f, t);
      if (endpoints.length === 0) return null;
    }
    const n = endpoints.length;
    const totals = new Float64Array(n);
    const names: string[] = [];
    const clamped: Float64Array[] = [];
    for (const { scorer, weight } of profile.scorers) {
      const t = performance.now();
      const raw = await scorer.score(state, req, endpoints);
      this.time('scorer', scorer, t);
      // Read through one array type: each scorer's own kind (small ints, doubles) at this one
      // site made V8 deoptimize and recompile this whole function per new kind (--trace-deopt).
      const vals: ArrayLike<number> = raw instanceof Float64Array ? raw : Float64Array.from(raw);
      const own = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const s = clamp01(vals[i] ?? 0);
        totals[i] += weight * s;
        own[i] = s;
      }
      names.push(scorer.name);
      clamped.push(own);
    }
    const scored: ScoredEndpoint[] = [];
    for (let i = 0; i < n; i++) scored.push(new Scored(endpoints[i], totals[i]));
    const t = performance.now();
    const targets = profile.picker.pick(state, req, scored);
    this.time('picker', profile.picker, t);
    return new ProfileRun(targets, endpoints, totals, names, clamped);
  }
}
