// Token cache for long texts (the role of llm-d's prefix store). A text is cut into chunks
// at exact cuts (safe-cuts.ts); each chunk's ids are cached by the chunk's text, so a text
// sharing a long prefix with an earlier one only tokenizes what follows the last shared cut,
// and the result is always identical to tokenizing the whole text at once.
import { chunkText } from './safe-cuts.js';

export interface PrefixCacheOptions {
  /** Turn the cache off (every text is tokenized whole). Default true. */
  enabled?: boolean;
  /** Chunk length target in characters (a chunk ends at the first exact cut past it). Default 1024. */
  chunkChars?: number;
  /** Texts shorter than this are tokenized whole, uncached. Default 4096 (~1k tokens). */
  minChars?: number;
  /** Bound on cached token ids across all chunks (LRU eviction). Default 2,000,000. */
  maxTokens?: number;
  /**
   * Cut long texts into exact chunks even when caching is off, so they encode in parallel
   * and never block the event loop. Default true.
   */
  split?: boolean;
}

export interface PrefixCacheStats {
  hitTokens: number;
  missTokens: number;
  chunks: number;
  cachedTokens: number;
}

type EncodeMany = (texts: string[]) => Promise<ArrayLike<number>[]>;

/** A cached chunk: its ids, and the chunk text the map holds it under (a copy of its own). */
interface Entry {
  key: string;
  ids: Uint32Array;
}

export class ChunkTokenCache {
  readonly chunkChars: number;
  readonly minChars: number;
  readonly maxTokens: number;
  private readonly store = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<ArrayLike<number>>>();
  private cachedTokens = 0;
  private hitTokens = 0;
  private missTokens = 0;

  readonly caching: boolean;

  /** Whether rule 2 of safe-cuts.ts (newline then letter) holds for this tokenizer. */
  readonly newlineRule: boolean;

  constructor(opts: PrefixCacheOptions = {}, newlineRule = true) {
    this.newlineRule = newlineRule;
    this.chunkChars = Math.max(64, opts.chunkChars ?? 1024);
    this.minChars = Math.max(this.chunkChars, opts.minChars ?? 4096);
    this.caching = opts.enabled !== false;
    this.maxTokens = this.caching ? Math.max(0, opts.maxTokens ?? 2_000_000) : 0;
  }

  /**
   * Ids of `text` (no special tokens). Chunks found in the cache are reused; the others
   * are tokenized together with one `encodeMany` call and then cached.
   */
  async encode(text: string, encodeMany: EncodeMany): Promise<{ ids: Uint32Array; hitTokens: number; missTokens: number }> {
    const chunks = chunkText(text, this.chunkChars, this.newlineRule);
    const parts: (ArrayLike<number> | undefined)[] = new Array(chunks.length);
    let missIdx: number[] | undefined;
    for (let i = 0; i < chunks.length; i++) {
      const hit = this.caching ? this.store.get(chunks[i]) : undefined;
      if (hit) {
        // Refresh LRU position, under the entry's own key (the chunk is a slice of this request's text).
        this.store.delete(hit.key);
        this.store.set(hit.key, hit);
        parts[i] = hit.ids;
      } else (missIdx ??= []).push(i);
    }
    let missTokens = 0;
    if (missIdx) missTokens = await this.encodeMisses(chunks, missIdx, parts, encodeMany);
    let total = 0;
    for (let i = 0; i < parts.length; i++) total += parts[i]!.length;
    const ids = new Uint32Array(total);
    let o = 0;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (p instanceof Uint32Array) ids.set(p, o);
      else for (let j = 0; j < p.length; j++) ids[o + j] = p[j];
      o += p.length;
    }
    const hitTokens = total - missTokens;
    this.hitTokens += hitTokens;
    this.missTokens += missTokens;
    return { ids, hitTokens, missTokens };
  }

  /** Fills parts[i] for every i in missIdx (tokenizing, or waiting for a request already doing it); returns the tokens encoded here. */
  private async encodeMisses(chunks: string[], missIdx: number[], parts: (ArrayLike<number> | undefined)[], encodeMany: EncodeMany): Promise<number> {
    let missTokens = 0;
    const waits: Promise<void>[] = [];
    const toEncode: number[] = [];
    for (const i of missIdx) {
      // Another request is tokenizing this chunk right now (a burst sharing a prefix): wait for it.
      const pending = this.caching ? this.inflight.get(chunks[i]) : undefined;
      if (pending) waits.push(pending.then((ids) => void (parts[i] = ids)));
      else toEncode.push(i);
    }
    if (toEncode.length) {
      const batch = encodeMany(toEncode.map((i) => chunks[i]));
      if (this.caching) {
        toEncode.forEach((i, k) => {
          const p = batch.then((r) => r[k]);
          p.catch(() => {}); // a failure reaches this request through `batch`, waiters through `p`
          this.inflight.set(chunks[i], p);
        });
      }
      try {
        const encoded = await batch;
        for (let k = 0; k < toEncode.length; k++) {
          const ids = encoded[k];
          missTokens += ids.length;
          if (this.caching) {
            // Cached as 4-byte ids (half a JS array's size).
            const typed = Uint32Array.from(ids);
            parts[toEncode[k]] = typed;
            this.put(ownCopy(chunks[toEncode[k]]), typed);
          } else parts[toEncode[k]] = ids;
        }
      } finally {
        if (this.caching) for (const i of toEncode) this.inflight.delete(chunks[i]);
      }
    }
    if (waits.length) await Promise.all(waits);
    return missTokens;
  }

  private put(key: string, ids: Uint32Array): void {
    if (!this.caching || ids.length > this.maxTokens) return;
    const old = this.store.get(key);
    if (old) {
      this.store.delete(old.key);
      this.cachedTokens -= old.ids.length;
    }
    this.store.set(key, { key, ids });
    this.cachedTokens += ids.length;
    while (this.cachedTokens > this.maxTokens) {
      const e = this.store.values().next().value as Entry;
      this.store.delete(e.key);
      this.cachedTokens -= e.ids.length;
    }
  }

  clear(): void {
    this.store.clear();
    this.cachedTokens = 0;
  }

  stats(): PrefixCacheStats {
    return { hitTokens: this.hitTokens, missTokens: this.missTokens, chunks: this.store.size, cachedTokens: this.cachedTokens };
  }
}

/**
 * A copy of a chunk that does not share storage with the request text: V8 slices keep their
 * parent string alive, and a cached slice of a 100 KB prompt must not pin all of it.
 */
function ownCopy(s: string): string {
  // Latin-1 text keeps V8's one-byte representation (lookups by one-byte slices compare fastest).
  const oneByte = Buffer.from(s, 'latin1').toString('latin1');
  return oneByte === s ? oneByte : Buffer.from(s, 'utf16le').toString('utf16le');
}
