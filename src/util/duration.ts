// Durations in configuration, read the way llm-d's Go code reads them. Returns milliseconds.
//
//  - A string is Go's time.ParseDuration syntax (Go standard library, time/format.go):
//    decimal numbers, each with a unit ns, us (or µs), ms, s, m, h, e.g. "2s", "1m30s",
//    "1.5h", "300ms"; "0" alone is zero. This is how llm-d writes `speculativeTTL: "2s"` and
//    EPP flags such as `--refresh-metrics-interval 50ms`.
//  - A bare number is a Go time.Duration as JSON encodes it: integer NANOSECONDS. This is how
//    llm-d-kv-cache reads `metricsLoggingInterval: 60000000000` (one minute).
// Negative durations are rejected; so is a number string without a unit ("1000": say "1000ms"),
// as Go rejects it.

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
/** Longer strings are not durations anyone writes; refuse them before scanning. */
const MAX_LENGTH = 64;

export function parseDuration(v: string | number, what = 'duration'): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`${what}: ${v} is not a duration (a bare number is nanoseconds, >= 0)`);
    return v / 1e6;
  }
  const s = v.trim();
  if (s === '0' || s === '+0') return 0;
  if (s.length === 0 || s.length > MAX_LENGTH) throw new RangeError(`${what}: invalid duration "${v.slice(0, MAX_LENGTH)}"`);
  let i = s[0] === '+' ? 1 : 0;
  if (s[0] === '-') throw new RangeError(`${what}: negative duration "${v}"`);
  if (/^[+]?\d+(\.\d*)?$/.test(s)) throw new RangeError(`${what}: duration "${v}" has no unit (write e.g. "${s.replace('+', '')}ms"; units ns, us, ms, s, m, h)`);
  let total = 0;
  while (i < s.length) {
    PART.lastIndex = i;
    const m = PART.exec(s);
    if (!m) throw new RangeError(`${what}: invalid duration "${v}" (Go syntax: "2s", "1m30s", "300ms")`);
    total += Number(m[1]) * UNIT_MS[m[2]];
    i = PART.lastIndex;
  }
  return total;
}
