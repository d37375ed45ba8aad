// npm run bench:abuse — does an attack on the router's ports hurt normal traffic? (issue 13)
// The router (llm-d's precise profile, central KV events) runs in its own process
// (bench/abuse/router-child.ts), its simulated pods in another (bench/abuse/pods-child.ts), so
// the figures are the router's alone; this process drives normal completions
// (closed loop, 2 in flight, shared-prefix prompts) and samples the router's RSS; each attack
// of bench/abuse/events-attacks.ts and bench/abuse/http-attacks.ts runs in a third process
// (attack-child.ts). Per attack: normal traffic's p50/p99, errors and the router's RSS
// before, during and after it; under each row, the router process's event-loop delay (wall
// clock: includes the time the OS ran other processes), its own run time between two 1 ms ticks
// ("hold": the part of a stall it caused), its CPU share and GC pauses; KV-event messages
// received, rejected and lost to seq gaps during the attack. The first row is the baseline (no
// attack) of the same run.
// Target: during the KV-event flood at the index's full ingest rate, HTTP p99 < 50 ms.
// BENCH_QUICK=1: short phases. ABUSE_ONLY=<name,...>: only these attacks. Every loop is bounded in time; a dead router is reported and
// restarted for the next attack.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { summarize } from '../src/bench/stats.js';
import type { AbuseTarget, Attack, LoopDelay } from './abuse/types.js';
import { eventsAttacks } from './abuse/events-attacks.js';
import { httpAttacks } from './abuse/http-attacks.js';
import type { PodsInfo } from './abuse/pods-child.js';

const QUICK = process.env.BENCH_QUICK === '1';
const PHASE = QUICK ? { before: 1500, during: 4000, after: 2000 } : { before: 4000, during: 15_000, after: 8000 };
const FLOOD = 'kv-store-flood';
const PODS = Number(process.env.ABUSE_PODS ?? 2);
/** ABUSE_ONLY=name,name: only these attacks (after the baseline). */
const ONLY = process.env.ABUSE_ONLY ? new Set(process.env.ABUSE_ONLY.split(',')) : null;
const FLOOD_P99_TARGET_MS = 50;
/** ABUSE_ROUTER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof": node flags for the router process (profiling). */
const ROUTER_NODE_ARGS = (process.env.ABUSE_ROUTER_NODE_ARGS ?? '').split(' ').filter(Boolean);
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

interface ChildProc<T> {
  child: ChildProcess;
  target: T;
  stderrTail: string[];
}
type RouterProc = ChildProc<AbuseTarget & { pid: number }>;

/** Spawns a child that prints one JSON line when ready. */
async function spawnReady<T>(script: string, args: string[], what: string, nodeArgs: string[] = []): Promise<ChildProc<T>> {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', here(script), ...args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const stderrTail: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => {
    stderrTail.push(l);
    if (stderrTail.length > 20) stderrTail.shift();
  });
  const line = await new Promise<string>((resolve, reject) => {
    // generous: on a loaded machine transpiling and loading the tokenizer takes a while
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} did not start within 180 s: ${stderrTail.join('\n')}`));
    }, 180_000);
    createInterface({ input: child.stdout! }).once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
    child.once('exit', (c) => reject(new Error(`${what} exited (${c}): ${stderrTail.join('\n')}`)));
  });
  return { child, target: JSON.parse(line) as T, stderrTail };
}

/** A free TCP port on loopback (for the router's KV-event socket, known to the pods before it binds). */
async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** The simulated pods: their own process, kept across router restarts (their publishers reconnect). */
let podsProc: ChildProc<PodsInfo> | null = null;
let zmqPort = 0;

async function startRouterProc(): Promise<RouterProc> {
  if (!podsProc) {
    zmqPort = await freePort();
    podsProc = await spawnReady<PodsInfo>('./abuse/pods-child.ts', [String(PODS), `tcp://127.0.0.1:${zmqPort}`], 'pods');
  }
  return spawnReady('./abuse/router-child.ts', [String(zmqPort), JSON.stringify(podsProc.target)], 'router', ROUTER_NODE_ARGS);
}

async function stop(c: ChildProc<unknown>): Promise<void> {
  c.child.kill('SIGTERM');
  await Promise.race([new Promise((res) => c.child.once('exit', res)), sleep(5000)]);
  if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
}

function alive(r: RouterProc): boolean {
  return r.child.exitCode === null && r.child.signalCode === null;
}

/** Resident set of a process in MB (Linux /proc). */
function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** The router's event-loop delay and CPU share since the last ask (router-child.ts, over IPC). */
async function loopDelay(r: RouterProc): Promise<LoopDelay | null> {
  if (!alive(r) || !r.child.connected) return null;
  return Promise.race([
    new Promise<LoopDelay>((res) => {
      r.child.once('message', (m) => res(m as LoopDelay));
      r.child.send('loop');
    }),
    sleep(5000).then(() => null),
  ]);
}

