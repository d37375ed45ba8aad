// Speculative entries' time to live, shared by every index backend: a queue of pending items
// sorted by due time and one timer armed for the earliest. The backend says what expiring an
// item means (memory: drop its references; Redis: the server removes them, the backend sweeps).
//
// Expiry advances a head index (compacting now and then) instead of splicing the front off:
// with thousands of items within the TTL, every splice moved them all (~30 us per request at
// 10k items).
import { realClock, type Clock, type ClockTimer } from '../util/clock.js';

export interface SpeculativeTtlOptions<T> {
  /** Default realClock. */
  clock?: Clock;
  /** Called once per expired item, oldest first. */
  expire(item: T): void;
  /** Runs after each timer-driven expiry; the next timer is armed once its promise settles. */
  afterTimer?(): Promise<unknown> | void;
  /** Timer fires this long after the due time, so the item is due when it runs. Default 1 ms. */
  slackMs?: number;
  /** Items beyond this many pending are not queued (the backend must expire them some other way). */
  maxPending?: number;
}

export class SpeculativeTtl<T> {
  private readonly clock: Clock;
  private dues: number[] = [];
  private items: (T | undefined)[] = [];
  private head = 0;
  private timer: ClockTimer | null = null;
  private timerDue = Infinity;
  private closed = false;

  constructor(private readonly o: SpeculativeTtlOptions<T>) {
    this.clock = o.clock ?? realClock;
  }

  /** Items queued and not yet expired. */
  get pending(): number {
    return this.dues.length - this.head;
  }

  /** Queues `item` to expire `ttlMs` from now. */
  add(item: T, ttlMs: number): void {
    if (this.closed || this.pending >= (this.o.maxPending ?? Infinity)) return;
    const due = this.clock.now() + Math.max(0, ttlMs);
    // keep the queue sorted by due time (usually a plain append: one TTL for everything)
    const { dues, items } = this;
    let i = dues.length;
    while (i > this.head && dues[i - 1] > due) i--;
    if (i === dues.length) {
      dues.push(due);
      items.push(item);
    } else {
      dues.splice(i, 0, due);
      items.splice(i, 0, item);
    }
    this.arm();
  }

  /** Whether the oldest item is due (a cheap check before a lookup). */
  hasDue(): boolean {
    return this.head < this.dues.length && this.dues[this.head] <= this.clock.now();
  }

  /** Expires every due item now; returns how many. */
  expireDue(): number {
    const now = this.clock.now();
    const { dues, items } = this;
    const from = this.head;
    let n = from;
    while (n < dues.length && dues[n] <= now) n++;
    if (n === from) return 0;
    for (let j = from; j < n; j++) {
      const item = items[j] as T;
      items[j] = undefined; // the queue lets go of the item now
      this.o.expire(item);
    }
    if (n === dues.length) {
      this.dues = [];
      this.items = [];
      this.head = 0;
    } else if (n > 1024 && n * 2 > dues.length) {
      this.dues = dues.slice(n);
      this.items = items.slice(n);
      this.head = 0;
    } else this.head = n;
    return n - from;
  }

  private arm(): void {
    if (this.closed || this.head === this.dues.length) return;
    const due = this.dues[this.head];
    if (this.timer && this.timerDue <= due) return;
    this.clock.clearTimeout(this.timer);
    this.timerDue = due;
    this.timer = this.clock
      .setTimeout(() => {
        this.timer = null;
        this.timerDue = Infinity;
        this.expireDue();
        const after = this.o.afterTimer?.();
        if (after) void after.then(() => this.arm(), () => this.arm());
        else this.arm();
      }, Math.max(0, due - this.clock.now()) + (this.o.slackMs ?? 1))
      .unref();
  }

  /** Drops every pending item and the timer. */
  close(): void {
    this.closed = true;
    this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.dues = [];
    this.items = [];
    this.head = 0;
  }
}
