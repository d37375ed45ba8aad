// Keeps KV-event ingest from holding the event loop: work runs in slices of `sliceMs`, and
// between slices the ingest yields with setImmediate so HTTP (poll phase) runs. Every stream
// and the receive loop share one budget, so however many streams are busy, one loop turn
// spends about one slice on events. The clock only measures the slice; a ManualClock that
// does not move never yields (tests that do not care about latency).
import { realClock, type Clock } from '../util/clock.js';

export const DEFAULT_SLICE_MS = 4;

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

  /** Call between units of work: returns at once within a slice, after a loop turn once it is spent. */
  async yieldIfSpent(): Promise<void> {
    while (this.clock.now() - this.sliceStart >= this.sliceMs) {
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
      await this.pending;
    }
  }
}
