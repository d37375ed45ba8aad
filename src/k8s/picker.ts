// The contract between the ext-proc protocol layer and whatever makes the decision.
// `kvrouter epp` adapts the router's Director to it (director-picker.ts); tests may use a
// fixed picker to exercise the protocol alone.

/** What the protocol layer knows once the request body is complete. */
export interface PickInput {
  /** x-request-id (the client's, or the one the picker added). */
  requestId: string;
  /** Request path from `:path` (or `x-original-path` / `x-forwarded-path`). */
  path: string;
  /** Lower-cased request headers, first value of each (pseudo-headers included). */
  headers: Record<string, string>;
  /** The complete request body. */
  body: Buffer;
  /** Envoy's subset hint: only these `ip:port` (or `ip`) may be chosen; null = no hint. */
  subset: string[] | null;
  /** Aborts when Envoy cancels the stream: the decision's rendering and tokenization stop. */
  signal?: AbortSignal;
}

/** Usage and outcome of one response, for accounting and the scheduler's response hooks. */
export interface ResponseOutcome {
  /** HTTP status the upstream answered (0 if no response headers were seen). */
  status: number;
  /** Endpoint Envoy reports it actually used (`envoy.lb` / `x-gateway-destination-endpoint-served`). */
  servedEndpoint?: string;
  /** Milliseconds from the request headers to the first response body byte. */
  ttftMs?: number;
  promptTokens?: number;
  completionTokens?: number;
  cachedTokens?: number;
  /** The stream ended before the response completed (client gone, Envoy reset). */
  aborted?: boolean;
  error?: string;
}

export interface ResponseObserver {
  /** Response headers arrived from the chosen endpoint. */
  started?(status: number, servedEndpoint: string | undefined): void;
  /** Exactly once per picked request: at response end, or when the stream closes early. */
  completed(outcome: ResponseOutcome): void;
}

export interface PickSuccess {
  /** Ranked `ip:port` targets, best first; more than one = fallbacks for the proxy. */
  endpoints: string[];
  /** Body to forward (re-serialized by the picker); defaults to the received body. */
  body?: Buffer;
  /** Extra request headers to set (e.g. `x-prefiller-host-port`). */
  headers?: Record<string, string>;
  /** For metrics labels. */
  model?: string;
  targetModel?: string;
  /** Called with the response's outcome. */
  observer?: ResponseObserver;
}

export interface PickError {
  /** 400 bad request, 404 unknown model, 429 shed / filtered out, 503 no endpoint, 500 internal. */
  status: number;
  message: string;
  /** Short machine-readable reason, e.g. `no_endpoints`. */
  code: string;
  /** OpenAI error type (e.g. `invalid_request_error`); derived from the status when absent. */
  type?: string;
  /** Extra response headers (e.g. `x-llm-d-request-dropped-reason`). */
  headers?: Record<string, string>;
  model?: string;
}

export type PickOutcome = PickSuccess | { error: PickError };

export interface EndpointPicker {
  /** Full decision for a request with a body. */
  pick(input: PickInput): Promise<PickOutcome>;
  /** A body-less request (headers with end_of_stream): any ready endpoint, random. */
  pickAny(input: Omit<PickInput, 'body'>): PickOutcome;
  /** Whether the picker can serve decisions (endpoints synced); drives gRPC readiness. */
  ready?(): boolean;
}

export function isPickError(o: PickOutcome): o is { error: PickError } {
  return (o as { error?: PickError }).error !== undefined;
}

/** True when `address` (ip:port) is allowed by a subset hint entry list (ip:port or bare ip). */
export function subsetAllows(subset: ReadonlySet<string>, address: string): boolean {
  if (subset.has(address)) return true;
  const colon = address.lastIndexOf(':');
  return colon > 0 && subset.has(address.slice(0, colon));
}
