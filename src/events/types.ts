// Decoded vLLM KV-cache events, normalized across every wire version
// (vllm-project/vllm vllm/distributed/kv_events.py, v0.9.0 to v0.24+).

export interface BlockStored {
  type: 'BlockStored';
  /** Engine block hashes, normalized to uint64. */
  blockHashes: bigint[];
  parentBlockHash: bigint | null;
  tokenIds: number[];
  blockSize: number;
  loraId: number | null;
  /** Raw medium as sent ("GPU", "CPU", "cpu_pinned", null). */
  medium: string | null;
  loraName: string | null;
  /** Per block: the extra keys that went into the engine hash (LoRA name, MM ids, cache_salt), or null. */
  extraKeys: (unknown[] | null)[] | null;
  groupIdx: number | null;
  kvCacheSpecKind: string | null;
  kvCacheSpecSlidingWindow: number | null;
}

export interface BlockRemoved {
  type: 'BlockRemoved';
  blockHashes: bigint[];
  medium: string | null;
  groupIdx: number | null;
}

export interface AllBlocksCleared {
  type: 'AllBlocksCleared';
}

export type KvEvent = BlockStored | BlockRemoved | AllBlocksCleared;

export interface DecodedBatch {
  ts: number;
  events: KvEvent[];
  dataParallelRank: number | null;
  /** Events that could not be decoded (unknown tag, bad field) and were skipped. */
  skipped: { index: number; reason: string }[];
}
