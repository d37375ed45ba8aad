// Model-time clocks. Every pod of a SimHost shares one clock and one timer: a binary heap of
// wake-ups in model seconds, so 8+ pods cost one setTimeout, not one per pod per step.

export interface SimClock {
  /** Model time in seconds. */
  now(): number;
  /** Runs `fn` at model time `at` (or as soon as possible if already past). */
  at(at: number, fn: () => void): Timer;
  cancel(t: Timer): void;
}

export interface Timer {
  at: number;
  fn: () => void;
  seq: number;
  cancelled: boolean;
}

class TimerHeap {
  private heap: Timer[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  peek(): Timer | undefined {
    return this.heap[0];
  }

  push(at: number, fn: () => void): Timer {
    const t: Timer = { at, fn, seq: this.seq++, cancelled: false };
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
    return t;
  }

  pop(): Timer | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop() as Timer;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l], h[m])) m = l;
        if (r < h.length && less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

function less(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * Wall-clock driven model time: model seconds = wall seconds / timeScale. A timer that fires
 * late runs late (model time is never rewound); `lagSeconds` accumulates how late, in model time.
 */
export class RealClock implements SimClock {
  readonly timeScale: number;
  private readonly t0 = performance.now();
  private readonly heap = new TimerHeap();
  private handle: NodeJS.Timeout | null = null;
  private armedAt = Infinity;
  private closed = false;
  /** Total lateness of fired timers, model seconds (simulator falling behind). */
  lagSeconds = 0;
  firedTimers = 0;

  constructor(timeScale = 1) {
    if (!(timeScale > 0)) throw new Error('timeScale must be > 0');
    this.timeScale = timeScale;
  }

  now(): number {
    return (performance.now() - this.t0) / 1000 / this.timeScale;
  }

  at(at: number, fn: () => void): Timer {
    const t = this.heap.push(at, fn);
    if (at < this.armedAt) this.arm();
    return t;
  }

  cancel(t: Timer): void {
    t.cancelled = true;
  }

  private arm(): void {
    if (this.closed) return;
    const top = this.heap.peek();
    if (this.handle !== null) clearTimeout(this.handle);
    this.handle = null;
    this.armedAt = Infinity;
    if (top === undefined) return;
    this.armedAt = top.at;
    const delayMs = Math.max(0, (top.at - this.now()) * this.timeScale * 1000);
    this.handle = setTimeout(() => this.fire(), delayMs);
  }

  private fire(): void {
    this.handle = null;
    this.armedAt = Infinity;
    // Run everything due; timers added while running that are already due run in this pass.
    for (;;) {
      const top = this.heap.peek();
      if (top === undefined) break;
      const now = this.now();
      if (top.at > now + 0.0005 / this.timeScale) break;
      this.heap.pop();
      if (top.cancelled) continue;
      this.lagSeconds += Math.max(0, now - top.at);
      this.firedTimers++;
      top.fn();
    }
    this.arm();
  }

  close(): void {
    this.closed = true;
    if (this.handle !== null) clearTimeout(this.handle);
    this.handle = null;
  }
}

/**
 * Discrete-event model time for benchmarks and deterministic tests: time jumps to the next
 * timer. `runUntil` executes timers in order; nothing happens between calls.
 */
export class VirtualClock implements SimClock {
  private t = 0;
  private readonly heap = new TimerHeap();

  now(): number {
    return this.t;
  }

  at(at: number, fn: () => void): Timer {
    return this.heap.push(Math.max(at, this.t), fn);
  }

  cancel(t: Timer): void {
    t.cancelled = true;
  }

  /** Runs timers due up to model time `until` (Infinity: until none remain), returns the count. */
  runUntil(until = Infinity, maxTimers = Infinity): number {
    let n = 0;
    for (;;) {
      const top = this.heap.peek();
      if (top === undefined || top.at > until || n >= maxTimers) break;
      this.heap.pop();
      if (top.cancelled) continue;
      this.t = top.at;
      n++;
      top.fn();
    }
    if (until !== Infinity && until > this.t && (this.heap.peek()?.at ?? Infinity) > until) this.t = until;
    return n;
  }

  get pending(): number {
    return this.heap.size;
  }
}
