// The HTTP edge's limits and timeouts, with the defaults `kvrouter serve` uses. One table, read
// by the server (client side), the proxy (upstream side), `serve --help` and ARCHITECTURE.md.
import { OUTLIER_DEFAULTS } from '../endpoints/outlier.js';

export interface HttpEdgeLimits {
  /** Largest request head (request line + headers); 431 beyond (node:http's maxHeaderSize). */
  maxHeaderBytes: number;
  /** Largest request body; 413 beyond (the rest is read and dropped, or the connection closed). */
  maxBodyBytes: number;
  /** Open client connections; connections over the cap are closed at accept. */
  maxConnections: number;
  /**
   * Requests served on one client connection before it is closed (node:http
   * maxRequestsPerSocket; nginx keepalive_requests). Bounds the work one pipelining client gets.
   */
  maxRequestsPerConnection: number;
  /** Time a client has to send a request head (node:http headersTimeout); 408 beyond. */
  headersTimeoutMs: number;
  /** Time a client has to send a whole request, head and body (node:http requestTimeout); 408 beyond. */
  requestTimeoutMs: number;
  /** Idle time before a kept-alive client connection is closed. */
  keepAliveTimeoutMs: number;
  /** Time to open a connection to an endpoint; then the next endpoint is tried. */
  upstreamConnectTimeoutMs: number;
  /** Time from sending a request to the endpoint's response head; 504 beyond. */
  upstreamFirstByteTimeoutMs: number;
  /** Longest silence between two body chunks of an endpoint's answer; the answer is cut beyond. */
  upstreamIdleTimeoutMs: number;
  /** Retries on another endpoint while nothing reached the client (resets before the head, 502/503). */
  upstreamRetries: number;
  /** Failures in a row (5xx, resets, timeouts) that eject an endpoint; 0 disables ejection. */
  outlierConsecutiveFailures: number;
  /** First ejection's length; the n-th lasts n times it, up to `outlierMaxEjectionMs`. */
  outlierBaseEjectionMs: number;
  outlierMaxEjectionMs: number;
  /** Slow-start window of an endpoint that returns (from ejection or unready); 0 disables it. */
  slowStartMs: number;
}

/**
 * Production defaults. Client side: node:http's 16 KiB head (also Envoy's and nginx's order of
 * magnitude), a 32 MiB body (the default prompt cap, 4 Mi characters, is up to 24 MiB of JSON
 * from a client that escapes non-ASCII text as \uXXXX, as Python's json.dumps does by default; a
 * body over 64 KiB is parsed in a worker thread, json-body.ts, so its size does not stall other
 * requests), a 30 s head / 120 s request time (nginx gives 60 s between body reads), 65 s
 * keep-alive (longer than the 60 s idle timeout of common load balancers in front), 8192
 * connections (each proxied request also holds an upstream socket: keep it under half the file
 * descriptor limit), 1,000 requests per connection (nginx's keepalive_requests). Upstream: Envoy's 5 s connect timeout; 300 s to the response head (Envoy's
 * stream_idle_timeout; vLLM sends a non-streamed answer's head only when the completion is done,
 * so this also bounds a non-streamed generation); 60 s between chunks (nginx proxy_read_timeout;
 * a streamed vLLM answer sends a chunk per token); one retry (Envoy's num_retries); Envoy's
 * outlier detection and slow-start defaults.
 */
export const HTTP_EDGE_DEFAULTS: HttpEdgeLimits = {
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 32 * 1024 * 1024,
  maxConnections: 8192,
  maxRequestsPerConnection: 1000,
  headersTimeoutMs: 30_000,
  requestTimeoutMs: 120_000,
  keepAliveTimeoutMs: 65_000,
  upstreamConnectTimeoutMs: 5_000,
  upstreamFirstByteTimeoutMs: 300_000,
  upstreamIdleTimeoutMs: 60_000,
  upstreamRetries: 1,
  outlierConsecutiveFailures: OUTLIER_DEFAULTS.consecutiveFailures,
  outlierBaseEjectionMs: OUTLIER_DEFAULTS.baseEjectionMs,
  outlierMaxEjectionMs: OUTLIER_DEFAULTS.maxEjectionMs,
  slowStartMs: OUTLIER_DEFAULTS.slowStartMs,
};

/** The defaults overlaid with the given values (an explicit `undefined` keeps the default). */
export function edgeLimits(given: Partial<HttpEdgeLimits> = {}): HttpEdgeLimits {
  const out = { ...HTTP_EDGE_DEFAULTS };
  for (const k of Object.keys(given) as (keyof HttpEdgeLimits)[]) {
    const v = given[k];
    if (v !== undefined) {
      if (!Number.isFinite(v) || v < 0) throw new Error(`${k} must be a non-negative number, got ${v}`);
      out[k] = v;
    }
  }
  return out;
}
