// The contract between `npm run bench:abuse` (bench/abuse.bench.ts) and the attack lists
// (events-attacks.ts, http-attacks.ts): each attack runs against a live router with simulated
// pods while the bench drives normal traffic and samples its latency and the router's RSS.

export interface AbuseTarget {
  /** The router's base URL, e.g. http://127.0.0.1:8000 */
  routerUrl: string;
  /** The router's KV-event SUB endpoint the pods publish to, e.g. tcp://127.0.0.1:5557 */
  zmqEndpoint: string;
  /** The model the pods serve. */
  model: string;
  /** Pod addresses (`host:port`) as the router knows them (also the KV-event topic identity). */
  pods: string[];
}

export interface Attack {
  /** Short name for the report row. */
  name: string;
  /** What the attack does, one line. */
  description: string;
  /** Runs the attack until `signal` aborts or `durationMs` passes; must release everything it opened. */
  run(target: AbuseTarget, signal: AbortSignal, durationMs: number): Promise<void>;
}

/** The router process's event-loop delay (ms), CPU share (1 = one core) and GC pauses over a window. */
export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
  cpu: number;
  /** Share of the window spent in GC pauses, and the longest pause (ms). */
  gcShare: number;
  gcMax: number;
  /** The main thread's own run time between two 1 ms ticks (p99, max; ms): the part of the delay this process caused. */
  holdP99: number;
  holdMax: number;
}
