// The virtual runner's one discrete-event loop: a binary heap of timers in model milliseconds
// that is at once the router's `Clock` (src/util/clock.ts) and the simulated engines'
// `SimClock` (seconds), so router timers, engine steps, KV-event deliveries, scrapes and client
// arrivals all interleave on one time line. Time jumps from one timer to the next.
//
// The router's decision path is asynchronous (promises, no I/O). A timer callback that returns
// a promise is settled before time moves on, so everything a callback starts at model time t
// completes at t, in the same order on every run: the loop is deterministic.
import type { Clock, ClockTimer } from '../../util/clock.js';
import type { SimClock, Timer as SimTimer } from '../../sim/clock.js';

/** What a timer's time went to (CPU accounting of the virtual run). */
/** `bench`: the benchmark's own probes (heap samples), not part of the simulation. */
export type Category = 'engine' | 'events' | 'scheduler' | 'scrape' | 'client' | 'router' | 'bench';

interface Entry extends ClockTimer {
  at: number;
  seq: number;
  every: number;
  fn: () => unknown;
  cancelled: boolean;
  cat: Category;
}

function less(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

function unrefSelf(this: Entry): ClockTimer {
  return this;
}

export interface LoopStats {
  timers: number;
  /** Wall ms spent in each category's callbacks (including the promises they returned). */
  cpuMs: Record<Category, number>;
}

export class VirtualEventLoop implements Clock {
  private t = 0;
  private seq = 0;
  private heap: Entry[] = [];
  private running = false;
  /** Measure wall time per callback category (two performance.now() calls per timer). */
  profile = false;
  readonly stats: LoopStats = { timers: 0, cpuMs: { engine: 0, events: 0, scheduler: 0, scrape: 0, client: 0, router: 0, bench: 0 } };
  /** The engines' view of the same clock: seconds, `at` absolute. */
  readonly sim: SimClock;

  constructor() {
    this.sim = {
      now: () => this.t / 1000,
      at: (at: number, fn: () => void) => this.push(at * 1000, 0, fn, 'engine') as unknown as SimTimer,
      cancel: (timer: SimTimer) => {
        (timer as unknown as Entry).cancelled = true;
      },
    };
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => unknown, ms: number): ClockTimer {
    return this.push(this.t + (ms > 0 ? ms : 0), 0, fn, 'router');
  }

  setInterval(fn: () => unknown, ms: number): ClockTimer {
    const every = ms > 1e-6 ? ms : 1e-6;
    return this.push(this.t + every, every, fn, 'router');
  }

  clearTimeout(timer: ClockTimer | null | undefined): void {
    if (timer) (timer as Entry).cancelled = true;
  }

  clearInterval(timer: ClockTimer | null | undefined): void {
    this.clearTimeout(timer);
  }

  /** Runs `fn` at model time `atMs` (never earlier than now), accounted to `cat`. */
  at(atMs: number, fn: () => unknown, cat: Category): ClockTimer {
    return this.push(atMs, 0, fn, cat);
  }

  /** Runs `fn` every `everyMs` from `firstMs`, accounted to `cat`. */
  every(firstMs: number, everyMs: number, fn: () => unknown, cat: Category): ClockTimer {
    return this.push(firstMs, everyMs, fn, cat);
  }

  get pending(): number {
    return this.heap.length;
  }

  private push(at: number, every: number, fn: () => unknown, cat: Category): Entry {
    const e: Entry = { at: at > this.t ? at : this.t, seq: this.seq++, every, fn, cancelled: false, cat, unref: unrefSelf };
    this.insert(e);
    return e;
  }

  private insert(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(e, h[p])) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = e;
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined) return undefined;
    if (h.length > 0) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const m = r < n && less(h[r], h[l]) ? r : l;
        if (!less(h[m], last)) break;
        h[i] = h[m];
        i = m;
      }
      h[i] = last;
    }
    return top;
  }

  /**
   * Runs timers in time order until none is due at or before `untilMs` or `stop()` returns
   * true (checked after every timer). Returns the number of timers fired.
   */
  async run(untilMs = Infinity, stop?: () => boolean): Promise<number> {
    if (this.running) throw new Error('the virtual event loop is already running');
    this.running = true;
    let fired = 0;
    const cpu = this.stats.cpuMs;
    try {
      for (;;) {
        const top = this.heap[0];
        if (top === undefined || top.at > untilMs) break;
        this.pop();
        if (top.cancelled) continue;
        this.t = top.at;
        if (top.every > 0) {
          top.at = this.t + top.every;
          top.seq = this.seq++;
          this.insert(top);
        }
        fired++;
        const t0 = this.profile ? performance.now() : 0;
        const r = top.fn();
        if (r !== undefined && typeof (r as Promise<unknown>).then === 'function') await r;
        if (this.profile) cpu[top.cat] += performance.now() - t0;
        if (stop?.()) break;
      }
      if (untilMs !== Infinity && untilMs > this.t && !stop?.()) this.t = untilMs;
    } finally {
      this.running = false;
      this.stats.timers += fired;
    }
    return fired;
  }
}
