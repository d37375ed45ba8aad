// vLLM's BlockPool (vllm/v1/core/block_pool.py): a fixed set of KV blocks, block 0 reserved as
// the null block; free blocks sit in an LRU queue with their hash kept, so a finished request's
// blocks stay hittable until the block is popped for reuse (eviction -> one BlockRemoved).
import type { ExtraKey } from './hashing.js';
import type { BlockStoredEvent, KvEvent } from './events.js';
import type { MsgpackWriter } from './msgpack.js';
import { wireHash } from './hashing.js';
import type { TokenSeq } from './tokens.js';

/** What the pool needs to know about a request to cache its full blocks. */
export interface CachingRequest {
  seq: TokenSeq;
  blockHashes: Buffer[];
  blockHashKeys: string[];
  /** Extra keys of block i (cache_salt in block 0), or null. */
  extraKeysOf(blockIndex: number): readonly ExtraKey[] | null;
  loraName: string | null;
  /** The adapter's numeric id (lora_request.adapter_id), or null. */
  loraId: number | null;
}

/** Which optional event fields this vLLM version fills (set by the engine from the wire version). */
export interface EventFieldValues {
  medium: string | null;
  extraKeys: boolean;
  groupIdx: number | null;
  kvCacheSpecKind: string | null;
}

/**
 * A BlockStored as the pool queues it until the end of the engine step: its token ids stay a
 * range of the request's token sequence (stored tokens never change) and are written straight
 * from it when the batch is encoded. A copy per event lived one step of model time, which at 64
 * pods outlives several young-generation GCs: it was a third of what the GC copied.
 */
class QueuedBlockStored implements BlockStoredEvent {
  readonly type = 'BlockStored' as const;
  readonly loraId: number | null;
  readonly medium: string | null;
  readonly loraName: string | null;
  readonly groupIdx: number | null;
  readonly kvCacheSpecKind: string | null;
  readonly kvCacheSpecSlidingWindow = null;

  constructor(
    readonly blockHashes: Buffer[],
    readonly parentBlockHash: Buffer | null,
    private readonly seq: TokenSeq,
    private readonly from: number,
    private readonly to: number,
    readonly blockSize: number,
    req: CachingRequest,
    fields: EventFieldValues,
    readonly extraKeys: (readonly ExtraKey[] | null)[] | null,
  ) {
    this.loraId = req.loraId;
    this.medium = fields.medium;
    this.loraName = req.loraName;
    this.groupIdx = fields.groupIdx;
    this.kvCacheSpecKind = fields.kvCacheSpecKind;
  }

  get tokenIds(): number[] {
    return this.seq.slice(this.from, this.to);
  }

  writeTokenIds(w: MsgpackWriter): void {
    const r = this.seq.range(this.from, this.to);
    w.intArray(r.tokens, r.start, r.start + (this.to - this.from));
  }
}

/** The digest a hash key was made from (keys are `digest.toString('latin1')`, a lossless round trip). */
function digestOf(key: string): Buffer {
  return Buffer.from(key, 'latin1');
}

export class BlockPool {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly refCnt: Int32Array;
  // A cached block's hash is kept once, as its key: the latin1 string of the 32-byte digest that
  // the request already holds (shared, not copied). A Buffer per cached block as well cost a
  // ~100-byte object each over millions of blocks at 256 pods; events rebuild the digest from
  // the key when a block is evicted (Buffer.from(key, 'latin1') is the same 32 bytes).
  private readonly hashKey: (string | null)[];
  // A cached block's tokens, for snapshot() only, and only with keepTokens: a reference to its
  // request's token sequence plus the offset (no copy per block). The sequence stays alive while
  // any of its blocks is cached, so without the option a finished request's generated tokens
  // (4 KB per 1,000) are not kept by the one output block that outlived the rest.
  private readonly tokensOf: (TokenSeq | null)[] | null;
  private readonly tokensAt: Int32Array;
  /** The parent block's hash key (null for a sequence's first block), for snapshot(). */
  private readonly parentOf: (string | null)[];
  // Doubly linked free queue over block ids; index numBlocks is the sentinel.
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly inFree: Uint8Array;
  numFree = 0;
  /**
   * hash key -> the first block holding that hash; further blocks with the same hash (computed
   * concurrently) wait in `dups`, in order. One number per cached block, not an array.
   */
  private readonly cached = new Map<string, number>();
  private readonly dups = new Map<string, number[]>();
  /** Events waiting for the end of the engine step; null when events are disabled. */
  readonly events: KvEvent[] | null;
  private readonly fields: EventFieldValues;
  /** Evictions since start (for metrics). */
  evictions = 0;

