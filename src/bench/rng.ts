// Seeded pseudo-random numbers so every strategy sees the same request sequence.
// splitmix32 for seeding, sfc32 for the stream: fast, tiny state, good statistics.

/** A 32-bit hash of a string or number list, used to derive independent sub-seeds. */
export function hashSeed(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    const s = String(p);
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0x2c; // separator so ("ab","c") differs from ("a","bc")
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number | string) {
    let s = typeof seed === 'string' ? hashSeed(seed) : seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }

  /** Exponential with the given rate (mean 1/rate). */
  exponential(rate: number): number {
    return -Math.log(1 - this.next()) / rate;
  }

  /** Standard normal (Box-Muller). */
  normal(mean = 0, std = 1): number {
    const u = 1 - this.next();
    const v = this.next();
    return mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length)];
  }

  /** Fisher-Yates in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}

/** Token ids drawn from a range that avoids the special tokens of common vocabularies. */
export const TOKEN_ID_MIN = 1000;
export const TOKEN_ID_MAX = 150_000;

/** `n` deterministic pseudo-random token ids for a given seed. */
export function randomTokens(seed: number | string, n: number): number[] {
  const rng = new Rng(seed);
  // Pushed, not `new Array(n)`: a packed array (no holes) is what every reader reads fastest.
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(rng.int(TOKEN_ID_MIN, TOKEN_ID_MAX));
  return out;
}

/** The same ids as randomTokens(seed, n), written into `out` from `at`. */
export function randomTokensInto(seed: number | string, n: number, out: Uint32Array, at: number): void {
  const rng = new Rng(seed);
  for (let i = 0; i < n; i++) out[at + i] = rng.int(TOKEN_ID_MIN, TOKEN_ID_MAX);
}

/**
 * Token-id arrays joined into one prompt. Prompts are Uint32Arrays: the router takes token ids
 * as a Uint32Array (what its body parser packs), so the client sends the prompt as it is instead
 * of a copy per request, and a pool of thousands of long prompts lives outside the JS heap
 * (4 bytes per token, nothing for the garbage collector to scan or copy).
 */
export function joinTokens(...parts: ArrayLike<number>[]): Uint32Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint32Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
