// What the runner needs from the outside world: fresh simulated pods and a router configured
// for one strategy. Implementations live in ./hosts.ts; tests may pass their own.

export interface SimSpec {
  pods: number;
  model: string;
  blockSize: number;
  numGpuBlocks: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  /** Simulator hardware profile name (src/sim/timing.ts). */
  profile?: string;
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
  /** Model seconds the simulator's clock ran late, if it reports it. */
  lagSeconds(): Promise<number | undefined>;
  close(): Promise<void>;
}

export interface RouterHandle {
  url: string;
  close(): Promise<void>;
}

export interface Harness {
  startPods(spec: SimSpec): Promise<PodsHandle>;
  startRouter(configYaml: string, endpoints: { address: string; labels: Record<string, string> }[]): Promise<RouterHandle>;
  close?(): Promise<void>;
}
