// Builds the configured KvBlockIndex from llm-d shaped configuration
// (indexerConfig.kvBlockIndexConfig + kvCacheBackendConfigs, block-keys-and-index.md §7).
import { Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Clock } from '../util/clock.js';
import { parseDuration } from '../util/duration.js';
import type { KvBlockIndex } from './types.js';
import { DEFAULT_TIER_WEIGHTS } from './types.js';
import { InMemoryKvBlockIndex, DEFAULT_CAPACITY } from './memory-index.js';
import { IndexMetrics, startMetricsBeat, DEFAULT_METRICS_BEAT_MS } from './metrics.js';
import { RedisKvBlockIndex, type RedisIndexConfig } from './redis-index.js';
import { InstrumentedKvBlockIndex } from './instrumented-index.js';

export interface KvBlockIndexConfig {
  inMemoryConfig?: {
    /** Capacity. llm-d counts keys; here it bounds (key, pod entry) pairs. Default 1e8. */
    size?: number;
    /** Accepted for compatibility and ignored: this index never caps pods per block. */
    podCacheSize?: number;
  } | null;
  /** Shared index on Redis/Valkey (valkey:// accepted); the other fields tune RedisKvBlockIndex. */
  redisConfig?: ({ address?: string } & Omit<RedisIndexConfig, 'address' | 'tierWeights'>) | null;
  /** llm-d's older name for the same backend; wins over redisConfig as in llm-d. */
  valkeyConfig?: ({ address?: string } & Omit<RedisIndexConfig, 'address' | 'tierWeights'>) | null;
  enableMetrics?: boolean;
  /** Integer nanoseconds (llm-d JSON) or a duration string ("1m", "30s", "1m0s", "500ms"). 0 = off. Default 1 min. */
  metricsLoggingInterval?: number | string | null;
}

export interface IndexFactoryConfig {
  kvBlockIndexConfig?: KvBlockIndexConfig | null;
  kvCacheBackendConfigs?: { name: string; weight: number }[] | null;
}

export interface IndexFactoryDeps {
  registry?: Registry;
  logger?: Logger;
  /** Time for speculative entries' TTL; default realClock. */
  clock?: Clock;
}

export const DEFAULT_REDIS_ADDRESS = 'redis://127.0.0.1:6379';

/** llm-d's metricsLoggingInterval in milliseconds (see src/util/duration.ts: a bare number is nanoseconds). */
export function parseIntervalMs(v: number | string | null | undefined, fallbackMs = DEFAULT_METRICS_BEAT_MS): number {
  if (v === undefined || v === null || v === '') return fallbackMs;
  return parseDuration(v, 'metricsLoggingInterval');
}

export function tierWeightsFrom(cfg: IndexFactoryConfig['kvCacheBackendConfigs']): Record<string, number> {
  const w: Record<string, number> = { ...DEFAULT_TIER_WEIGHTS };
  if (cfg && cfg.length > 0) {
    for (const k of Object.keys(w)) delete w[k];
    for (const { name, weight } of cfg) {
      if (typeof name !== 'string' || !(typeof weight === 'number' && weight >= 0)) throw new RangeError(`kvCacheBackendConfigs: bad entry ${JSON.stringify({ name, weight })}`);
      w[name.toLowerCase()] = weight;
    }
  }
  return w;
}

export function createKvBlockIndex(cfg: IndexFactoryConfig = {}, deps: IndexFactoryDeps = {}): KvBlockIndex {
  const c = cfg.kvBlockIndexConfig ?? {};
  const tierWeights = tierWeightsFrom(cfg.kvCacheBackendConfigs);
  const metrics = c.enableMetrics ? new IndexMetrics(deps.registry ?? new Registry()) : undefined;

  let index: KvBlockIndex;
  const redisConfig = c.valkeyConfig ?? c.redisConfig;
  if (redisConfig) {
    // Connects in the background; writes wait for the first connection, lookups wait up to
    // their timeout, then it degrades (empty lookups, counted) until Redis answers.
    index = new RedisKvBlockIndex({ ...redisConfig, address: redisConfig.address ?? DEFAULT_REDIS_ADDRESS, tierWeights }, { logger: deps.logger, registry: deps.registry, clock: deps.clock });
  } else {
    const size = c.inMemoryConfig?.size ?? DEFAULT_CAPACITY;
    index = new InMemoryKvBlockIndex({ capacity: size, tierWeights, clock: deps.clock });
  }
  // Metrics come from one wrapper whatever the backend (its events pass through it).
  if (metrics) index = new InstrumentedKvBlockIndex(index, metrics, deps.clock);

  if (metrics && deps.logger) {
    const stop = startMetricsBeat(deps.logger, parseIntervalMs(c.metricsLoggingInterval), metrics, deps.clock);
    const close = index.close.bind(index);
    index.close = () => {
      stop();
      return close();
    };
  }
  return index;
}
