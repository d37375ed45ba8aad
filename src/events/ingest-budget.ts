// Keeps KV-event ingest from holding the event loop: work runs in slices of `sliceMs`, and
// between slices the ingest yields with setImmediate so HTTP (poll phase) runs. Every stream
// and the receive loop share one budget, so however many streams are busy, one loop turn
// spends about one slice on events. A unit of work that cannot be cut (decoding one message)
// is announced with its expected cost: when it would overrun the slice already under way, it
// starts the next one instead, so a turn holds max(slice, unit) rather than their sum. The
// clock only measures the slice; a ManualClock that does not move never yields (tests that do
// not care about latency).
import { realClock, type Clock } from '../util/clock.js';

export const DEFAULT_SLICE_MS = 2;

export class IngestBudget {
  private sliceStart: number;
  private pending: Promise<void> | null = null;
  /** Yields taken (diagnostics). */
  yields = 0;

  constructor(
    private readonly sliceMs = DEFAULT_SLICE_MS,
    private readonly clock: Clock = realClock,
  ) {
    this.sliceStart = clock.now();
  }

  /**
   * Call between units of work: returns at once within a slice, after a loop turn once it is
   * spent, or when the next unit (`nextCostMs`) would not fit in what is left of a started slice.
   */
  async yieldIfSpent(nextCostMs = 0): Promise<void> {
    if (!this.mustYield(nextCostMs)) return;
    await this.turn();
    // a turn can end with the slice already spent (a slow loop turn): take more until it is not
    while (this.clock.now() - this.sliceStart >= this.sliceMs) await this.turn();
  }

  /**
   * Whether yieldIfSpent(nextCostMs) would wait: the slice is spent, or the next unit would not
   * fit in what is left of a started one. A caller between small units skips the await when not.
   */
  mustYield(nextCostMs = 0): boolean {
    const spent = this.clock.now() - this.sliceStart;
    return spent >= this.sliceMs || (nextCostMs > 0 && spent > 0 && spent + nextCostMs > this.sliceMs);
  }

  private turn(): Promise<void> {
    if (!this.pending) {
      this.yields++;
      this.pending = new Promise<void>((resolve) =>
        setImmediate(() => {
          this.pending = null;
          this.sliceStart = this.clock.now();
          resolve();
        }),
      );
    }
    return this.pending;
  }
}

/** Learns what decoding costs per payload byte (moving average of measured decodes). */
export class DecodeCost {
  private msPerByte = 0;

  observe(bytes: number, ms: number): void {
    if (bytes < 4096 || !(ms >= 0)) return; // small payloads: timer noise
    const x = ms / bytes;
    this.msPerByte = this.msPerByte === 0 ? x : 0.8 * this.msPerByte + 0.2 * x;
  }

  estimateMs(bytes: number): number {
    return this.msPerByte * bytes;
  }
}
