// Runs one benchmark: for every strategy, fresh pods and a router configured for it, the same
// seeded request sequence on the same schedule, then per-stage aggregation against the oracle.
import { setMaxListeners } from 'node:events';
import { cpus } from 'node:os';
import { createServer } from 'node:net';
import { request as httpRequest } from 'undici';
import { BenchClient, type RequestResult } from './client.js';
import type { Harness, SimSpec } from './harness.js';
import { arrivals as makeArrivals, type LoadShape, type Stage } from './load.js';
import { offeredOracle, servedOracle } from './oracle.js';
import { Progress } from './progress.js';
import { diffCounters, scrapePod, type PodCounters } from './prom.js';
import { assembleStrategy, type BenchResults, type StrategyResult } from './results.js';
import { scenarioSpec, startScenarioReal, type Scenario } from './scenarios.js';
import { timeModelReport } from './time-model.js';
import { sourceLine, strategyByName, strategyYaml } from './strategies.js';
import { registerBenchPlugins } from './peers/index.js';
import type { BenchRequest, Workload } from './workloads/types.js';
import type { VirtualClockOptions } from './virtual/runner.js';

export interface BenchOptions {
  workload: Workload;
  load: LoadShape;
  strategies: string[];
  sim: Omit<SimSpec, 'kvEventsEndpoint' | 'timeScale' | 'seed'>;
  timeScale: number;
  /** Which runner (`virtual`: the discrete-event runner in src/bench/virtual). Default real. */
  clock?: 'real' | 'virtual';
  /** The virtual runner's settings (event delay, scrape interval, router overhead). */
  virtual?: VirtualClockOptions;
  /** Restarts, joins, leaves, resets, heterogeneous pods, eviction pressure (scenarios.ts). */
  scenario?: Scenario;
  seed: number;
  preset?: string;
  /** MODEL seconds to wait for in-flight requests after the last send before aborting them. */
  drainTimeoutSec?: number;
  /** Wall ms to let the router scrape pods and ZMQ connect before sending. */
  settleMs?: number;
  notes?: string[];
  progress?: Progress;
  /** inference-perf: a stage starts only once every request of the previous one finished. */
  drainStages?: boolean;
  /** inference-perf: at most this many requests in flight; due ones wait (TTFT from the send). */
  maxInflight?: number;
  /** inference-perf's load.interval: model seconds between one stage's end and the next's start (virtual clock). */
  stageIntervalSec?: number;
  /** The client abandons a request this many model seconds after its send (aiohttp's total timeout; virtual clock). */
  requestTimeoutSec?: number;
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Planned {
  req: BenchRequest;
  /** Model seconds from run start. */
  t: number;
  stage: number;
}

/** The request sequence and its schedule, shared by every strategy. */
export function plan(workload: Workload, load: LoadShape, seed: number): { planned: Planned[]; stages: Stage[] } {
  if (workload.kind === 'trace') {
    const reqs = workload.take(workload.size ?? Infinity);
    const span = Math.max(1e-3, ...reqs.map((r) => r.at ?? 0));
    const stages: Stage[] = [{ rate: Number((reqs.length / span).toFixed(3)), duration: Number(span.toFixed(3)) }];
    return { planned: reqs.map((req) => ({ req, t: req.at ?? 0, stage: 0 })), stages };
  }
  const arr = makeArrivals(load, seed);
  // Each request's number within its stage (inference-perf numbers every stage's requests from 0).
  const perStage = load.stages.map(() => 0);
  const reqs = workload.take(arr.length, arr.map((a) => perStage[a.stage]++));
  return { planned: reqs.map((req, i) => ({ req, t: arr[i].t, stage: arr[i].stage })), stages: load.stages };
}

async function waitReady(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const r = await httpRequest(`${url}/health`, { headersTimeout: 2000, bodyTimeout: 2000 });
      await r.body.text();
      if (r.statusCode === 200) return;
      last = `HTTP ${r.statusCode}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (${last})`);
}

async function scrapeAll(urls: string[], prev?: PodCounters[]): Promise<PodCounters[]> {
  // A pod that left (scenarios) keeps its last counters: no delta, rather than a failed run.
  return await Promise.all(urls.map((u, i) => scrapePod(u).catch((err: unknown) => {
    if (prev) return prev[i];
    throw err;
  })));
}