/** The router's counters a row reports (summed over their series; NaN when unreachable). */
const COUNTERS = {
  admitted: 'kvcache_index_admissions_total',
  rejected: 'kvcache_events_decode_errors_total',
  received: 'kvcache_events_messages_total',
  missed: 'kvcache_events_missed_batches_total',
} as const;
type Counters = Record<keyof typeof COUNTERS, number>;

async function counters(url: string): Promise<Counters> {
  const out = Object.fromEntries(Object.keys(COUNTERS).map((k) => [k, NaN])) as Counters;
  try {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    for (const [k, name] of Object.entries(COUNTERS) as [keyof Counters, string][]) {
      let sum = 0;
      for (const line of text.split('\n')) if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      out[k] = sum;
    }
  } catch {
    // unreachable: NaN
  }
  return out;
}

const PREFIX = 'You are a careful assistant. Answer in one short sentence and do not add anything else. '.repeat(4);

/** Closed-loop normal traffic; returns per-request latencies (ms) of requests started in [from, to). */
class Traffic {
  readonly samples: { at: number; ms: number; ok: boolean }[] = [];
  private running = true;
  private loops: Promise<void>[] = [];
  private readonly pool: Pool;

  constructor(private readonly r: RouterProc) {
    this.pool = new Pool(r.target.routerUrl, { connections: 4, headersTimeout: 10_000, bodyTimeout: 10_000 });
    for (let c = 0; c < 2; c++) this.loops.push(this.loop(c));
  }

