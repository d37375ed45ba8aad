// Parameter parsing shared by plugin factories: a zod schema per plugin; the config loader
// turns a failure into an error naming the plugin.
import type { z } from 'zod';

export function parseParams<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  return schema.parse(raw ?? {});
}

/** Go-style duration ("2s", "500ms", "1m0s") or a number of milliseconds. */
export function parseDurationMs(v: string | number): number {
  if (typeof v === 'number') return v;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  let total = 0;
  let consumed = 0;
  for (const m of v.matchAll(re)) {
    total += Number(m[1]) * units[m[2]];
    consumed += m[0].length;
  }
  if (consumed === 0 || consumed !== v.trim().length) throw new Error(`invalid duration "${v}"`);
  return total;
}
