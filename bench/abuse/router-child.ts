// The router under attack, in its own process so its event loop and RSS are its own: llm-d's
// precise profile (examples/embedded-precise.yaml, central KV events) in front of the simulated
// pods of bench/abuse/pods-child.ts, which run in another process.
// node --import tsx bench/abuse/router-child.ts <KV-event port> <PodsInfo JSON>
// Prints one JSON line (AbuseTarget + pid) on stdout when ready; logs go to stderr. Over the IPC
// channel, 'loop' answers (and restarts) this process's event-loop delay since the last ask.
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { pino } from 'pino';
import { EMBEDDED_CONFIG } from '../../src/gateway/embedded.js';
import { routerTokenizersFrom, startRouter } from '../../src/gateway/router.js';
import { KV_EVENTS_REPLAY_LABEL } from '../../src/scheduler/plugins/precise-prefix.js';
import { TokenizerRegistry } from '../../src/tokenize/index.js';
import type { PodsInfo } from './pods-child.js';
import type { AbuseTarget, LoopDelay } from './types.js';

// tsx turns source maps on; `kvrouter serve` runs dist/ without them. Left on, every error
// whose stack node formats (node:http aborts each pipelined request of a closed connection)
// pays a source-map lookup the router does not pay in production.
process.setSourceMapsEnabled(false);
const [zmqPort, podsJson] = process.argv.slice(2);
const info = JSON.parse(podsJson) as PodsInfo;
const logger = pino({ level: process.env.ABUSE_LOG_LEVEL ?? 'warn', base: { name: 'kvrouter' } }, pino.destination(2));
const tokReg = await TokenizerRegistry.create({});
const router = await startRouter({
  configPath: EMBEDDED_CONFIG,
  port: 0,
  logger,
  zmqEndpoint: `tcp://127.0.0.1:${zmqPort}`,
  tokenizers: await routerTokenizersFrom(tokReg, false),
  endpoints: info.pods.map((p, i) => ({
    address: p.address,
    name: `sim-pod-${i}`,
    labels: { 'llm-d.ai/role': 'decode', ...(p.replayEndpoint ? { [KV_EVENTS_REPLAY_LABEL]: p.replayEndpoint } : {}) },
  })),
});
await router.warmTokenizer(info.model);
await router.pool.waitReady(info.pods.length, 60_000);
// 1 ms resolution: the delay of timers behind whatever holds the loop (decode, ingest, GC)
const loop = monitorEventLoopDelay({ resolution: 1 });
loop.enable();
const cpu0 = { at: performance.now(), usage: process.cpuUsage() };
// garbage-collection pauses (they hold the loop like any other work)
const gc = { ms: 0, max: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gc.ms += e.duration;
    gc.max = Math.max(gc.max, e.duration);
  }
}).observe({ entryTypes: ['gc'] });
// The wall-clock delay above includes the time the OS ran other processes (a loaded shared
// machine). The main thread's own run time between two 1 ms ticks (Linux schedstat, ns) is the
// part of a stall this process caused: its "hold".
const schedstat = `/proc/${process.pid}/task/${process.pid}/schedstat`;
const runNs = (): number => {
  try {
    return Number(readFileSync(schedstat, 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
};
let holds: number[] = [];
let lastRun = runNs();
const tick = () => {
  const now = runNs();
  if (holds.length < 200_000) holds.push((now - lastRun) / 1e6);
  lastRun = now;
  setTimeout(tick, 1).unref();
};
if (Number.isFinite(lastRun)) setTimeout(tick, 1).unref();
const pct = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.floor((p / 100) * v.length))];
};
process.on('message', (m) => {
  if (m !== 'loop') return;
  const ms = (ns: number) => ns / 1e6;
  const usage = process.cpuUsage(cpu0.usage);
  const now = performance.now();
  const answer: LoopDelay = { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max), cpu: (usage.user + usage.system) / 1000 / (now - cpu0.at), gcShare: gc.ms / (now - cpu0.at), gcMax: gc.max, holdP99: pct(holds, 99), holdMax: pct(holds, 100) };
  holds = [];
  loop.reset();
  gc.ms = 0;
  gc.max = 0;
  cpu0.at = now;
  cpu0.usage = process.cpuUsage();
  process.send?.(answer);
});
const zmqEndpoint = (router.kvIndex?.eventsEndpoint ?? '').replace('0.0.0.0', '127.0.0.1').replace('*', '127.0.0.1');
const target: AbuseTarget & { pid: number } = { routerUrl: router.url, zmqEndpoint, model: info.model, pods: info.pods.map((p) => p.address), pid: process.pid };
process.stdout.write(`${JSON.stringify(target)}\n`);
process.once('SIGTERM', () => {
  void router
    .close()
    .then(() => tokReg.close())
    .finally(() => process.exit(0));
});