  /** `keepTokens`: snapshot() reports each cached block's token ids (tests comparing an index with the cache). */
  constructor(numBlocks: number, blockSize: number, eventsEnabled: boolean, fields: EventFieldValues, keepTokens = false) {
    if (numBlocks < 2) throw new Error('num_gpu_blocks must be at least 2 (block 0 is the null block)');
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.refCnt = new Int32Array(numBlocks);
    this.hashKey = new Array<string | null>(numBlocks).fill(null);
    this.tokensOf = keepTokens ? new Array<TokenSeq | null>(numBlocks).fill(null) : null;
    this.parentOf = new Array<string | null>(numBlocks).fill(null);
    this.tokensAt = new Int32Array(numBlocks);
    this.prev = new Int32Array(numBlocks + 1);
    this.next = new Int32Array(numBlocks + 1);
    this.inFree = new Uint8Array(numBlocks);
    this.events = eventsEnabled ? [] : null;
    this.fields = fields;
    const s = numBlocks;
    this.prev[s] = s;
    this.next[s] = s;
    // Block 0 is the null block: never free, never cached.
    this.refCnt[0] = 1;
    for (let b = 1; b < numBlocks; b++) this.pushTail(b);
  }

  private pushTail(b: number): void {
    const s = this.numBlocks;
    const last = this.prev[s];
    this.next[last] = b;
    this.prev[b] = last;
    this.next[b] = s;
    this.prev[s] = b;
    this.inFree[b] = 1;
    this.numFree++;
  }

  private unlink(b: number): void {
    this.next[this.prev[b]] = this.next[b];
    this.prev[this.next[b]] = this.prev[b];
    this.inFree[b] = 0;
    this.numFree--;
  }

  /** Usable blocks (all but the null block). */
  get capacity(): number {
    return this.numBlocks - 1;
  }

  /** vLLM's kv_cache_usage: 1 - free/(num_gpu_blocks - 1); cached-but-free blocks count as free. */
  usage(): number {
    return 1 - this.numFree / (this.numBlocks - 1);
  }

  /** A cached block holding `key`, if any. */
  lookup(key: string): number | undefined {
    return this.cached.get(key);
  }

  /** Blocks of `blocks` that are free now (a hit on them consumes free capacity). */
  countFree(blocks: readonly number[]): number {
    let n = 0;
    for (const b of blocks) if (this.inFree[b]) n++;
    return n;
  }

  /** Takes references on cache-hit blocks, pulling free ones out of the free queue. */
  touch(blocks: readonly number[]): void {
    for (const b of blocks) {
      if (this.refCnt[b] === 0 && this.inFree[b]) this.unlink(b);
      this.refCnt[b]++;
    }
  }

  /** Pops `n` blocks from the LRU end, evicting their cached hash (BlockRemoved each). */
  getNewBlocks(n: number, out: number[]): void {
    if (n > this.numFree) throw new Error(`cannot get ${n} free blocks from the pool (${this.numFree} free)`);
    const s = this.numBlocks;
    for (let i = 0; i < n; i++) {
      const b = this.next[s];
      this.unlink(b);
      if (this.hashKey[b] !== null) this.evict(b);
      this.refCnt[b] = 1;
      out.push(b);
    }
  }