export async function runBench(harness: Harness, opts: BenchOptions): Promise<BenchResults> {
  if (opts.clock === 'virtual') {
    const { runVirtualBench } = await import('./virtual/runner.js');
    return await runVirtualBench(opts, opts.virtual);
  }
  const started = new Date();
  const wall0 = performance.now();
  const progress = opts.progress ?? new Progress();
  // The peer strategies' plugin types exist only for the benchmark.
  registerBenchPlugins();
  const { planned, stages } = plan(opts.workload, opts.load, opts.seed);
  if (planned.length === 0) throw new Error('the load shape produced no requests');
  const idIndex = new Map(planned.map((p, i) => [p.req.id, i]));
  const toModelSec = (ms: number) => ms / 1000 / opts.timeScale;

  // The oracle sees the sequence in arrival order, cache carried across stages.
  const { oracle, perStage: perStageOracle } = offeredOracle(planned, opts.sim.blockSize, stages.length);
  // Scenarios may size the pods' KV from the workload's resident set.
  const sim = scenarioSpec(opts.sim, opts.scenario, oracle.distinctBlocks * opts.sim.blockSize);

  const strategies: StrategyResult[] = [];
  for (let si = 0; si < opts.strategies.length; si++) {
    const def = strategyByName(opts.strategies[si]);
    const t0s = performance.now();
    const zmqPort = await freePort();
    const zmq = `tcp://127.0.0.1:${zmqPort}`;
    const ctx = { model: opts.sim.model, blockSize: opts.sim.blockSize, zmqEndpoint: zmq, timeScale: opts.timeScale };
    const yaml = strategyYaml(def, ctx);
    progress.log(`[${si + 1}/${opts.strategies.length}] ${def.name}: starting ${opts.sim.pods} pods and the router`);
    const result: StrategyResult = {
      name: def.name, label: def.label, description: def.description, source: sourceLine(def.source), config: yaml,
      stages: [], total: undefined as unknown as StrategyResult['total'], wallSeconds: 0, sampleErrors: [],
    };
    let pods: Awaited<ReturnType<Harness['startPods']>> | undefined;
    let router: Awaited<ReturnType<Harness['startRouter']>> | undefined;
    try {
      pods = await harness.startPods({ ...sim, timeScale: opts.timeScale, kvEventsEndpoint: zmq, seed: opts.seed });
      const late = new Set(opts.scenario?.lateJoiners ?? []);
      router = await harness.startRouter(
        yaml,
        pods.addresses.filter((_a, i) => !late.has(i)).map((address) => ({ address, labels: {} })),
        { scrapeIntervalMs: 50 * opts.timeScale, unhealthyAfterMs: Math.max(750 * opts.timeScale, 3000) },
      );
      await waitReady(router.url, 30_000);
      await new Promise((r) => setTimeout(r, opts.settleMs ?? 500));
      const scenario = startScenarioReal(opts.scenario, stages, { pods, router }, opts.timeScale, (l) => progress.log(l));
      const runOut = await runSchedule(router.url, pods.urls, planned, stages, opts, progress, si, def.name, () => scenario.start()).finally(
        () => scenario.stop(),
      );
      if (scenario.applied.length) result.scenarioEvents = scenario.applied;
      // The oracle over the requests this strategy actually served, in the order they were sent.
      const served = servedOracle(
        runOut.results.filter((r) => r.ok).map((r) => ({ prompt: planned[idIndex.get(r.id) as number].req.prompt, stage: r.stage, sentAt: r.sentMs, id: r.id })),
        opts.sim.blockSize,
        stages.length,
      ).perStage;
      Object.assign(result, assembleStrategy(stages, runOut.results, runOut.podDeltas, served, pods.addresses, toModelSec));
      const lag = await pods.lag();
      if (lag && lag.timers > 0) result.simLagMs = (lag.seconds / lag.timers) * 1000;
    } catch (err) {
      result.error = (err as Error).message;
      progress.log(`  ${def.name} failed: ${result.error}`);
    } finally {
      progress.end();
      await router?.close().catch(() => {});
      await pods?.close().catch(() => {});
    }
    result.wallSeconds = (performance.now() - t0s) / 1000;
    if (!result.error) {
      const t = result.total;
      progress.log(
        `  ${def.name}: TTFT p90 ${t.ttft.p90.toFixed(3)} s, ${t.outputTokPerSec.toFixed(0)} output tok/s, hit rate ${(t.clientHitRate * 100).toFixed(1)}% client / ${(t.hitRate * 100).toFixed(1)}% pods (oracle ${(t.oracleHitRate * 100).toFixed(1)}%), errors ${t.errors}, shed ${t.shed} [${result.wallSeconds.toFixed(0)} s wall]`,
      );
    }
    strategies.push(result);
  }

  const notes = [...(opts.notes ?? [])];
  for (const s of strategies) {
    // Timers firing late mean this machine could not keep up with the time scale: engine steps
    // stretch and model-time latencies are inflated. A few ms against ~10-40 ms steps is noise.
    if (s.simLagMs !== undefined && s.simLagMs > 2) {
      notes.push(`${s.name}: the simulator's timers fired ${s.simLagMs.toFixed(1)} model-ms late on average; raise --time-scale for cleaner figures.`);
    }
  }
  const oracleRate = oracle.hitRate;
  return {
    meta: resultsMeta(opts, { started, wall0, stages, sim, requests: planned.length, timeScale: opts.timeScale, clock: opts.clock ?? 'real', notes }),
    oracle: { hitRate: oracleRate, perStage: perStageOracle.map((o) => (o.prompt ? o.cached / o.prompt : NaN)) },
    strategies,
  };
}

