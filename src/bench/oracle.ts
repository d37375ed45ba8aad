// The workload's upper bound: the prefix-cache hit rate an infinite cache would reach if every
// request went to one engine that had seen every earlier prompt. vLLM's hit rule: only full
// blocks count and at most floor((N-1)/B)*B prompt tokens come from cache. Only prompt blocks are
// credited (generated tokens are the engine's own and are not re-sent verbatim by our clients).
import type { BenchRequest } from './workloads/types.js';

/** Chained 52-bit block key: (parent, block tokens) -> number, collision-safe at bench scale. */
export function chainKey(parent: number, tokens: ArrayLike<number>, from: number, to: number): number {
  let h1 = (parent % 4294967296) ^ 0x9e3779b9;
  let h2 = Math.floor(parent / 4294967296) ^ 0x85ebca6b;
  for (let i = from; i < to; i++) {
    const t = tokens[i];
    h1 = Math.imul(h1 ^ t, 0x01000193);
    h2 = Math.imul(h2 ^ ((t * 2654435761) >>> 0), 0x5bd1e995);
    h1 ^= h1 >>> 15;
    h2 ^= h2 >>> 13;
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 0x85ebca6b) >>> 0;
  h2 = (Math.imul(h2 ^ (h2 >>> 16), 0xc2b2ae35) >>> 0) & 0xfffff;
  return h2 * 4294967296 + h1 + 1; // never 0
}

/**
 * The chain keys of a prompt's full blocks, computed once per prompt array: the offered and the
 * served oracle of every strategy walk the same workload arrays (never mutated once built).
 */
const chainKeyMemo = new WeakMap<ArrayLike<number>, { blockSize: number; keys: Float64Array }>();

function chainKeysOf(prompt: ArrayLike<number>, B: number): Float64Array {
  const full = Math.floor(prompt.length / B);
  const m = chainKeyMemo.get(prompt);
  if (m !== undefined && m.blockSize === B && m.keys.length === full) return m.keys;
  const keys = new Float64Array(full);
  let parent = 0;
  for (let b = 0; b < full; b++) parent = keys[b] = chainKey(parent, prompt, b * B, (b + 1) * B);
  chainKeyMemo.set(prompt, { blockSize: B, keys });
  return keys;
}

/** Tokens vLLM can serve from cache for a prompt of n tokens with `hitBlocks` cached blocks. */
export function cacheableTokens(n: number, hitBlocks: number, blockSize: number): number {
  const cap = Math.floor((n - 1) / blockSize) * blockSize;
  return Math.max(0, Math.min(hitBlocks * blockSize, cap));
}

export interface OracleResult {
  promptTokens: number;
  cachedTokens: number;
  hitRate: number;
  /** Per request, in sequence order. */
  perRequest: number[];
}

/**
 * A set of chain keys (positive integers below 2^53, never 0): open addressing with linear
 * probing in a Float64Array, 0 marking an empty slot. A Set<number> boxed each key above 2^31
 * into a heap number per lookup and per entry; an oracle walks every block of every new prompt.
 */
export class ChainKeySet {
  private table = new Float64Array(1 << 12);
  private mask = (1 << 12) - 1;
  size = 0;

  has(k: number): boolean {
    const t = this.table;
    // k >>> 0 is k mod 2^32 (chainKey's low word, already mixed).
    for (let i = (k >>> 0) & this.mask; ; i = (i + 1) & this.mask) {
      const x = t[i];
      if (x === k) return true;
      if (x === 0) return false;
    }
  }

  add(k: number): void {
    if (!(k > 0 && Number.isSafeInteger(k))) throw new RangeError(`oracle: a chain key is a positive safe integer (got ${k})`);
    if (2 * (this.size + 1) > this.table.length) this.grow();
    const t = this.table;
    for (let i = (k >>> 0) & this.mask; ; i = (i + 1) & this.mask) {
      const x = t[i];
      if (x === k) return;
      if (x === 0) {
        t[i] = k;
        this.size++;
        return;
      }
    }
  }

