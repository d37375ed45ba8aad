// `kvrouter bench --clock virtual`: every strategy runs the real router logic against simulated
// engines on one discrete-event clock in model time, so a run takes as long as its CPU work,
// not as long as its model time, and the same seed gives the same decisions and results.
// Same BenchOptions, workloads, strategies and results.json schema as the real-time runner.
import type { RequestResult } from '../client.js';
import { Rng, hashSeed } from '../rng.js';
import { offeredOracle, servedOracle } from '../oracle.js';
import { Progress } from '../progress.js';
import { diffCounters, type PodCounters } from '../prom.js';
import { assembleStrategy, type BenchResults, type StrategyResult } from '../results.js';
import { plan, resultsMeta, type BenchOptions } from '../runner.js';
import { registerBenchPlugins } from '../peers/index.js';
import { applyScenarioEvent, eventTime, scenarioSpec, type AppliedEvent, type ScenarioTargets } from '../scenarios.js';
import { sourceLine, strategyByName, strategyYaml } from '../strategies.js';
import { VirtualClient } from './client.js';
import { VirtualCluster } from './cluster.js';
import { VirtualEventLoop, type Category } from './event-loop.js';
import { MetricsFeed } from './scrape.js';
import { startVirtualRouter, VIRTUAL_EVENTS_ENDPOINT, type VirtualRouter } from './router.js';

/** The virtual clock's knobs (CLI: --event-delay-ms, --scrape-interval-ms, --router-overhead-ms). */
export interface VirtualClockOptions {
  /** Model ms from an engine step's end to its KV events applied at the router. Default 5. */
  eventDelayMs?: number;
  /** Model ms between metric scrapes (llm-d's refresh interval). Default 50. */
  scrapeIntervalMs?: number;
  /** Model ms added between the decision and the engine (tokenization, HTTP, proxy). Default 1. */
  routerOverheadMs?: number;
  /**
   * Model ms every engine timer fires late (default 0: none). Cross-validation only: it replays
   * the real-clock harness's measured simulator timer lag (see VirtualCluster).
   */
  engineTimerLagMs?: number;
  /** Time every callback category (a few % slower). */
  profile?: boolean;
  /** With profiling: model seconds between heap samples (none without it: each sample is a full GC). */
  heapSampleSec?: number;
  /**
   * Offsets the seed of the pickers' random draws (Math.random) without changing the workload or
   * the schedule: repeated runs with different offsets sample a random strategy's spread.
   */
  pickSeedOffset?: number;
  /**
   * Stop a strategy after this many wall seconds (a benchmark's bound on a shared machine):
   * requests not finished by then end as unfinished. Checked every 1,024 timers.
   */
  wallLimitSec?: number;
  /** Receives each strategy's per-request results (model ms), e.g. for tests. */
  onRequests?(strategy: string, requests: readonly RequestResult[]): void;
}

export const VIRTUAL_DEFAULTS = { eventDelayMs: 5, scrapeIntervalMs: 50, routerOverheadMs: 1 };

/** Where one strategy's wall time went (virtual clock only). */
export interface VirtualRunStats {
  modelSeconds: number;
  wallSeconds: number;
  /** Model seconds per wall second. */
  speedup: number;
  timers: number;
  requests: number;
  /** Wall us per simulated request, total and by category (with profiling). */
  usPerRequest: number;
  breakdownUsPerRequest?: Record<string, number>;
  eventBatches: number;
  eventBytes: number;
  heapUsedMb: number;
  /** With profiling: heap used (MB) every `heapSampleSec` model seconds (after a full GC with --expose-gc). */
  heapSamplesMb?: number[];
  /**
   * With profiling: the same samples with RSS, the requests in flight, and the blocks the
   * engines hold a hash for (cachedBlocks, out of cacheCapacity usable blocks in the cluster):
   * the state the workload legitimately holds, next to which heap growth is judged.
   */
  /**
   * heapMb: the JS heap plus external memory (typed arrays' backing stores: the index tables, the
   * engines' block pools, token arrays live there, outside heapUsed), after a full GC.
   */
  memSamples?: { modelSec: number; heapMb: number; externalMb: number; rssMb: number; inflight: number; cachedBlocks: number; cacheCapacity: number }[];
  /** The wall limit stopped the run before the client finished. */
  wallLimited?: boolean;
}

