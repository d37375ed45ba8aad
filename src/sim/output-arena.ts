// Where running requests' output tokens are written: fixed-size regions carved from a few
// 256 KiB chunks, reused as requests finish (one free list per region size, last freed first).
// A decode step stores one token per running request. Into a per-request Uint32Array that store
// first loads two dependent pointers (the sequence, then its array), and at 64 pods, with
// thousands of requests running, both were cache misses on every token; an arena chunk is shared
// by dozens of requests and stays cached, so the store is the only access that can miss.

/** Tokens per chunk; a region never spans two chunks, so larger requests keep their own array. */
export const ARENA_CHUNK = 1 << 16;

export class OutputArena {
  readonly chunks: Uint32Array[] = [];
  /** Next free offset in the last chunk. */
  private top = ARENA_CHUNK;
  /** Region size -> freed region ids (chunk index * ARENA_CHUNK + offset). */
  private readonly free = new Map<number, number[]>();

  /** A region of `cap` tokens, or -1 when `cap` does not fit a chunk (or is 0). */
  alloc(cap: number): number {
    if (!(cap > 0 && cap <= ARENA_CHUNK)) return -1;
    const list = this.free.get(cap);
    if (list !== undefined && list.length > 0) return list.pop() as number;
    if (this.top + cap > ARENA_CHUNK) {
      this.chunks.push(new Uint32Array(ARENA_CHUNK));
      this.top = 0;
    }
    const id = (this.chunks.length - 1) * ARENA_CHUNK + this.top;
    this.top += cap;
    return id;
  }

  release(id: number, cap: number): void {
    const list = this.free.get(cap);
    if (list === undefined) this.free.set(cap, [id]);
    else list.push(id);
  }

  chunkOf(id: number): Uint32Array {
    return this.chunks[Math.floor(id / ARENA_CHUNK)];
  }

  offsetOf(id: number): number {
    return id % ARENA_CHUNK;
  }
}