  private async loop(c: number): Promise<void> {
    let i = 0;
    while (this.running) {
      const at = performance.now();
      let ok = false;
      try {
        const body = JSON.stringify({ model: this.r.target.model, prompt: `${PREFIX} Question ${c}-${i++ % 8}: what is ${i % 8} plus one?`, max_tokens: 2 });
        const res = await this.pool.request({ path: '/v1/completions', method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await res.body.text();
        ok = res.statusCode === 200;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
      this.samples.push({ at, ms: performance.now() - at, ok });
      if (this.samples.length > 200_000) this.samples.splice(0, 100_000);
    }
  }

  window(from: number, to: number): { p50: number; p99: number; n: number; errors: number } {
    const s = this.samples.filter((x) => x.at >= from && x.at < to);
    const sum = summarize(s.filter((x) => x.ok).map((x) => x.ms));
    return { p50: sum.p50, p99: sum.p99, n: s.length, errors: s.filter((x) => !x.ok).length };
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.race([Promise.all(this.loops), new Promise((r) => setTimeout(r, 12_000))]);
    await this.pool.destroy();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Row {
  attack: string;
  before: ReturnType<Traffic['window']>;
  during: ReturnType<Traffic['window']>;
  after: ReturnType<Traffic['window']>;
  /** The router process's event-loop delay and CPU share in each window. */
  loop: { before: LoopDelay | null; during: LoopDelay | null; after: LoopDelay | null };
  rssBefore: number;
  rssMaxDuring: number;
  rssAfter: number;
  up: boolean;
  /** Block keys the index admitted per second during the attack. */
  admittedPerSec: number;
  /** KV-event messages during the attack: received, rejected (decode errors), batches lost to seq gaps. */
  received: number;
  rejected: number;
  missed: number;
  note: string;
}

async function runAttack(r: RouterProc, list: 'events' | 'http' | null, attack: Attack | null): Promise<Row> {
  const traffic = new Traffic(r);
  const rssSamples: { at: number; mb: number }[] = [];
  const sampler = setInterval(() => rssSamples.push({ at: performance.now(), mb: rssMb(r.target.pid) }), 200);
  const t0 = performance.now();
  await loopDelay(r); // restarts the router's loop-delay window
  await sleep(PHASE.before);
  // set when the during window opens (the attack started)
  let t1: number;
  let c0: Counters;
  let loopBefore: LoopDelay | null;
  let note = '';
  if (attack && list) {
    const child = spawn(process.execPath, ['--import', 'tsx', here('./abuse/attack-child.ts'), list, attack.name, String(PHASE.during), JSON.stringify(r.target)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-500)));
    const done = new Promise<number | null>((res) => child.once('exit', (c) => res(c)));
    // the "during" window opens when the attack starts (after the child's start-up)
    const lines = createInterface({ input: child.stdout! });
    const started = new Promise<void>((res) => lines.on('line', (l) => {
      if (l === 'started') res();
      else note = l;
    }));
    await Promise.race([started, done, sleep(30_000)]);
    t1 = performance.now();
    loopBefore = await loopDelay(r);
    c0 = await counters(r.target.routerUrl);
    const code = await Promise.race([done, sleep(PHASE.during + 5000).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      child.kill('SIGTERM');
      await Promise.race([done, sleep(2000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
      note = `stopped at its deadline; ${note}`;
    } else if (code !== 0) note = `attack exited ${code}: ${err.trim().split('\n').pop() ?? ''}`;
    lines.close();
  } else {
    loopBefore = await loopDelay(r);
    c0 = await counters(r.target.routerUrl);
    t1 = performance.now();
    await sleep(PHASE.during);
  }
  const t2 = performance.now();
  const loopDuring = await loopDelay(r);
  const c1 = await counters(r.target.routerUrl);
  await sleep(PHASE.after);
  const t3 = performance.now();
  const loopAfter = await loopDelay(r);
  clearInterval(sampler);
  await traffic.stop();
  const rssIn = (a: number, b: number) => rssSamples.filter((x) => x.at >= a && x.at < b).map((x) => x.mb);
  const last = (xs: number[]) => (xs.length ? xs[xs.length - 1] : NaN);
  return {
    attack: attack?.name ?? '(none: baseline)',
    before: traffic.window(t0, t1),
    during: traffic.window(t1, t2),
    after: traffic.window(t2, t3),
    loop: { before: loopBefore, during: loopDuring, after: loopAfter },
    rssBefore: last(rssIn(t0, t1)),
    rssMaxDuring: rssIn(t1, t2).reduce((a, b) => Math.max(a, b), -Infinity),
    rssAfter: last(rssIn(t2, t3)),
    up: alive(r),
    admittedPerSec: (c1.admitted - c0.admitted) / ((t2 - t1) / 1000),
    received: c1.received - c0.received,
    rejected: c1.rejected - c0.rejected,
    missed: c1.missed - c0.missed,
    note,
  };
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-'); // -Infinity: no sample

function printRow(row: Row): void {
  const ph = (w: Row['before']) => `${f1(w.p50).padStart(6)} ${f1(w.p99).padStart(7)} ${String(w.errors).padStart(4)}`;
  const lp = (l: LoopDelay | null) => (l ? `${f1(l.p99).padStart(6)} ${f1(l.max).padStart(7)} ${f0(l.cpu * 100).padStart(4)} ${f0(l.gcShare * 100).padStart(3)} ${f0(l.gcMax).padStart(4)} ${f1(l.holdP99).padStart(5)} ${f1(l.holdMax).padStart(5)}` : '-'.padStart(40));
  console.log(
    `${row.attack.padEnd(26)} ${ph(row.before)} | ${ph(row.during)} | ${ph(row.after)} | ${f0(row.rssBefore).padStart(5)} ${f0(row.rssMaxDuring).padStart(5)} ${f0(row.rssAfter).padStart(5)} | ${row.up ? 'up' : 'DOWN'} | ${f0(row.admittedPerSec).padStart(9)} ${f0(row.received).padStart(8)} ${f0(row.rejected).padStart(8)} ${f0(row.missed).padStart(7)}${row.note ? `  (${row.note})` : ''}`,
  );
  console.log(`${'  router loop delay, CPU %'.padEnd(26)} ${lp(row.loop.before)} | ${lp(row.loop.during)} | ${lp(row.loop.after)} |`);
}

async function main(): Promise<void> {
  const attacks: { list: 'events' | 'http'; attack: Attack }[] = [
    ...eventsAttacks.map((attack) => ({ list: 'events' as const, attack })),
    ...httpAttacks.map((attack) => ({ list: 'http' as const, attack })),
  ].filter((a) => !ONLY || ONLY.has(a.attack.name));
  console.log(`npm run bench:abuse${QUICK ? ' (BENCH_QUICK=1)' : ''}: ${attacks.length} attacks; phases before/during/after = ${PHASE.before}/${PHASE.during}/${PHASE.after} ms; one run, noisy shared machine`);
  console.log(`normal traffic: closed loop, 2 in flight, /v1/completions with a shared prefix, through the router (its own process) to ${PODS} simulated pods (another process)`);
  for (const { attack } of attacks) console.log(`  ${attack.name}: ${attack.description}`);
  console.log('');
  console.log(`${'attack'.padEnd(26)} ${'before: p50    p99  err'} | ${'during: p50   p99  err'} | ${'after: p50    p99  err'} | RSS MB before max after | router | blocks/s received rejected missed`);
  const lh = 'loop p99    max cpu% gc% gcmax hold p99   max';
  console.log(`${'(router process, ms)'.padEnd(26)} ${lh} | ${lh} | ${lh} |`);
  let r = await startRouterProc();
  const rows: Row[] = [];
  try {
    const base = await runAttack(r, null, null);
    printRow(base);
    rows.push(base);
    for (const { list, attack } of attacks) {
      if (!alive(r)) r = await startRouterProc();
      const row = await runAttack(r, list, attack);
      printRow(row);
      rows.push(row);
      if (!row.up) console.log(`  router died; last log lines:\n    ${r.stderrTail.slice(-5).join('\n    ')}`);
    }
  } finally {
    await stop(r);
    if (podsProc) await stop(podsProc);
  }
  const flood = rows.find((x) => x.attack === FLOOD);
  if (flood) {
    const ok = flood.up && flood.during.p99 < FLOOD_P99_TARGET_MS;
    console.log(`\ntarget: HTTP p99 < ${FLOOD_P99_TARGET_MS} ms during ${FLOOD}: ${f1(flood.during.p99)} ms (baseline ${f1(rows[0].during.p99)} ms) -> ${ok ? 'met' : 'NOT met'}`);
  }
}

await main();
