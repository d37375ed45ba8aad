// Progress on stderr: a redrawn bar on a TTY, plain lines (at most one every few seconds and at
// every stage end) otherwise, so CI logs stay readable.

export interface ProgressState {
  strategy: string;
  strategyIndex: number;
  strategies: number;
  stage: number;
  stages: number;
  rate: number;
  sent: number;
  done: number;
  total: number;
  errors: number;
  inflight: number;
}

export class Progress {
  private last = 0;
  private readonly tty: boolean;
  private width = 0;

  constructor(
    private readonly out: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean } = process.stderr,
    private readonly quiet = false,
    private readonly plainIntervalMs = 5000,
  ) {
    this.tty = !!(out as { isTTY?: boolean }).isTTY && !process.env.CI;
  }

  private line(s: ProgressState): string {
    const frac = s.total ? s.done / s.total : 0;
    const n = 24;
    const filled = Math.round(frac * n);
    const bar = '#'.repeat(filled) + '-'.repeat(n - filled);
    return (
      `[${s.strategyIndex + 1}/${s.strategies} ${s.strategy}] stage ${s.stage + 1}/${s.stages} @ ${s.rate} qps ` +
      `[${bar}] ${s.done}/${s.total} done, ${s.inflight} in flight, ${s.errors} err`
    );
  }

  update(s: ProgressState, force = false): void {
    if (this.quiet) return;
    const now = Date.now();
    if (this.tty) {
      if (!force && now - this.last < 100) return;
      this.last = now;
      const text = this.line(s);
      this.out.write('\r' + text.padEnd(this.width) );
      this.width = text.length;
    } else if (force || now - this.last >= this.plainIntervalMs) {
      this.last = now;
      this.out.write(this.line(s) + '\n');
    }
  }

  log(msg: string): void {
    if (this.quiet) return;
    if (this.tty && this.width) {
      this.out.write('\r' + ' '.repeat(this.width) + '\r');
      this.width = 0;
    }
    this.out.write(msg + '\n');
  }

  end(): void {
    if (this.tty && this.width && !this.quiet) this.out.write('\n');
    this.width = 0;
  }
}
