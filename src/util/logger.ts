// The CLI's logger: human-readable lines when stdout is a terminal, JSON lines otherwise
// (for log collectors). KVROUTER_LOG_FORMAT=json|pretty overrides the choice.
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type { PrettyOptions } from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';

/** The format to log in: KVROUTER_LOG_FORMAT if set, else pretty on a terminal, JSON otherwise. */
export function logFormat(env: NodeJS.ProcessEnv = process.env, isTTY = process.stdout.isTTY === true): LogFormat {
  const v = env.KVROUTER_LOG_FORMAT;
  if (v === 'json' || v === 'pretty') return v;
  if (v !== undefined && v !== '') throw new Error(`KVROUTER_LOG_FORMAT must be json or pretty, got "${v}"`);
  return isTTY ? 'pretty' : 'json';
}

export interface LoggerOptions {
  level: string;
  /** The `name` field of every line (JSON) or the line's prefix (pretty). */
  name: string;
  format?: LogFormat;
  /** Where lines go (default stdout); for tests. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(o: LoggerOptions): Logger {
  const format = o.format ?? logFormat();
  const base = { level: o.level, base: { name: o.name } };
  if (format === 'json') return o.destination ? pino(base, o.destination) : pino(base);
  // pino-pretty as a synchronous stream in this thread (not a worker transport): a terminal
  // reader wants lines in order with the process's other output; loaded only when used.
  const pretty = createRequire(import.meta.url)('pino-pretty') as (opts: PrettyOptions) => NodeJS.WritableStream;
  const stream = pretty({
    sync: true,
    colorize: o.destination === undefined && process.stdout.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    destination: o.destination ?? 1,
  } as PrettyOptions);
  return pino(base, stream);
}
