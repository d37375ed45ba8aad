// A request's token sequence: the caller's prompt array shared (never copied; callers must not
// mutate it after submit), then the generated tokens in a growable Uint32Array. A benchmark sends
// the same long prompts thousands of times; copying each into a growing number[] made those
// copies most of the engine's memory and GC work.

/** Prompt token ids as a caller hands them over: a JSON body's array, or a benchmark's Uint32Array. */
export type PromptTokens = readonly number[] | Uint32Array;

export class TokenSeq {
  readonly prompt: PromptTokens;
  /** prompt.length, kept here so the per-token path does not touch the prompt array. */
  readonly promptLen: number;
  /** Generated token ids; valid up to `outputLen`. */
  output: Uint32Array;
  /**
   * Where the number of generated tokens lives: the engine's request (its outputCount, so a
   * decode step updates one counter, not two objects), or this sequence's own.
   */
  private counter: { outputCount: number };

  /**
   * `output`: where to keep generated tokens (the engine passes a region of its output arena);
   * `counter`: an outputCount its owner advances (then tokens are written with store()).
   */
  constructor(prompt: PromptTokens, expectedOutput: number, output?: Uint32Array, counter?: { outputCount: number }) {
    this.prompt = prompt;
    this.promptLen = prompt.length;
    this.output = output ?? new Uint32Array(Math.max(1, Math.min(expectedOutput, 1 << 16)));
    this.counter = counter ?? { outputCount: 0 };
  }

  /**
   * The owner is done with the sequence: it keeps its own count from now on. A finished
   * request's cached blocks keep its sequence (the pool reads their tokens back), and through an
   * owner's counter they kept the whole request and everything its callbacks hold: most of what
   * a 256-pod run's heap grew by.
   */
  detach(): void {
    this.counter = { outputCount: this.counter.outputCount };
  }

  get outputLen(): number {
    return this.counter.outputCount;
  }

  /** Moves the generated tokens into an array of their own (the engine reuses its arena region). */
  own(): void {
    const own = new Uint32Array(Math.max(1, this.outputLen));
    own.set(this.output.subarray(0, this.outputLen));
    this.output = own;
  }

  get length(): number {
    return this.promptLen + this.outputLen;
  }

  at(i: number): number {
    const p = this.promptLen;
    return i < p ? this.prompt[i] : this.output[i - p];
  }

  /** Appends a token (a sequence that counts its own tokens). */
  push(token: number): void {
    const n = this.counter.outputCount;
    this.store(n, token);
    this.counter.outputCount = n + 1;
  }

  /** Writes output token `i`, growing the array if needed (the counter is advanced by its owner). */
  store(i: number, token: number): void {
    if (i >= this.output.length) {
      const grown = new Uint32Array(Math.max(i + 1, this.output.length * 2));
      grown.set(this.output);
      this.output = grown;
    }
    this.output[i] = token;
  }

  /** Tokens [from, to) as a new array. */
  slice(from: number, to: number): number[] {
    const out = new Array<number>(to - from);
    const p = this.promptLen;
    for (let i = from; i < to; i++) out[i - from] = i < p ? this.prompt[i] : this.output[i - p];
    return out;
  }

  /**
   * Tokens [from, to) as (array, offset) without copying when the range lies within the prompt
   * or within the output; a range across the boundary is copied.
   */
  range(from: number, to: number): { tokens: ArrayLike<number>; start: number } {
    const p = this.promptLen;
    if (to <= p) return { tokens: this.prompt, start: from };
    if (from >= p) return { tokens: this.output, start: from - p };
    return { tokens: this.slice(from, to), start: 0 };
  }
}