/** results.json's meta, the same for both clocks (the virtual runner adds its clock's fields). */
export function resultsMeta(
  opts: BenchOptions,
  run: { started: Date; wall0: number; stages: Stage[]; sim: ReturnType<typeof scenarioSpec<BenchOptions['sim']>>; requests: number; timeScale: number; clock: 'real' | 'virtual'; notes: string[] },
): BenchResults['meta'] {
  return {
    startedAt: run.started.toISOString(),
    wallSeconds: (performance.now() - run.wall0) / 1000,
    preset: opts.preset,
    workload: { kind: opts.workload.kind, params: opts.workload.params },
    load: { type: opts.workload.kind === 'trace' ? 'trace' : opts.load.type, stages: run.stages },
    pods: opts.sim.pods,
    sim: { ...run.sim },
    clock: run.clock,
    timeModel: timeModelReport(run.sim),
    scenario: opts.scenario ? { names: opts.scenario.names, description: opts.scenario.description } : undefined,
    timeScale: run.timeScale,
    seed: opts.seed,
    model: opts.sim.model,
    requests: run.requests,
    host: { cpus: cpus().length, node: process.version, platform: process.platform },
    notes: run.notes,
  };
}

/** Sends the planned requests on schedule (dependencies respected), snapshots pod counters per stage. */
async function runSchedule(
  routerUrl: string,
  podUrls: string[],
  planned: Planned[],
  stages: Stage[],
  opts: BenchOptions,
  progress: Progress,
  strategyIndex: number,
  strategyName: string,
  /** Called at the schedule's time zero (scenario events are timed from it). */
  onStart?: () => void,
): Promise<{ results: RequestResult[]; podDeltas: PodCounters[][] }> {
  const client = new BenchClient(routerUrl, opts.sim.model);
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one listener per in-flight request
  const results: RequestResult[] = new Array(planned.length);
  const done = new Set<number>();
  const waiting = new Map<number, number[]>(); // predecessor id -> planned indices waiting on it
  const idToIndex = new Map(planned.map((p, i) => [p.req.id, i]));
  const inflight = new Set<Promise<void>>();
  const stageStartWall: number[] = [];
  {
    let acc = 0;
    for (const s of stages) {
      stageStartWall.push(acc * opts.timeScale * 1000);
      acc += s.duration;
    }
  }
  const snapshots: PodCounters[][] = [await scrapeAll(podUrls)];
  let nDone = 0;
  let nErr = 0;
  let nSent = 0;
  let curStage = 0;
  const t0 = performance.now();
  onStart?.();
  const state = () => ({
    strategy: strategyName, strategyIndex, strategies: opts.strategies.length, stage: curStage, stages: stages.length,
    rate: stages[curStage]?.rate ?? 0, sent: nSent, done: nDone, total: planned.length, errors: nErr, inflight: inflight.size,
  });

  // inference-perf's concurrency cap: due requests wait in order for a free slot.
  const maxInflight = opts.maxInflight ?? Infinity;
  const capped: [number, number][] = [];
  // Wall ms added to the schedule by drained stages (inference-perf: a stage starts once drained).
  let shiftMs = 0;
  const fire = (i: number, scheduledMs: number) => {
    if (inflight.size >= maxInflight) {
      capped.push([i, scheduledMs]);
      return;
    }
    const p = planned[i];
    nSent++;
    const pr = client.send(p.req, p.stage, t0, scheduledMs, abort.signal).then((r) => {
      results[i] = r;
      nDone++;
      if (!r.ok) nErr++;
      done.add(p.req.id);
      for (const j of waiting.get(p.req.id) ?? []) fire(j, planned[j].t * opts.timeScale * 1000 + shiftMs);
      waiting.delete(p.req.id);
      progress.update(state());
    });
    const tracked = pr.finally(() => {
      inflight.delete(tracked);
      const next = capped.shift();
      if (next) fire(next[0], next[1]);
    });
    inflight.add(tracked);
  };

  for (let i = 0; i < planned.length; i++) {
    const p = planned[i];
    let due = p.t * opts.timeScale * 1000 + shiftMs;
    while (curStage + 1 < stages.length && due >= stageStartWall[curStage + 1] + shiftMs) {
      // Wait for the stage boundary itself, then snapshot the pods' counters.
      const wait = stageStartWall[curStage + 1] + shiftMs - (performance.now() - t0);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (opts.drainStages) {
        // Bounded by the drain timeout: everything sent so far finishes before the next stage.
        const until = performance.now() + (opts.drainTimeoutSec ?? 300) * opts.timeScale * 1000;
        while ((inflight.size > 0 || waiting.size > 0 || capped.length > 0) && performance.now() < until) {
          await Promise.race([Promise.all(inflight), new Promise((r) => setTimeout(r, 50))]);
        }
        const late = performance.now() - t0 - (stageStartWall[curStage + 1] + shiftMs);
        if (late > 0) shiftMs += late;
        due = p.t * opts.timeScale * 1000 + shiftMs;
      }
      snapshots.push(await scrapeAll(podUrls, snapshots[snapshots.length - 1]));
      curStage++;
      progress.update(state(), true);
    }
    const wait = due - (performance.now() - t0);
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const after = p.req.after;
    if (after !== undefined && idToIndex.has(after) && !done.has(after)) {
      const list = waiting.get(after) ?? [];
      list.push(i);
      waiting.set(after, list);
    } else fire(i, due);
    progress.update(state());
  }
  while (curStage + 1 < stages.length) {
    snapshots.push(await scrapeAll(podUrls, snapshots[snapshots.length - 1]));
    curStage++;
  }
  // Drain: bounded wait for everything in flight (and anything still waiting on a predecessor).
  const deadline = performance.now() + (opts.drainTimeoutSec ?? 300) * opts.timeScale * 1000;
  while ((inflight.size > 0 || waiting.size > 0) && performance.now() < deadline) {
    await Promise.race([Promise.all(inflight), new Promise((r) => setTimeout(r, 1000))]);
    progress.update(state());
  }
  if (inflight.size > 0) {
    abort.abort();
    await Promise.allSettled([...inflight]);
    for (const r of results) {
      if (r && !r.ok && /abort/i.test(r.error ?? '')) r.error = `unfinished after the ${opts.drainTimeoutSec ?? 300} s drain timeout (model time)`;
    }
  }
  for (let i = 0; i < planned.length; i++) {
    if (!results[i]) {
      results[i] = {
        id: planned[i].req.id, stage: planned[i].stage, scheduledMs: planned[i].t * opts.timeScale * 1000, sentMs: NaN,
        ok: false, status: 0, shed: false, error: 'never sent: its predecessor did not finish before the drain timeout',
        itlMs: [], promptTokens: planned[i].req.prompt.length, outputTokens: 0,
      };
    }
  }
  progress.update(state(), true);
  snapshots.push(await scrapeAll(podUrls, snapshots[snapshots.length - 1]));
  await client.close();
  const podDeltas = stages.map((_s, i) => snapshots[i + 1].map((after, k) => diffCounters(after, snapshots[i][k])));
  return { results, podDeltas };
}
