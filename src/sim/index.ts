// The vLLM simulator: public API. startSimPod runs one pod (all its data-parallel ranks);
// SimHost runs many pods in one process on one shared model-time clock.
import { SimPodImpl, type SimPod, type SimPodOptions } from './pod.js';
import { RealClock, type SimClock } from './clock.js';

export type { SimPod, SimPodOptions, CacheSnapshotEntry } from './pod.js';
export { llmdTopic, LLMD_TOPIC_PREFIX } from './pod.js';
export type { KVEventsConfig, ReplayLayout } from './publisher.js';
export { publisherBinds, offsetEndpointPort, resolveKvEventsConfig } from './publisher.js';
export type { EventsFormat, EventsVersion, KvEvent } from './events.js';
export { encodeEventBatch, EVENTS_VERSIONS, parseEventsVersion } from './events.js';
export { BlockHasher, wireHash, HASH_ALGOS, type HashAlgo } from './hashing.js';
export { PROFILES, DEFAULT_PROFILE, type TimingModel, type HardwareProfile } from './timing.js';
export { RealClock, VirtualClock, type SimClock } from './clock.js';
export { FAILURE_TYPES, type FaultConfig } from './faults.js';
export { Engine, EngineRequest } from './engine.js';

/**
 * Starts one simulated vLLM server. With dataParallelSize N > 1 it starts ranks 0..N-1 (HTTP
 * port + r, endpoints offset like vLLM, data_parallel_rank r) and returns rank 0, whose
 * `ranks` lists all of them and whose close/kill/restart act on all.
 */
export async function startSimPod(opts: SimPodOptions): Promise<SimPod> {
  const dp = opts.dataParallelSize ?? 1;
  if (!Number.isInteger(dp) || dp < 1) throw new Error('dataParallelSize must be a positive integer');
  if (opts.dataParallelRank !== undefined) {
    const pod = new SimPodImpl(opts, opts.dataParallelRank);
    await pod.start();
    pod.ranks = [pod];
    return pod;
  }
  // Ranks share one clock (one timer) unless the caller brought one.
  const clock = opts.clock ?? (dp > 1 ? new RealClock(opts.timeScale ?? 1) : undefined);
  const pods: SimPodImpl[] = [];
  try {
    for (let r = 0; r < dp; r++) {
      const p = new SimPodImpl({ ...opts, clock, registry: r === 0 ? opts.registry : undefined }, r);
      pods.push(p);
      await p.start();
    }
  } catch (err) {
    await Promise.all(pods.map((p) => p.close()));
    throw err;
  }
  if (dp === 1) {
    pods[0].ranks = [pods[0]];
    return pods[0];
  }
  return new MultiRankPod(pods, clock instanceof RealClock && opts.clock === undefined ? clock : null);
}

/** Rank 0's view that manages every rank. */
class MultiRankPod implements SimPod {
  constructor(
    private readonly pods: SimPodImpl[],
    private readonly ownClock: RealClock | null,
  ) {}
  private get r0(): SimPodImpl {
    return this.pods[0];
  }
  get url() {
    return this.r0.url;
  }
  get port() {
    return this.r0.port;
  }
  get podId() {
    return this.r0.podId;
  }
  get model() {
    return this.r0.model;
  }
  get servedModelName() {
    return this.r0.servedModelName;
  }
  get dataParallelRank() {
    return 0;
  }
  get topic() {
    return this.r0.topic;
  }
  get kvEventsEndpoint() {
    return this.r0.kvEventsEndpoint;
  }
  get replayEndpoint() {
    return this.r0.replayEndpoint;
  }
  get registry() {
    return this.r0.registry;
  }
  get engine() {
    return this.r0.engine;
  }
  get clock() {
    return this.r0.clock;
  }
  get batchesPublished() {
    return this.r0.batchesPublished;
  }
  get ranks(): SimPod[] {
    return this.pods;
  }
  async close(): Promise<void> {
    await Promise.all(this.pods.map((p) => p.close()));
    this.ownClock?.close();
  }
  async kill(): Promise<void> {
    await Promise.all(this.pods.map((p) => p.kill()));
  }
  async restart(): Promise<void> {
    await Promise.all(this.pods.map((p) => p.restart()));
  }
  cacheSnapshot() {
    return this.r0.cacheSnapshot();
  }
}

/** Many pods in one process sharing one model-time clock (one timer drives every engine). */
export class SimHost {
  readonly pods: SimPod[];
  readonly clock: SimClock;
  private readonly ownClock: RealClock | null;

  private constructor(pods: SimPod[], clock: SimClock, ownClock: RealClock | null) {
    this.pods = pods;
    this.clock = clock;
    this.ownClock = ownClock;
  }

  /**
   * Starts every pod. Pods without their own clock share one (timeScale from the first pod, or
   * `clock`). Every pod's ranks are listed in `pods` (rank 0 first).
   */
  static async start(podOpts: SimPodOptions[], clock?: SimClock): Promise<SimHost> {
    const own = clock === undefined ? new RealClock(podOpts[0]?.timeScale ?? 1) : null;
    const shared = clock ?? (own as RealClock);
    const started: SimPod[] = [];
    try {
      for (const o of podOpts) {
        const p = await startSimPod({ ...o, clock: o.clock ?? shared });
        started.push(...p.ranks);
      }
    } catch (err) {
      await Promise.all(started.map((p) => p.close()));
      own?.close();
      throw err;
    }
    return new SimHost(started, shared, own);
  }

  async close(): Promise<void> {
    await Promise.all(this.pods.map((p) => p.close()));
    this.ownClock?.close();
  }
}
