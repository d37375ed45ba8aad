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

/** A cached chunk: its text (a copy of its own), its ids, and its place in the LRU list. */
interface Entry {
  key: string;
  ids: Uint32Array;
  sample: number;
  older: Entry | null;
  newer: Entry | null;
}

/**
 * Chunk text -> entry, in LRU order. Hashing a whole 1 KB chunk costs ~2-3 us here (V8 reads
 * it char by char), and a request has several, so entries are found by a hash of a sample of
 * the chunk (its length, its ends and ~32 characters in between) and confirmed by comparing
 * the text (a memcmp). Chunks whose samples collide (near-duplicates) share a bucket that is
 * a Map by the full text: exact in every case, and no slower than hashing everything.
 */
class ChunkStore {
  private readonly buckets = new Map<number, Entry | Map<string, Entry>>();
  private oldest: Entry | null = null;
  private newest: Entry | null = null;
  size = 0;

  get(chunk: string): Entry | undefined {
    const b = this.buckets.get(sampleHash(chunk));
    if (b === undefined) return undefined;
    if (b instanceof Map) return b.get(chunk);
    return b.key === chunk ? b : undefined;
  }

  /** Adds an entry whose key is not in the store. */
  add(key: string, ids: Uint32Array): void {
    const e: Entry = { key, ids, sample: sampleHash(key), older: null, newer: null };
    const b = this.buckets.get(e.sample);
    if (b === undefined) this.buckets.set(e.sample, e);
    else if (b instanceof Map) b.set(key, e);
    else this.buckets.set(e.sample, new Map([[b.key, b], [key, e]]));
    this.link(e);
    this.size++;
  }

  delete(e: Entry): void {
    const b = this.buckets.get(e.sample)!;
    if (b instanceof Map) {
      b.delete(e.key);
      if (b.size === 1) this.buckets.set(e.sample, b.values().next().value as Entry);
    } else this.buckets.delete(e.sample);
    this.unlink(e);
    this.size--;
  }

  /** Marks `e` most recently used. */
  touch(e: Entry): void {
    if (this.newest === e) return;
    this.unlink(e);
    this.link(e);
  }

  /** The least recently used entry. */
  lru(): Entry | null {
    return this.oldest;
  }

  clear(): void {
    this.buckets.clear();
    this.oldest = this.newest = null;
    this.size = 0;
  }

  private link(e: Entry): void {
    e.older = this.newest;
    e.newer = null;
    if (this.newest) this.newest.newer = e;
    else this.oldest = e;
    this.newest = e;
  }

  private unlink(e: Entry): void {
    if (e.older) e.older.newer = e.newer;
    else this.oldest = e.newer;
    if (e.newer) e.newer.older = e.older;
    else this.newest = e.older;
    e.older = e.newer = null;
  }
}

/** Hash of a chunk's length, first and last 16 units and ~32 units spread in between. */
function sampleHash(s: string): number {
  const n = s.length;
  let h = Math.imul(n ^ 0x9e3779b9, 0x85ebca6b);
  const head = Math.min(n, 16);
  for (let i = 0; i < head; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  if (n > 32) {
    const step = Math.max(1, Math.floor((n - 32) / 32));
    for (let i = 16; i < n - 16; i += step) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  }
  for (let i = Math.max(head, n - 16); i < n; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h ^ (h >>> 15)) | 0;
}

export class ChunkTokenCache {
  readonly chunkChars: number;
  readonly minChars: number;
  readonly maxTokens: number;
  private readonly store = new ChunkStore();
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
        this.store.touch(hit);
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

  /**
   * encode() on the spot, without a promise: every missing chunk goes through `encodeOne`, and as
   * soon as it cannot encode one (null: too much work for the caller's budget, or a text only
   * the native engine takes) the result is undefined and the caller takes encode() instead. The
   * chunks encoded up to then are cached (they are exact), so that call does not redo them.
   * Chunks another request is tokenizing right now are encoded here rather than waited for.
   */
  encodeSync(text: string, encodeOne: (chunk: string) => ArrayLike<number> | null): { ids: Uint32Array; hitTokens: number; missTokens: number } | undefined {
    const chunks = chunkText(text, this.chunkChars, this.newlineRule);
    const parts: ArrayLike<number>[] = new Array(chunks.length);
    let total = 0;
    let missTokens = 0;
    let missed = false;
    for (let i = 0; i < chunks.length; i++) {
      const hit = this.caching ? this.store.get(chunks[i]) : undefined;
      let p: ArrayLike<number>;
      if (hit) {
        this.store.touch(hit);
        p = hit.ids;
      } else {
        const ids = encodeOne(chunks[i]);
        if (!ids) {
          if (missed) this.cacheMisses(chunks, parts, i);
          return undefined;
        }
        missed = true;
        missTokens += ids.length;
        p = ids;
      }
      parts[i] = p;
      total += p.length;
    }
    const ids = new Uint32Array(total);
    let o = 0;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (p instanceof Uint32Array) ids.set(p, o);
      else {
        for (let j = 0; j < p.length; j++) ids[o + j] = p[j];
        // Cached as its own 4-byte copy of the ids just written (half a JS array's size).
        if (this.caching) this.put(ownCopy(chunks[i]), ids.slice(o, o + p.length));
      }
      o += p.length;
    }
    const hitTokens = total - missTokens;
    this.hitTokens += hitTokens;
    this.missTokens += missTokens;
    return { ids, hitTokens, missTokens };
  }

  /** Caches the chunks encodeSync encoded before it gave up at chunk `end` (the JS arrays among parts). */
  private cacheMisses(chunks: string[], parts: ArrayLike<number>[], end: number): void {
    if (!this.caching) return;
    for (let i = 0; i < end; i++) if (!(parts[i] instanceof Uint32Array)) this.put(ownCopy(chunks[i]), Uint32Array.from(parts[i]));
  }

  /** Fills parts[i] for every i in missIdx (tokenizing, or waiting for a request already doing it); returns the tokens encoded here. */
  private async encodeMisses(chunks: string[], missIdx: number[], parts: (ArrayLike<number> | undefined)[], encodeMany: EncodeMany): Promise<number> {
    let missTokens = 0;
    const waits: Promise<void>[] = [];
    const toEncode: number[] = [];
    for (const i of missIdx) {
      // Another request is tokenizing this chunk right now (a burst sharing a prefix): wait for it.
      const pending = this.caching ? this.inflight.get(chunks[i]) : undefined;
      // If that request fails (e.g. it was abandoned), this one encodes the chunk itself.
      if (pending) waits.push(pending.then((ids) => void (parts[i] = ids), async () => void (parts[i] = (await encodeMany([chunks[i]]))[0])));
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
      this.store.delete(old);
      this.cachedTokens -= old.ids.length;
    }
    this.store.add(key, ids);
    this.cachedTokens += ids.length;
    while (this.cachedTokens > this.maxTokens) {
      const e = this.store.lru()!;
      this.store.delete(e);
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
  // Latin-1 text keeps V8's one-byte representation (comparisons with one-byte slices are a memcmp).
  const oneByte = Buffer.from(s, 'latin1').toString('latin1');
  return oneByte === s ? oneByte : Buffer.from(s, 'utf16le').toString('utf16le');
}
