// Metrics around any KvBlockIndex, as llm-d's instrumented index wraps its backends
// (llm-d-kv-cache pkg/kvcache/kvblock/instrumented_index.go): admissions on add, lookups, hits
// and latency on longestPrefix; removals the backend does on its own (TTL, capacity) come from
// its `removals` counts. The backend itself keeps no metrics code. Both backends (memory, Redis)
// sit behind it; what only one backend has stays on `backend` (typed), and the Redis backend's
// 'resync-needed' event reaches the event subscriber through `on`/`off` below.
import { realClock, type Clock } from '../util/clock.js';
import type { IndexMetrics } from './metrics.js';
import type { BlockKey, BlockKeys, IndexStats, KeyType, KvBlockIndex, PodEntry, PodId, PrefixMatch } from './types.js';

/** Leading blocks held by at least one pod: the longest run in the result. */
function hitsOf(m: Map<PodId, PrefixMatch>): number {
  let best = 0;
  for (const v of m.values()) if (v.blocks > best) best = v.blocks;
  return best;
}

/** A backend that emits events (the Redis backend's 'resync-needed', 'up', 'down'). */
interface EventSource {
  on(event: string, fn: (...args: never[]) => void): unknown;
  off(event: string, fn: (...args: never[]) => void): unknown;
}

function isEventSource(x: object): x is EventSource {
  const e = x as Partial<EventSource>;
  return typeof e.on === 'function' && typeof e.off === 'function';
}

export class InstrumentedKvBlockIndex<B extends KvBlockIndex = KvBlockIndex> implements KvBlockIndex {
  private readonly clock: Clock;

  constructor(
    readonly backend: B,
    private readonly metrics: IndexMetrics,
    clock?: Clock,
  ) {
    this.clock = clock ?? realClock;
    metrics.setStatsSource(() => backend.stats());
    if (backend.removals) metrics.setRemovalSource(backend.removals);
  }

  get removals() {
    return this.backend.removals;
  }

  /** The backend's events, for listeners that subscribe by duck typing (KvEventSubscriber); none for a backend without. */
  on(event: string, fn: (...args: never[]) => void): this {
    if (isEventSource(this.backend)) this.backend.on(event, fn);
    return this;
  }

  off(event: string, fn: (...args: never[]) => void): this {
    if (isEventSource(this.backend)) this.backend.off(event, fn);
    return this;
  }

  add(engineKeys: BlockKeys | null, requestKeys: BlockKeys, entry: PodEntry): void | Promise<void> {
    this.metrics.admissions += requestKeys.length;
    return this.backend.add(engineKeys, requestKeys, entry);
  }

  addSpeculative(requestKeys: BlockKeys, pod: PodId, ttlMs: number): void | Promise<void> {
    this.metrics.admissions += requestKeys.length;
    return this.backend.addSpeculative(requestKeys, pod, ttlMs);
  }

  evict(key: BlockKey, keyType: KeyType, entry: PodEntry): void | Promise<void> {
    return this.backend.evict(key, keyType, entry);
  }

  getRequestKey(engineKey: BlockKey, pod?: PodId): BlockKey | undefined | Promise<BlockKey | undefined> {
    return this.backend.getRequestKey(engineKey, pod);
  }

  clear(pod: PodId): void | Promise<void> {
    return this.backend.clear(pod);
  }

  longestPrefix(requestKeys: BlockKeys, pods?: ReadonlySet<PodId> | null): Map<PodId, PrefixMatch> | Promise<Map<PodId, PrefixMatch>> {
    const t0 = this.clock.now();
    const res = this.backend.longestPrefix(requestKeys, pods);
    if (res instanceof Map) {
      this.metrics.observeLookup((this.clock.now() - t0) / 1000, hitsOf(res));
      return res;
    }
    return res.then((m) => {
      this.metrics.observeLookup((this.clock.now() - t0) / 1000, hitsOf(m));
      return m;
    });
  }

  stats(): IndexStats | Promise<IndexStats> {
    return this.backend.stats();
  }

  close(): void | Promise<void> {
    return this.backend.close();
  }
}
