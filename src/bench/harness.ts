// What the runner needs from the outside world: fresh simulated pods and a router configured
// for one strategy. Implementations live in ./hosts.ts; tests may pass their own.
import type { TimingModel } from '../sim/timing.js';

export interface SimSpec {
  pods: number;
  model: string;
  blockSize: number;
  numGpuBlocks: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  /** vLLM --max-model-len (default: the profile's, capped by the KV cache). */
  maxModelLen?: number;
  /** Simulator hardware profile name (src/sim/timing.ts). */
  profile?: string;
  /** Overrides of the profile's step-cost constants, for every pod. */
  timing?: Partial<TimingModel>;
  /** Per-pod multiplier on every step-cost constant (heterogeneous pods); default 1. */
  podTimingMultipliers?: number[];
  timeScale: number;
  /** ZMQ endpoint the pods connect their KV-event publishers to (the router binds it). */
  kvEventsEndpoint: string;
  seed: number;
}

export interface PodsHandle {
  /** http://127.0.0.1:port per pod. */
  urls: string[];
  /** ip:port per pod (endpoint identity, also in the KV-event topic). */
  addresses: string[];
  /** How late the simulator's timers fired (model seconds, summed) over how many timers. */
  lag(): Promise<{ seconds: number; timers: number } | undefined>;
  /** Scenarios: stop pod i (connections refused, in-flight requests fail). */
  kill?(i: number): Promise<void>;
  /** Scenarios: restart pod i on the same port with an empty cache. */
  restart?(i: number): Promise<void>;
  /** Scenarios: reset pod i's prefix cache (default: POST /reset_prefix_cache over HTTP). */
  reset?(i: number): Promise<void>;
  close(): Promise<void>;
}

export interface RouterHandle {
  url: string;
  /** Scenarios: an endpoint enters or leaves the router's pool. */
  addEndpoint?(address: string): void;
  removeEndpoint?(address: string): void;
  close(): Promise<void>;
}

/**
 * Router timers in wall ms. The simulator runs `timeScale` times slower than model time, so the
 * router's own clocks (llm-d's 50 ms metrics refresh, its health timeout) are stretched by the
 * same factor to keep their model-time meaning.
 */
export interface RouterTiming {
  scrapeIntervalMs?: number;
  unhealthyAfterMs?: number;
}

export interface Harness {
  startPods(spec: SimSpec): Promise<PodsHandle>;
  startRouter(
    configYaml: string,
    endpoints: { address: string; labels: Record<string, string> }[],
    opts?: RouterTiming,
  ): Promise<RouterHandle>;
  close?(): Promise<void>;
}