/**
 * Replaces Math.random with a seeded generator while `fn` runs: the pickers break ties and pick
 * at random with Math.random, and a reproducible run needs those draws reproducible too.
 */
async function withSeededRandom<T>(seed: number, fn: () => Promise<T>): Promise<T> {
  const saved = Math.random;
  const rng = new Rng(seed);
  Math.random = () => rng.next();
  try {
    return await fn();
  } finally {
    Math.random = saved;
  }
}

export async function runVirtualBench(opts: BenchOptions, clockOpts: VirtualClockOptions = {}): Promise<BenchResults> {
  const started = new Date();
  const wall0 = performance.now();
  const progress = opts.progress ?? new Progress();
  const c = { ...VIRTUAL_DEFAULTS, ...stripUndefined(clockOpts) };
  // The peer strategies' plugin types exist only for the benchmark.
  registerBenchPlugins();
  const { planned, stages } = plan(opts.workload, opts.load, opts.seed);
  if (planned.length === 0) throw new Error('the load shape produced no requests');

  const { oracle, perStage: perStageOracle } = offeredOracle(planned, opts.sim.blockSize, stages.length);
  // Scenarios may size the pods' KV from the workload's resident set (as the real runner does).
  const sim = scenarioSpec(opts.sim, opts.scenario, oracle.distinctBlocks * opts.sim.blockSize);

  const strategies: StrategyResult[] = [];
  for (let si = 0; si < opts.strategies.length; si++) {
    const def = strategyByName(opts.strategies[si]);
    const yaml = strategyYaml(def, { model: opts.sim.model, blockSize: opts.sim.blockSize, zmqEndpoint: VIRTUAL_EVENTS_ENDPOINT, timeScale: 1 });
    progress.log(`[${si + 1}/${opts.strategies.length}] ${def.name}: ${opts.sim.pods} simulated pods on the virtual clock`);
    const result: StrategyResult = {
      name: def.name, label: def.label, description: def.description, source: sourceLine(def.source), config: yaml,
      stages: [], total: undefined as unknown as StrategyResult['total'], wallSeconds: 0, sampleErrors: [],
    };
    const t0 = performance.now();
    try {
      const run = await withSeededRandom(hashSeed(opts.seed, 'virtual-picks', def.name, ...(c.pickSeedOffset ? [c.pickSeedOffset] : [])), () =>
        runStrategy({ ...opts, sim }, c, planned, stages, yaml, progress, si, def.name),
      );
      Object.assign(result, run.result);
      result.virtual = run.stats;
      if (run.scenarioEvents.length) result.scenarioEvents = run.scenarioEvents;
    } catch (err) {
      result.error = (err as Error).message;
      progress.log(`  ${def.name} failed: ${result.error}`);
    } finally {
      progress.end();
    }
    result.wallSeconds = (performance.now() - t0) / 1000;
    if (!result.error) {
      const t = result.total;
      const v = result.virtual;
      progress.log(
        `  ${def.name}: TTFT p90 ${t.ttft.p90.toFixed(3)} s, ${t.outputTokPerSec.toFixed(0)} output tok/s, hit rate ${(t.clientHitRate * 100).toFixed(1)}% client / ${(t.hitRate * 100).toFixed(1)}% pods (oracle ${(t.oracleHitRate * 100).toFixed(1)}%), errors ${t.errors}, shed ${t.shed} [${result.wallSeconds.toFixed(1)} s wall, ${v ? v.speedup.toFixed(0) : '?'}x model time]`,
      );
    }
    strategies.push(result);
  }

  return {
    meta: {
      ...resultsMeta(opts, {
        started, wall0, stages, sim, requests: planned.length, timeScale: 1, clock: 'virtual',
        notes: [
          ...(opts.notes ?? []),
          `Virtual clock: discrete-event model time; KV events applied ${c.eventDelayMs} ms after each engine step, pod load scraped every ${c.scrapeIntervalMs} ms, ${c.routerOverheadMs} ms router overhead before each request reaches its pod.`,
          ...(c.engineTimerLagMs ? [`Engine timers fire ${c.engineTimerLagMs.toFixed(2)} model-ms late (the real-clock harness's measured simulator lag, replayed for cross-validation).`] : []),
        ],
      }),
      virtualClock: { eventDelayMs: c.eventDelayMs, scrapeIntervalMs: c.scrapeIntervalMs, routerOverheadMs: c.routerOverheadMs },
      client: {
        order: orderOf(opts), drainStages: !!opts.drainStages, maxInflight: opts.maxInflight,
        stageIntervalSec: opts.stageIntervalSec, requestTimeoutSec: opts.requestTimeoutSec,
      },
    },
    oracle: { hitRate: oracle.hitRate, perStage: perStageOracle.map((o) => (o.prompt ? o.cached / o.prompt : NaN)) },
    strategies,
  };
}

