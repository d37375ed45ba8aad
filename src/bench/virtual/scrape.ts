// The router's view of pod load on the virtual clock: what a /metrics scrape of each engine
// would return (vllm:num_requests_waiting / _running / kv_cache_usage_perc, cache_config_info),
// copied into the endpoints every scrape interval, so the scorers read values up to one interval
// stale, as in production (llm-d refreshes every 50 ms).
import type { VirtualPod } from './cluster.js';
import type { PoolEndpoint } from './router.js';

export class MetricsFeed {
  /** Per stage: sum over scrapes of the mean waiting queue per pod, and the scrape count. */
  private readonly waitingSum: number[] = [];
  private readonly samples: number[] = [];

  constructor(
    private readonly pods: VirtualPod[],
    /** The router's endpoint for an address; undefined while the pod is outside the pool (scenarios). */
    private readonly endpointOf: (address: string) => PoolEndpoint | undefined,
  ) {}

  /** One scrape of every pod at model time `nowMs`, counted toward `stage`'s waiting-queue mean. */
  scrape(nowMs: number, stage: number): void {
    let waiting = 0;
    let inPool = 0;
    for (let i = 0; i < this.pods.length; i++) {
      const ep = this.endpointOf(this.pods[i].address);
      if (ep === undefined) continue;
      inPool++;
      const e = this.pods[i].engine;
      const m = ep.metrics;
      m.waiting = e.numWaiting;
      m.running = e.numRunning;
      m.kvUsage = e.pool.usage();
      m.blockSize = e.cfg.blockSize;
      m.numGpuBlocks = e.cfg.numGpuBlocks;
      m.updatedAt = nowMs;
      waiting += e.numWaiting;
    }
    this.waitingSum[stage] = (this.waitingSum[stage] ?? 0) + (inPool > 0 ? waiting / inPool : 0);
    this.samples[stage] = (this.samples[stage] ?? 0) + 1;
  }

  /** Mean waiting queue per pod in the pool over the stage's scrapes (NaN without any). */
  meanWaiting(stage: number): number {
    const n = this.samples[stage] ?? 0;
    return n > 0 ? (this.waitingSum[stage] ?? 0) / n : NaN;
  }

  /** The same over several stages, weighted by their scrape counts. */
  meanWaitingOver(stages: number[]): number {
    let sum = 0;
    let n = 0;
    for (const s of stages) {
      sum += this.waitingSum[s] ?? 0;
      n += this.samples[s] ?? 0;
    }
    return n > 0 ? sum / n : NaN;
  }
}
