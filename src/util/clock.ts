// The router's notion of time. Everything in router code that reads time or sets timers takes a
// `Clock` (default `realClock`), so tests can step time by hand and the virtual-time benchmark
// can run the real router logic on a simulated clock. Times are milliseconds.

/** A timer handle; opaque to callers. */
export interface ClockTimer {
  /** Lets the process exit while this timer is pending (real clock); a no-op elsewhere. */
  unref(): ClockTimer;
}

export interface Clock {
  /** Monotonic time in milliseconds (origin unspecified; only differences mean anything). */
  now(): number;
  setTimeout(fn: () => void, ms: number): ClockTimer;
  clearTimeout(t: ClockTimer | null | undefined): void;
  setInterval(fn: () => void, ms: number): ClockTimer;
  clearInterval(t: ClockTimer | null | undefined): void;
}

/** Wall time through performance.now() and Node's timers. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout | undefined),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (t) => clearInterval(t as NodeJS.Timeout | undefined),
};

interface ManualTimer extends ClockTimer {
  at: number;
  seq: number;
  every: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * Time that moves only when told to: `advance(ms)` runs every timer due by then, in time order
 * (ties in creation order). For tests and the virtual-time benchmark.
 */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: ManualTimer[] = [];

  constructor(startMs = 0) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): ClockTimer {
    return this.add(fn, ms, 0);
  }

  setInterval(fn: () => void, ms: number): ClockTimer {
    return this.add(fn, ms, Math.max(1e-6, ms));
  }

  clearTimeout(t: ClockTimer | null | undefined): void {
    if (t) (t as ManualTimer).cancelled = true;
  }

  clearInterval(t: ClockTimer | null | undefined): void {
    this.clearTimeout(t);
  }

  /** Pending (not cancelled) timers. */
  get pending(): number {
    return this.timers.filter((x) => !x.cancelled).length;
  }

  /** Time of the next pending timer, or Infinity. */
  nextAt(): number {
    let best = Infinity;
    for (const x of this.timers) if (!x.cancelled && x.at < best) best = x.at;
    return best;
  }

  /** Moves time forward by `ms`, firing due timers in order; returns how many fired. */
  advance(ms: number): number {
    return this.advanceTo(this.t + Math.max(0, ms));
  }

  /** Moves time to `until` (never backwards), firing due timers in order. */
  advanceTo(until: number): number {
    let fired = 0;
    for (;;) {
      const next = this.popDue(until);
      if (next === undefined) break;
      this.t = Math.max(this.t, next.at);
      if (next.every > 0) {
        next.at = this.t + next.every;
        this.timers.push(next);
      }
      fired++;
      next.fn();
    }
    if (until > this.t) this.t = until;
    return fired;
  }

  private add(fn: () => void, ms: number, every: number): ClockTimer {
    const timer: ManualTimer = {
      at: this.t + Math.max(0, Number.isFinite(ms) ? ms : 0),
      seq: this.seq++,
      every,
      fn,
      cancelled: false,
      unref: () => timer,
    };
    this.timers.push(timer);
    return timer;
  }

  private popDue(until: number): ManualTimer | undefined {
    let best = -1;
    for (let i = 0; i < this.timers.length; i++) {
      const x = this.timers[i];
      if (x.cancelled || x.at > until) continue;
      if (best < 0 || x.at < this.timers[best].at || (x.at === this.timers[best].at && x.seq < this.timers[best].seq)) best = i;
    }
    if (best < 0) {
      this.timers = this.timers.filter((x) => !x.cancelled);
      return undefined;
    }
    const [next] = this.timers.splice(best, 1);
    return next;
  }
}