  private grow(): void {
    const old = this.table;
    this.table = new Float64Array(old.length * 2);
    this.mask = this.table.length - 1;
    this.size = 0;
    for (const k of old) if (k !== 0) this.add(k);
  }
}

export class PrefixOracle {
  private seen = new ChainKeySet();
  /**
   * Prompt arrays observed before: every block key of theirs is in `seen` (observe adds the ones
   * that were not, and keys are never removed), so a repeat hits all its full blocks without a
   * walk over them. A run re-sends a pool of prompts thousands of times.
   */
  private observed = new WeakSet<ArrayLike<number>>();
  promptTokens = 0;
  cachedTokens = 0;
  constructor(readonly blockSize: number) {
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new Error('oracle: blockSize must be a positive integer');
  }

  /** Process one prompt (in arrival order); returns its cached tokens. */
  observe(prompt: ArrayLike<number>): number {
    const B = this.blockSize;
    let hit = 0;
    if (this.observed.has(prompt)) hit = Math.floor(prompt.length / B);
    else {
      const keys = chainKeysOf(prompt, B);
      let matching = true;
      for (let b = 0; b < keys.length; b++) {
        const k = keys[b];
        if (matching && this.seen.has(k)) hit++;
        else {
          matching = false;
          this.seen.add(k);
        }
      }
      this.observed.add(prompt);
    }
    const cached = cacheableTokens(prompt.length, hit, B);
    this.promptTokens += prompt.length;
    this.cachedTokens += cached;
    return cached;
  }

  get hitRate(): number {
    return this.promptTokens ? this.cachedTokens / this.promptTokens : 0;
  }

  /** Distinct full prompt blocks seen (the workload's resident set, in blocks). */
  get distinctBlocks(): number {
    return this.seen.size;
  }
}

export interface ServedRequest {
  prompt: ArrayLike<number>;
  stage: number;
  /** When it was actually sent (any monotonic unit); the oracle sees requests in this order. */
  sentAt: number;
  id: number;
}

/**
 * The oracle over exactly the requests that were served (answered 200 and completed), in the
 * order they were sent: requests refused (400 over max-model-len, shed, failed) neither add
 * cacheable blocks nor count, so the client's hit rate is comparable with it.
 */
export function servedOracle(served: ServedRequest[], blockSize: number, stages: number): { perStage: { prompt: number; cached: number }[] } {
  const o = new PrefixOracle(blockSize);
  const perStage = Array.from({ length: stages }, () => ({ prompt: 0, cached: 0 }));
  const order = served.slice().sort((a, b) => a.sentAt - b.sentAt || a.id - b.id);
  for (const r of order) {
    const c = o.observe(r.prompt);
    perStage[r.stage].prompt += r.prompt.length;
    perStage[r.stage].cached += c;
  }
  return { perStage };
}

/**
 * The oracle over the whole planned sequence (the offered load), in arrival order with the cache
 * carried across stages: per-stage prompt and cached tokens, and the oracle itself (its overall
 * hit rate and the workload's distinct blocks). Both runners use it.
 */
export function offeredOracle(planned: readonly { req: BenchRequest; stage: number }[], blockSize: number, stages: number): { oracle: PrefixOracle; perStage: { prompt: number; cached: number }[] } {
  const oracle = new PrefixOracle(blockSize);
  const perStage = Array.from({ length: stages }, () => ({ prompt: 0, cached: 0 }));
  for (const p of planned) {
    const cached = oracle.observe(p.req.prompt);
    perStage[p.stage].prompt += p.req.prompt.length;
    perStage[p.stage].cached += cached;
  }
  return { oracle, perStage };
}

export function oracleHitRate(requests: BenchRequest[], blockSize: number): OracleResult {
  const o = new PrefixOracle(blockSize);
  const perRequest = requests.map((r) => o.observe(r.prompt));
  return { promptTokens: o.promptTokens, cachedTokens: o.cachedTokens, hitRate: o.hitRate, perRequest };
}