function orderOf(opts: BenchOptions): string | undefined {
  const o = opts.workload.params.order;
  return typeof o === 'string' ? o : undefined;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

async function runStrategy(
  opts: BenchOptions,
  c: typeof VIRTUAL_DEFAULTS & VirtualClockOptions,
  planned: ReturnType<typeof plan>['planned'],
  stages: ReturnType<typeof plan>['stages'],
  yaml: string,
  progress: Progress,
  strategyIndex: number,
  strategyName: string,
): Promise<{ result: Pick<StrategyResult, 'stages' | 'total' | 'sampleErrors'>; stats: VirtualRunStats; scenarioEvents: AppliedEvent[] }> {
  const wall0 = performance.now();
  const loop = new VirtualEventLoop();
  loop.profile = !!c.profile;
  const enc = c.profile ? { encodeMs: 0, batches: 0, bytes: 0 } : undefined;
  let router: VirtualRouter | undefined;
  const cluster = new VirtualCluster(
    loop,
    { ...opts.sim, timeScale: 1, kvEventsEndpoint: VIRTUAL_EVENTS_ENDPOINT, seed: opts.seed },
    { eventDelayMs: c.eventDelayMs, deliver: (frames) => router?.deliver(frames), profile: enc, engineTimerLagMs: c.engineTimerLagMs },
  );
  let client: VirtualClient | undefined;
  try {
    const addresses = cluster.pods.map((p) => p.address);
    const late = new Set(opts.scenario?.lateJoiners ?? []);
    const r = await startVirtualRouter(yaml, addresses.filter((_a, i) => !late.has(i)), loop);
    router = r;
    const indexCpu = c.profile ? timeIndex(r) : undefined;
    const feed = new MetricsFeed(cluster.pods, (a) => r.pool.get(a));
    const snapshots: PodCounters[][] = [];
    let stage = 0;
    let timedOut = false;
    const drainMs = (opts.drainTimeoutSec ?? 300) * 1000;
    client = new VirtualClient(loop, router, cluster.pods, planned, stages, {
      model: opts.sim.model,
      routerOverheadMs: c.routerOverheadMs,
      drainStages: !!opts.drainStages,
      maxInflight: opts.maxInflight ?? Infinity,
      stageIntervalMs: (opts.stageIntervalSec ?? 0) * 1000,
      requestTimeoutMs: (opts.requestTimeoutSec ?? Infinity) * 1000,
      onStage: (s, atMs) => {
        if (s < stages.length) {
          snapshots[s] = cluster.counters();
          stage = s;
          progress.update(state(), true);
        } else loop.at(atMs + drainMs, () => void (timedOut = true), 'client');
      },
    });
    const cl = client;
    const state = () => ({
      strategy: strategyName, strategyIndex, strategies: opts.strategies.length, stage, stages: stages.length,
      rate: stages[stage]?.rate ?? 0, sent: cl.sent, done: cl.done, total: planned.length, errors: 0, inflight: cl.inflight,
    });
    loop.every(0, c.scrapeIntervalMs, () => feed.scrape(loop.now(), stage), 'scrape');
    loop.every(1000, 1000, () => progress.update(state()), 'client');
    const heapSamples: number[] = [];
    const memSamples: NonNullable<VirtualRunStats['memSamples']> = [];
    if (c.profile && c.heapSampleSec !== undefined) {
      const gc = (globalThis as { gc?: () => void }).gc;
      const every = c.heapSampleSec * 1000;
      loop.every(every, every, () => {
        gc?.();
        const m = process.memoryUsage();
        heapSamples.push(m.heapUsed / 2 ** 20);
        let cachedBlocks = 0;
        let cacheCapacity = 0;
        for (const p of cluster.pods) {
          cachedBlocks += p.engine.pool.cachedBlocks;
          cacheCapacity += p.engine.pool.capacity;
        }
        memSamples.push({
          modelSec: loop.now() / 1000,
          heapMb: (m.heapUsed + m.external) / 2 ** 20,
          externalMb: m.external / 2 ** 20,
          rssMb: m.rss / 2 ** 20,
          inflight: cl.inflight,
          cachedBlocks,
          cacheCapacity,
        });
      }, 'bench');
    }
    const scenarioEvents = scheduleScenario(opts, stages, loop, cluster, r, (l) => progress.log(l));
    loop.at(0, () => cl.start(), 'client');
    const wallLimitMs = c.wallLimitSec === undefined ? Infinity : wall0 + c.wallLimitSec * 1000;
    let checks = 0;
    let wallLimited = false;
    const overWall = () => (++checks & 1023) === 0 && wallLimitMs !== Infinity && (wallLimited = performance.now() > wallLimitMs);
    await loop.run(Infinity, () => cl.complete || timedOut || overWall());
    if (!cl.complete) cl.abandon(wallLimited ? `after the ${c.wallLimitSec} s wall-clock limit` : `after the ${opts.drainTimeoutSec ?? 300} s drain timeout (model time)`);
    progress.update(state(), true);
    snapshots[stages.length] = cluster.counters();
    // Stages the wall limit kept from starting count nothing.
    for (let i = 0; i < stages.length; i++) snapshots[i] ??= snapshots[stages.length];
    const podDeltas = stages.map((_s, i) => snapshots[i + 1].map((after, k) => diffCounters(after, snapshots[i][k])));
    // The oracle over the requests this strategy actually served, in the order they were sent.
    const served = servedOracle(
      cl.results.flatMap((res, i) => (res?.ok ? [{ prompt: planned[i].req.prompt, stage: res.stage, sentAt: res.sentMs, id: res.id }] : [])),
      opts.sim.blockSize,
      stages.length,
    ).perStage;
    const result = assembleStrategy(stages, cl.results, podDeltas, served, addresses, (ms) => ms / 1000);
    c.onRequests?.(strategyName, cl.results);
    result.stages.forEach((s, i) => (s.meanWaiting = feed.meanWaiting(i)));
    result.total.meanWaiting = feed.meanWaitingOver(stages.map((s, i) => (s.warmup ? -1 : i)).filter((i) => i >= 0));
    const wallSeconds = (performance.now() - wall0) / 1000;
    const modelSeconds = loop.now() / 1000;
    const usPer = (ms: number) => (ms * 1000) / Math.max(1, cl.sent);
    let breakdown: Record<string, number> | undefined;
    if (c.profile) {
      const cpu = loop.stats.cpuMs;
      const encodeMs = enc?.encodeMs ?? 0;
      const idx = indexCpu?.() ?? { applyMs: 0, lookupMs: 0 };
      breakdown = {
        engine: usPer(cpu.engine - encodeMs),
        'event encode': usPer(encodeMs),
        'event decode + apply (excl. index)': usPer(cpu.events - idx.applyMs),
        'index (apply)': usPer(idx.applyMs),
        'index (lookup)': usPer(idx.lookupMs),
        'scheduler (excl. index lookup)': usPer(cpu.scheduler + cpu.client - idx.lookupMs),
        'router timers': usPer(cpu.router),
        scrape: usPer(cpu.scrape),
      };
      const accounted = (Object.keys(cpu) as Category[]).reduce((a, k) => a + cpu[k], 0);
      breakdown['loop and unaccounted'] = usPer(wallSeconds * 1000 - accounted);
      if (cpu.bench > 0) breakdown['benchmark probes (heap samples)'] = usPer(cpu.bench);
    }
    return {
      result,
      scenarioEvents,
      stats: {
        modelSeconds, wallSeconds, speedup: modelSeconds / wallSeconds, timers: loop.stats.timers, requests: cl.sent,
        usPerRequest: usPer(wallSeconds * 1000), breakdownUsPerRequest: breakdown,
        eventBatches: enc?.batches ?? 0, eventBytes: enc?.bytes ?? 0,
        heapUsedMb: process.memoryUsage().heapUsed / 2 ** 20,
        heapSamplesMb: heapSamples.length ? heapSamples : undefined,
        memSamples: memSamples.length ? memSamples : undefined,
        wallLimited: wallLimited || undefined,
      },
    };
  } finally {
    cluster.stop();
    await router?.close();
  }
}

/**
 * Scenario events at their model times on the virtual clock, through the same
 * `applyScenarioEvent` as the real clock; the cluster and router supply the operations.
 */
function scheduleScenario(
  opts: BenchOptions,
  stages: ReturnType<typeof plan>['stages'],
  loop: VirtualEventLoop,
  cluster: VirtualCluster,
  router: VirtualRouter,
  log: (line: string) => void,
): AppliedEvent[] {
  const applied: AppliedEvent[] = [];
  const addresses = cluster.pods.map((p) => p.address);
  const targets: ScenarioTargets = {
    pods: {
      urls: addresses.map((a) => `virtual://${a}`),
      addresses,
      lag: () => Promise.resolve(undefined),
      kill: (i) => Promise.resolve(cluster.kill(i)),
      restart: (i) => Promise.resolve(cluster.restart(i)),
      reset: (i) => Promise.resolve(cluster.reset(i)),
      close: () => Promise.resolve(),
    },
    router: {
      url: 'virtual://router',
      addEndpoint: (a) => router.addEndpoint(a),
      removeEndpoint: (a) => router.removeEndpoint(a),
      close: () => Promise.resolve(),
    },
  };
  for (const ev of opts.scenario?.events ?? []) {
    const rec: AppliedEvent = { kind: ev.kind, pod: ev.pod, at: eventTime(ev, stages) };
    applied.push(rec);
    loop.at(rec.at * 1000, () =>
      applyScenarioEvent(ev, targets).then(
        () => {
          rec.doneAt = loop.now() / 1000;
          log(`  scenario: ${ev.kind} pod ${ev.pod} at ${rec.doneAt.toFixed(1)} s (model)`);
        },
        (err: unknown) => {
          rec.error = (err as Error).message;
          log(`  scenario: ${ev.kind} pod ${ev.pod} failed: ${rec.error}`);
        },
      ), 'bench');
  }
  return applied;
}

/**
 * Wraps the precise scorers' index methods with wall-time accounting (profiling only): apply
 * (add/evict/clear, from KV events) and lookup (longestPrefix, from scoring).
 */
function timeIndex(router: VirtualRouter): () => { applyMs: number; lookupMs: number } {
  const acc = { applyMs: 0, lookupMs: 0 };
  const seen = new Set<object>();
  for (const p of router.config.plugins.values()) {
    const index = (p as { index?: Record<string, unknown> }).index;
    if (!index || seen.has(index)) continue;
    seen.add(index);
    const wrap = (name: string, key: 'applyMs' | 'lookupMs') => {
      const fn = index[name];
      if (typeof fn !== 'function') return;
      index[name] = (...args: unknown[]) => {
        const t0 = performance.now();
        try {
          return (fn as (...a: unknown[]) => unknown).apply(index, args);
        } finally {
          acc[key] += performance.now() - t0;
        }
      };
    };
    wrap('add', 'applyMs');
    wrap('evict', 'applyMs');
    wrap('clear', 'applyMs');
    wrap('getRequestKey', 'applyMs');
    wrap('longestPrefix', 'lookupMs');
    wrap('addSpeculative', 'lookupMs');
  }
  return () => acc;
}
