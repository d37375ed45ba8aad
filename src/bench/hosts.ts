// Harness implementations: simulated pods in a child process (their own core) or in-process,
// and the kvrouter gateway in-process, started per strategy.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Harness, PodsHandle, RouterHandle, RouterTiming, SimSpec } from './harness.js';
import { startRouter } from '../gateway/router.js';
import { simPodOptions } from './sim-options.js';
import { registerBenchPlugins } from './peers/index.js';

export async function startRouterInProcess(
  configYaml: string,
  endpoints: { address: string; labels: Record<string, string> }[],
  timing: RouterTiming = {},
): Promise<RouterHandle> {
  registerBenchPlugins();
  const r = await startRouter({
    config: configYaml, endpoints, port: 0, host: '127.0.0.1', logLevel: 'warn', processMetrics: false,
    scrapeIntervalMs: timing.scrapeIntervalMs, unhealthyAfterMs: timing.unhealthyAfterMs,
  });
  return {
    url: r.url,
    addEndpoint: (address) => void r.pool.add({ address, labels: {} }),
    removeEndpoint: (address) => r.pool.remove(address),
    close: () => r.close(),
  };
}

class ChildPods implements PodsHandle {
  private waiters: ((m: Record<string, unknown>) => void)[] = [];
  constructor(
    private readonly child: ChildProcess,
    readonly urls: string[],
    readonly addresses: string[],
  ) {
    child.on('message', (m) => this.waiters.shift()?.(m as Record<string, unknown>));
  }
  async lag(): Promise<{ seconds: number; timers: number } | undefined> {
    if (!this.child.connected) return undefined;
    const reply = new Promise<Record<string, unknown>>((resolve) => this.waiters.push(resolve));
    this.child.send({ cmd: 'lag' });
    const m = await Promise.race([reply, new Promise<Record<string, unknown>>((r) => setTimeout(() => r({}), 5000))]);
    return typeof m.lag === 'number' && typeof m.timers === 'number' ? { seconds: m.lag, timers: m.timers } : undefined;
  }
  private async ask(msg: Record<string, unknown>, timeoutMs: number): Promise<Record<string, unknown>> {
    if (!this.child.connected) throw new Error('the simulator process is gone');
    const reply = new Promise<Record<string, unknown>>((resolve) => this.waiters.push(resolve));
    this.child.send(msg);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Record<string, unknown>>((_r, reject) => {
      timer = setTimeout(() => reject(new Error(`simulator did not answer ${String(msg.cmd)} in ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([reply, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
  async kill(i: number): Promise<void> {
    const m = await this.ask({ cmd: 'kill', pod: i }, 30_000);
    if (m.ok !== true) throw new Error(String(m.error));
  }
  async restart(i: number): Promise<void> {
    const m = await this.ask({ cmd: 'restart', pod: i }, 30_000);
    if (m.ok !== true) throw new Error(String(m.error));
  }
  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    if (this.child.connected) this.child.send({ cmd: 'close' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

export async function startPodsInChild(spec: SimSpec): Promise<PodsHandle> {
  const entry = fileURLToPath(new URL('./sim-child.ts', import.meta.url));
  const child = fork(entry, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const first = await new Promise<Record<string, unknown>>((resolve, reject) => {
    child.once('message', (m) => resolve(m as Record<string, unknown>));
    child.once('exit', (code) => reject(new Error(`simulator process exited (${code}) before starting`)));
    child.once('error', reject);
    child.send({ cmd: 'start', spec });
  });
  if (first.ok !== true) {
    child.kill('SIGKILL');
    throw new Error(`simulator failed to start: ${String(first.error)}`);
  }
  return new ChildPods(child, first.urls as string[], first.addresses as string[]);
}

export async function startPodsInProcess(spec: SimSpec): Promise<PodsHandle> {
  const { SimHost, RealClock } = await import('../sim/index.js');
  const host = await SimHost.start(simPodOptions(spec));
  return {
    urls: host.pods.map((p) => p.url),
    addresses: host.pods.map((p) => p.podId),
    lag: async () => (host.clock instanceof RealClock ? { seconds: host.clock.lagSeconds, timers: host.clock.firedTimers } : undefined),
    kill: (i) => host.pods[i].kill(),
    restart: (i) => host.pods[i].restart(),
    close: () => host.close(),
  };
}

/** Default harness: pods in a child process, router in this one. */
export function defaultHarness(opts: { inProcessPods?: boolean } = {}): Harness {
  return {
    startPods: opts.inProcessPods ? startPodsInProcess : startPodsInChild,
    startRouter: startRouterInProcess,
  };
}
