// A memo keyed by object identity with a bound on what it holds: each entry has a weight (e.g.
// the tokens of the prompt it describes) and entries are admitted until their weights reach the
// capacity; after that a miss is computed by the caller and not kept. Entries leave when their
// key is collected (the weight is given back).
//
// Admit-first rather than LRU: the benchmarks send a fixed pool of prompts in a cyclic order
// (inference-perf's), and LRU on a cycle longer than its capacity evicts every entry just
// before its next use (no hits at all); keeping the first ones hits on those every cycle, and on
// a random order hits as often as LRU would (capacity / pool).

export class BoundedMemo<K extends object, V> {
  private readonly map = new WeakMap<K, V>();
  private held = 0;
  private readonly released = new FinalizationRegistry<number>((weight) => (this.held -= weight));

  /** `capacity`: the total weight held at most (Infinity: unbounded). */
  constructor(readonly capacity: number) {}

  get(key: K): V | undefined {
    return this.map.get(key);
  }

  /** Keeps `value` for `key` if it fits (a key already held is updated); returns whether it is held. */
  set(key: K, value: V, weight: number): boolean {
    if (this.map.has(key)) {
      this.map.set(key, value);
      return true;
    }
    if (this.held + weight > this.capacity) return false;
    this.map.set(key, value);
    this.held += weight;
    this.released.register(key, weight);
    return true;
  }

  /** Total weight held now. */
  get weight(): number {
    return this.held;
  }
}

/**
 * What each of the benchmarks' per-prompt memos (the engines' prompt block hashes, the virtual
 * router's request keys) holds at most, in bytes of what it keeps alive (each memo weighs its
 * entries by an estimate of their size): ~100 MB per memo.
 */
export const PROMPT_MEMO_BYTES = 100_000_000;