  private evict(b: number): void {
    const key = this.hashKey[b] as string;
    const more = this.dups.get(key);
    if (this.cached.get(key) === b) {
      if (more === undefined) this.cached.delete(key);
      else {
        this.cached.set(key, more.shift() as number);
        if (more.length === 0) this.dups.delete(key);
      }
    } else if (more !== undefined) {
      const i = more.indexOf(b);
      if (i >= 0) more.splice(i, 1);
      if (more.length === 0) this.dups.delete(key);
    }
    this.hashKey[b] = null;
    if (this.tokensOf) this.tokensOf[b] = null;
    this.parentOf[b] = null;
    this.evictions++;
    this.events?.push({ type: 'BlockRemoved', blockHashes: [digestOf(key)], medium: this.fields.medium, groupIdx: this.fields.groupIdx });
  }

  /** Drops references, last block first, so a sequence's tail is evicted before its head. */
  free(blocks: readonly number[]): void {
    for (let i = blocks.length - 1; i >= 0; i--) {
      const b = blocks[i];
      if (--this.refCnt[b] === 0) this.pushTail(b);
    }
  }

  /**
   * Marks blocks [numCached, numFull) of a request as cached under their hashes and queues one
   * BlockStored covering them (vLLM's cache_full_blocks).
   */
  cacheFullBlocks(req: CachingRequest, blocks: readonly number[], numCached: number, numFull: number): void {
    if (numFull <= numCached) return;
    const B = this.blockSize;
    const newHashes: Buffer[] = [];
    const extras: (readonly ExtraKey[] | null)[] | null = this.events !== null && this.fields.extraKeys ? [] : null;
    for (let i = numCached; i < numFull; i++) {
      const b = blocks[i];
      if (b === 0) continue; // null block
      const h = req.blockHashes[i];
      const key = req.blockHashKeys[i];
      this.hashKey[b] = key;
      if (this.tokensOf) this.tokensOf[b] = req.seq;
      this.tokensAt[b] = i * B;
      this.parentOf[b] = i === 0 ? null : req.blockHashKeys[i - 1];
      if (!this.cached.has(key)) this.cached.set(key, b);
      else {
        const more = this.dups.get(key);
        if (more === undefined) this.dups.set(key, [b]);
        else more.push(b);
      }
      newHashes.push(h);
      extras?.push(req.extraKeysOf(i));
    }
    if (this.events === null || newHashes.length === 0) return;
    this.events.push(new QueuedBlockStored(newHashes, numCached === 0 ? null : req.blockHashes[numCached - 1], req.seq, numCached * B, numFull * B, B, req, this.fields, extras));
  }

  /** vLLM's reset_prefix_cache: only when no block is in use; then AllBlocksCleared. */
  resetPrefixCache(): boolean {
    if (this.numFree !== this.numBlocks - 1) return false;
    for (let b = 1; b < this.numBlocks; b++) {
      this.hashKey[b] = null;
      if (this.tokensOf) this.tokensOf[b] = null;
      this.parentOf[b] = null;
    }
    this.cached.clear();
    this.dups.clear();
    this.events?.push({ type: 'AllBlocksCleared' });
    return true;
  }

  /** Number of blocks currently holding a hash. */
  get cachedBlocks(): number {
    let n = 0;
    for (const ids of this.dups.values()) n += ids.length;
    return n + this.cached.size;
  }

  /** Every cached block (duplicates included), for equality tests against an index; token ids only with keepTokens. */
  snapshot(): { blockHash: bigint; tokenIds: number[] | undefined; parent: bigint | null }[] {
    const out: { blockHash: bigint; tokenIds: number[] | undefined; parent: bigint | null }[] = [];
    const tokensOf = this.tokensOf;
    for (let b = 1; b < this.numBlocks; b++) {
      const key = this.hashKey[b];
      if (key === null) continue;
      const p = this.parentOf[b];
      const at = this.tokensAt[b];
      const tokenIds = tokensOf ? (tokensOf[b] as TokenSeq).slice(at, at + this.blockSize) : undefined;
      out.push({ blockHash: wireHash(digestOf(key)), tokenIds, parent: p === null ? null : wireHash(digestOf(p)) });
    }
    return out;
  }
}
