// Faults on demand: a random error rate with chosen error kinds, a request header forcing an
// error (llm-d-inference-sim's X-Return-Error), and a startup delay. Kill/restart live on SimPod.
import type { IncomingHttpHeaders } from 'node:http';

export interface InjectedError {
  status: number;
  message: string;
  type: string;
  param: string | null;
}

/** llm-d-inference-sim's failure types, with the status codes they map to. */
export const FAILURE_TYPES: Record<string, InjectedError> = {
  rate_limit: { status: 429, message: 'Rate limit reached', type: 'RateLimitError', param: null },
  invalid_api_key: { status: 401, message: 'Incorrect API key provided', type: 'AuthenticationError', param: null },
  context_length: { status: 400, message: "This model's maximum context length is exceeded", type: 'BadRequestError', param: 'messages' },
  server_error: { status: 503, message: 'The server is overloaded or not ready yet', type: 'ServiceUnavailableError', param: null },
  invalid_request: { status: 400, message: 'Invalid request', type: 'BadRequestError', param: null },
  model_not_found: { status: 404, message: 'The model does not exist', type: 'NotFoundError', param: 'model' },
};

export interface FaultConfig {
  /** Probability in [0, 1] that a completion request fails. */
  errorRate?: number;
  /** What injected failures look like: failure type names or HTTP status codes (default all types). */
  errorCodes?: (string | number)[];
  /** Header that forces an error: its value is a status code or a failure type (default x-return-error). */
  errorHeader?: string;
  /** The server answers 503 (health included) for this long after start or restart, in wall ms. */
  startupDelayMs?: number;
  /** Random source (tests); defaults to Math.random. */
  random?: () => number;
}

export function errorFor(code: string | number): InjectedError {
  if (typeof code === 'string' && code in FAILURE_TYPES) return FAILURE_TYPES[code];
  const status = Number(code);
  if (!Number.isInteger(status) || status < 400 || status > 599) throw new Error(`unknown error code or failure type "${code}" (a 4xx/5xx status or one of ${Object.keys(FAILURE_TYPES).join(', ')})`);
  const known = Object.values(FAILURE_TYPES).find((e) => e.status === status);
  if (known) return known;
  return { status, message: `injected error ${status}`, type: status >= 500 ? 'InternalServerError' : 'BadRequestError', param: null };
}

/** Validates a fault config up front so a typo fails at start, not at request time. */
export function checkFaults(f: FaultConfig): void {
  if (f.errorRate !== undefined && !(f.errorRate >= 0 && f.errorRate <= 1)) throw new Error('faults.errorRate must be within [0, 1]');
  for (const c of f.errorCodes ?? []) errorFor(c);
}

/** The error this request must fail with, or null. */
export function pickFault(f: FaultConfig, headers: IncomingHttpHeaders): InjectedError | null {
  const h = headers[(f.errorHeader ?? 'x-return-error').toLowerCase()];
  const forced = Array.isArray(h) ? h[0] : h;
  if (forced !== undefined && forced !== '') {
    try {
      return errorFor(/^\d+$/.test(forced) ? Number(forced) : forced);
    } catch {
      return { status: 400, message: `invalid X-Return-Error value "${forced}"`, type: 'BadRequestError', param: null };
    }
  }
  const rate = f.errorRate ?? 0;
  if (rate > 0 && (f.random ?? Math.random)() < rate) {
    const codes = f.errorCodes && f.errorCodes.length > 0 ? f.errorCodes : Object.keys(FAILURE_TYPES);
    const pick = codes[Math.floor((f.random ?? Math.random)() * codes.length) % codes.length];
    return errorFor(pick);
  }
  return null;
}
