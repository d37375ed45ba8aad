// The block index contract shared by every backend (in-memory, Redis), the KV-event
// ingester that writes it, and the scorers that read it.
//
// Keys are unsigned 64-bit values. At API boundaries a single key is a `bigint` and a
// sequence of keys is a `BigUint64Array`; hot paths may view the same buffer as a
// Uint32Array of (lo, hi) pairs to avoid allocating BigInts.

/** One 64-bit block key (router request key or vLLM engine key). 0n is reserved as "none". */
export type BlockKey = bigint;

/** A chain of block keys, block 0 first. */
export type BlockKeys = BigUint64Array;

/** Pod identity as it appears in the KV-event topic and in routing: `ip:port` (or `ip`). */
export type PodId = string;

/** Device tier, lower-cased vLLM `medium` ("gpu", "cpu", "cpu_pinned", ...). */
export type Tier = string;

/** Who holds a block: the whole entry is the identity (pod X/gpu and pod X/cpu are two entries). */
export interface PodEntry {
  pod: PodId;
  tier: Tier;
  /** Inserted at routing time before vLLM's events arrive; expires after a TTL. */
  speculative?: boolean;
}

export type KeyType = 'engine' | 'request';

/** One pod's longest run of leading blocks. */
export interface PrefixMatch {
  /** Number of consecutive blocks from block 0 that the pod holds. */
  blocks: number;
  /** Sum over those blocks of the pod's best tier weight at each block. */
  weighted: number;
}

export interface IndexStats {
  /** Distinct request keys held. */
  keys: number;
  /** (request key, entry) pairs held. */
  entries: number;
  /** Engine keys mapped to request keys. */
  engineKeys: number;
  /** Configured capacity in entries (LRU-evicted beyond it). */
  capacity: number;
}

/** Entries a backend removed on its own, as plain counts (the metrics wrapper exports them). */
export interface RemovalCounts {
  /** By any cause: events, clear, TTL expiry, capacity. */
  evictions: number;
  /** Because the index reached its capacity (a subset of evictions). */
  capacityEvictions: number;
}

/**
 * A KV block index. Methods may return a value or a promise (Redis); callers always await.
 * Semantics follow llm-d's kvblock.Index (shared/reference/block-keys-and-index.md §2-4),
 * with reference counts, no cap on pods per block, and bounded memory.
 */
export interface KvBlockIndex {
  /**
   * Record that `entry` holds `requestKeys`. When `engineKeys` is given, map engine keys to
   * request keys with llm-d's ratio mapping (block sizes may differ). Adding the same
   * (key, entry) twice increments a reference count.
   */
  add(engineKeys: BlockKeys | null, requestKeys: BlockKeys, entry: PodEntry): void | Promise<void>;

  /**
   * Drop `entry` from a key. For an engine key: resolve to its request keys, decrement each,
   * and forget the mapping once none of its request keys is held any more. Unknown key: no-op.
   */
  evict(key: BlockKey, keyType: KeyType, entry: PodEntry): void | Promise<void>;

  /**
   * The last request key mapped to an engine key (for parent resolution), if known.
   * `pod` scopes the lookup to that pod's engine (engine hashes differ per engine without
   * PYTHONHASHSEED); backends with one global engine map may ignore it.
   */
  getRequestKey(engineKey: BlockKey, pod?: PodId): BlockKey | undefined | Promise<BlockKey | undefined>;

  /** Remove every entry of `pod` (all tiers, speculative included) and its engine mappings. */
  clear(pod: PodId): void | Promise<void>;

  /** Speculative entries for `pod` on `requestKeys`, removed automatically after `ttlMs`. */
  addSpeculative(requestKeys: BlockKeys, pod: PodId, ttlMs: number): void | Promise<void>;

  /**
   * For each pod (restricted to `pods` when given): the longest consecutive run of leading
   * blocks it holds, tier-weighted. Pods missing block 0 are absent from the result.
   * One pass over the keys, stopping as soon as no pod remains.
   */
  longestPrefix(requestKeys: BlockKeys, pods?: ReadonlySet<PodId> | null): Map<PodId, PrefixMatch> | Promise<Map<PodId, PrefixMatch>>;

  stats(): IndexStats | Promise<IndexStats>;

  /** Removal counts, for backends that keep them (read by InstrumentedKvBlockIndex). */
  readonly removals?: RemovalCounts;

  /** Release timers and connections. */
  close(): void | Promise<void>;
}

/** Default tier weights (llm-d kvCacheBackendConfigs); unknown tiers weigh 1.0. */
export const DEFAULT_TIER_WEIGHTS: Readonly<Record<string, number>> = Object.freeze({ gpu: 1.0, cpu: 0.8 });
