// The long-running commands (serve, epp, sim) stop on SIGINT or SIGTERM. The listeners go in before
// anything starts: a health check can pass while startup still runs, and a signal then must stop
// the process cleanly once started instead of killing it.

/** Resolves with the name of the first SIGINT or SIGTERM received from now on. */
export function stopSignal(): Promise<'SIGINT' | 'SIGTERM'> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}
