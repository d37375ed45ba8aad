// Where the router's limits come from: one table of settings, each a `serve` flag and a key of
// the config's `limits` section (a kvrouter extension of EndpointPickerConfig, like
// `endpoints`). The key is the flag in camelCase (`--headers-timeout` <-> `limits.headersTimeout`).
// Defaults (limits.ts, request-limits.ts) < the config < the flags.
//
// Durations: a flag takes Go syntax or a bare number of milliseconds (as `serve --help` says);
// the config takes Go syntax only ("30s", "1m30s"; src/util/duration.ts) or 0, because a bare
// number in a config is a Go time.Duration in nanoseconds, which nobody means for a timeout.
import { z } from 'zod';
import { parseDuration } from '../util/duration.js';
import { withDefaults } from '../util/options.js';
import { edgeLimits, HTTP_EDGE_DEFAULTS, type HttpEdgeLimits } from './limits.js';
import { DEFAULT_REQUEST_LIMITS, type RequestLimitOptions } from './request-limits.js';

type Kind = 'count' | 'positive' | 'duration';
type Setting = { flag: string; kind: Kind } & ({ edge: keyof HttpEdgeLimits } | { request: 'maxMessages' | 'maxPromptChars' | 'maxPromptTokens' | 'maxJsonValues' });

export const LIMIT_SETTINGS: readonly Setting[] = [
  { flag: 'max-header-bytes', kind: 'count', edge: 'maxHeaderBytes' },
  { flag: 'max-body-bytes', kind: 'count', edge: 'maxBodyBytes' },
  { flag: 'max-connections', kind: 'count', edge: 'maxConnections' },
  { flag: 'max-requests-per-connection', kind: 'count', edge: 'maxRequestsPerConnection' },
  { flag: 'headers-timeout', kind: 'duration', edge: 'headersTimeoutMs' },
  { flag: 'request-timeout', kind: 'duration', edge: 'requestTimeoutMs' },
  { flag: 'keep-alive-timeout', kind: 'duration', edge: 'keepAliveTimeoutMs' },
  { flag: 'upstream-connect-timeout', kind: 'duration', edge: 'upstreamConnectTimeoutMs' },
  { flag: 'upstream-first-byte-timeout', kind: 'duration', edge: 'upstreamFirstByteTimeoutMs' },
  { flag: 'upstream-idle-timeout', kind: 'duration', edge: 'upstreamIdleTimeoutMs' },
  { flag: 'upstream-retries', kind: 'count', edge: 'upstreamRetries' },
  { flag: 'outlier-failures', kind: 'count', edge: 'outlierConsecutiveFailures' },
  { flag: 'outlier-ejection', kind: 'duration', edge: 'outlierBaseEjectionMs' },
  { flag: 'outlier-max-ejection', kind: 'duration', edge: 'outlierMaxEjectionMs' },
  { flag: 'slow-start', kind: 'duration', edge: 'slowStartMs' },
  { flag: 'max-messages', kind: 'positive', request: 'maxMessages' },
  { flag: 'max-prompt-chars', kind: 'positive', request: 'maxPromptChars' },
  { flag: 'max-prompt-tokens', kind: 'positive', request: 'maxPromptTokens' },
  { flag: 'max-json-values', kind: 'positive', request: 'maxJsonValues' },
];

/** `--headers-timeout` -> `headersTimeout`. */
export const configKey = (flag: string): string => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The limits as the router takes them: edge limits and request limits, only the ones given. */
export interface LimitValues {
  edge: Partial<HttpEdgeLimits>;
  request: RequestLimitOptions;
}

/** Parses one value; throws an Error naming `where` (the flag or the config key). */
function parseValue(s: Setting, v: unknown, where: string, fromConfig: boolean): number {
  if (s.kind === 'duration') {
    if (v === 0) return 0;
    if (typeof v !== 'string') throw new Error(`${where}: expected a duration such as "30s" or "500ms", got ${JSON.stringify(v)}${typeof v === 'number' ? ' (a bare number would be nanoseconds)' : ''}`);
    // A flag's bare number is milliseconds (`--headers-timeout 30000`); a config's must have a unit.
    return parseDuration(!fromConfig && /^\d+(\.\d+)?$/.test(v) ? `${v}ms` : v, where);
  }
  const n = typeof v === 'string' && /^\d+$/.test(v) && !fromConfig ? Number(v) : v;
  const min = s.kind === 'positive' ? 1 : 0;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) {
    throw new Error(`${where}: expected ${min ? 'a positive' : 'a non-negative'} integer, got ${JSON.stringify(v)}`);
  }
  return n;
}

function collect(get: (s: Setting) => { v: unknown; where: string } | undefined, fromConfig: boolean): LimitValues {
  const out: LimitValues = { edge: {}, request: {} };
  for (const s of LIMIT_SETTINGS) {
    const got = get(s);
    if (got === undefined || got.v === undefined || got.v === null) continue;
    const n = parseValue(s, got.v, got.where, fromConfig);
    if ('edge' in s) out.edge[s.edge] = n;
    else out.request[s.request] = n;
  }
  return out;
}

/** The limits given as `serve` flags (parseArgs values). */
export function limitsFromFlags(values: Record<string, unknown>): LimitValues {
  return collect((s) => ({ v: values[s.flag], where: `--${s.flag}` }), false);
}

/** The config's `limits` section (already validated by `limitsSectionSchema`). */
export function limitsFromConfig(section: Record<string, unknown> | undefined): LimitValues {
  return collect((s) => (section ? { v: section[configKey(s.flag)], where: `limits.${configKey(s.flag)}` } : undefined), true);
}

/** parseArgs options for every limit flag. */
export const limitFlagOptions = (): Record<string, { type: 'string' }> => Object.fromEntries(LIMIT_SETTINGS.map((s) => [s.flag, { type: 'string' as const }]));

/**
 * Zod schema of the config's `limits` section: unknown keys and bad values are errors naming
 * the key (`limits.headersTimeout: ...`). Values stay as written (durations as strings), so a
 * parsed config parses again unchanged; `limitsFromConfig` converts them.
 */
export const limitsSectionSchema = z
  .object(Object.fromEntries(LIMIT_SETTINGS.map((s) => [configKey(s.flag), z.union([z.string(), z.number()]).optional()])))
  .strict()
  .superRefine((section, ctx) => {
    for (const s of LIMIT_SETTINGS) {
      const key = configKey(s.flag);
      const v = section[key];
      if (v === undefined) continue;
      try {
        parseValue(s, v, `limits.${key}`, true);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: [key], message: (err as Error).message.replace(/^limits\.\w+: /, '') });
      }
    }
  });

/** Defaults < config < flags (or a library caller's options): the limits the router runs with. */
export function resolveLimits(config: LimitValues, given: LimitValues): { edge: HttpEdgeLimits; request: Required<RequestLimitOptions> } {
  return {
    edge: edgeLimits(withDefaults(withDefaults(HTTP_EDGE_DEFAULTS, config.edge), given.edge)),
    request: withDefaults(withDefaults(DEFAULT_REQUEST_LIMITS, config.request), given.request),
  };
}
