// Load shapes (inference-perf style): stages of rate x duration, arrivals either evenly spaced
// (constant) or Poisson (exponential gaps). Times are in MODEL seconds; the runner converts.
import { Rng, hashSeed } from './rng.js';

export type LoadType = 'constant' | 'poisson';

export interface Stage {
  /** Requests per second (model time). */
  rate: number;
  /** Stage length in model seconds. */
  duration: number;
  /** Warm-up stages run but are excluded from charts and headline figures. */
  warmup?: boolean;
}

export interface LoadShape {
  type: LoadType;
  stages: Stage[];
}

export interface Arrival {
  /** Offset from the start of the run, model seconds. */
  t: number;
  stage: number;
}

/** Arrival times for every stage, back to back. Deterministic in `seed`. */
export function arrivals(shape: LoadShape, seed: number): Arrival[] {
  const out: Arrival[] = [];
  let start = 0;
  shape.stages.forEach((st, s) => {
    if (!(st.rate > 0) || !(st.duration > 0)) throw new Error(`stage ${s}: rate and duration must be > 0`);
    if (shape.type === 'constant') {
      const n = Math.max(1, Math.round(st.rate * st.duration));
      for (let k = 0; k < n; k++) out.push({ t: start + k / st.rate, stage: s });
    } else {
      const rng = new Rng(hashSeed(seed, 'poisson', s));
      let t = rng.exponential(st.rate);
      while (t < st.duration) {
        out.push({ t: start + t, stage: s });
        t += rng.exponential(st.rate);
      }
    }
    start += st.duration;
  });
  return out;
}

/** `3,10,15` -> stages of `duration` each. */
export function ladder(rates: number[], duration: number): Stage[] {
  return rates.map((rate) => ({ rate, duration }));
}

export function parseRates(text: string): number[] {
  const rates = text.split(',').map((s) => Number(s.trim()));
  if (rates.length === 0 || rates.some((r) => !(r > 0))) throw new Error(`--qps: expected positive numbers separated by commas, got "${text}"`);
  return rates;
}
