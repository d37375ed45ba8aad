// npm run bench:scheduler [-- --quick]
// Cost of one scheduling decision (Scheduler.schedule: every scorer for every candidate, then
// the picker) for the predicted-latency profile against today's precise profile (llm-d 3:2:2),
// measured in the same run, interleaved decision by decision, on the same index contents:
// llm-d-73-shaped prompts (6,000-token group prefix + 1,200-token question, 64-token blocks),
// 150 groups spread over the pods. Target (issue 16): predicted-latency adds <= 20 us p50 at
// 8 pods and <= 200 us at 96 pods. Hooks (PreRequest, first token, completion) are timed apart,
// for both profiles, after both decided: they run off the decision's path (the Director defers
// them until the request is on its way), and both apply predicted-latency's placement.
// The first WARMUP pairs are reported apart: V8 is still compiling (TurboFan on a background
// thread; on a loaded 2-core machine that takes ~0.1 s per big function) and deoptimizing them
// as new paths run, so they show the tiering, not a decision's steady cost.
import pino from 'pino';
import { ServiceRegistry } from '../src/scheduler/services.js';
import { KV_EVENT_SOURCE_FACTORY } from '../src/scheduler/kv-services.js';
import { KvEventSubscriber } from '../src/events/subscriber.js';
import { Registry } from 'prom-client';
import { buildSchedulerConfig, parseEndpointPickerConfig, type LoadedSchedulerConfig } from '../src/scheduler/config.js';
import { Scheduler } from '../src/scheduler/scheduler.js';
import { CycleState, type Endpoint, type InferenceRequest, type SchedulingResult } from '../src/scheduler/types.js';
import { emptyMetrics } from '../src/endpoints/vllm-metrics.js';
import { parseOpenAIRequest } from '../src/gateway/parse.js';
import type { PrecisePrefixCacheScorer } from '../src/scheduler/plugins/precise-prefix.js';
import type { PredictedLatencyScorer } from '../src/scheduler/plugins/predicted-latency/scorer.js';

const quick = process.argv.includes('--quick');
const MODEL = 'Qwen/Qwen3-32B';
const BS = 64;
const GROUPS = 150;
const WARMUP = 1000;
const SYS = 6000;
const Q = 1200;

function rng(seed: number) {
  return () => {
    seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    return seed;
  };
}
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const us = (ms: number) => `${(ms * 1000).toFixed(1)} us`;

const precise = { type: 'precise-prefix-cache-scorer', parameters: { tokenProcessorConfig: { blockSize: BS, hashSeed: '42' } } };
const CONFIGS: Record<string, unknown> = {
  'precise-3-2-2': {
    plugins: [precise, { type: 'kv-cache-utilization-scorer' }, { type: 'queue-scorer' }, { type: 'max-score-picker' }],
    schedulingProfiles: [
      {
        name: 'default',
        plugins: [
          { pluginRef: 'precise-prefix-cache-scorer', weight: 3 },
          { pluginRef: 'kv-cache-utilization-scorer', weight: 2 },
          { pluginRef: 'queue-scorer', weight: 2 },
          { pluginRef: 'max-score-picker' },
        ],
      },
    ],
  },
  'predicted-latency': {
    plugins: [precise, { type: 'predicted-latency-scorer' }, { type: 'max-score-picker' }],
    schedulingProfiles: [{ name: 'default', plugins: [{ pluginRef: 'predicted-latency-scorer' }, { pluginRef: 'max-score-picker' }] }],
  },
};

/** The router's KV-event subscriber factory (nothing binds until a plugin starts; none does here). */
function withEvents(s: ServiceRegistry): ServiceRegistry {
  s.provide(KV_EVENT_SOURCE_FACTORY, (opts) => new KvEventSubscriber(opts), 'bench');
  return s;
}

interface Built {
  name: string;
  cfg: LoadedSchedulerConfig;
  scheduler: Scheduler;
}

async function build(name: string, pods: Endpoint[], groups: Uint32Array[]): Promise<Built> {
  const cfg = buildSchedulerConfig(parseEndpointPickerConfig(CONFIGS[name]), {
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    services: withEvents(new ServiceRegistry()),
    
  });
  const ps = cfg.plugins.get('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
  // Each group's prefix on one pod, every fifth group on a second one too.
  for (let g = 0; g < groups.length; g++) {
    const keys = ps.keyer.keys(groups[g], { model: MODEL, lora: null, cacheSalt: null });
    await ps.index.add(null, keys, { pod: pods[g % pods.length].address, tier: 'gpu' });
    if (g % 5 === 0) await ps.index.add(null, keys, { pod: pods[(g + 1) % pods.length].address, tier: 'gpu' });
  }
  return { name, cfg, scheduler: new Scheduler(cfg.profiles, cfg.profileHandler) };
}

function request(groups: Uint32Array[], next: () => number): InferenceRequest {
  const g = groups[next() % groups.length];
  const tokens = new Uint32Array(SYS + Q);
  tokens.set(g);
  for (let i = SYS; i < tokens.length; i++) tokens[i] = next() % 150_000;
  const r = parseOpenAIRequest('/v1/completions', {}, JSON.stringify({ model: MODEL, prompt: 'x', stream: true }));
  r.tokens = tokens;
  r.estimatedTokens = tokens.length;
  return r;
}

async function run(nPods: number, decisions: number, maxMs: number): Promise<void> {
  const next = rng(nPods * 7919);
  const pods: Endpoint[] = Array.from({ length: nPods }, (_, i) => ({
    name: `pod-${i}`,
    address: `10.0.${i >> 8}.${i & 255}:8000`,
    labels: {},
    metrics: { ...emptyMetrics(), waiting: next() % 4, running: 20 + (next() % 60), kvUsage: (next() % 100) / 100, updatedAt: Date.now() },
    inflightRequests: 0,
    inflightTokens: 0,
    ready: true,
  }));
  const groups = Array.from({ length: GROUPS }, () => Uint32Array.from({ length: SYS }, () => next() % 150_000));
  const built = [await build('precise-3-2-2', pods, groups), await build('predicted-latency', pods, groups)];
  const times = new Map<string, number[]>(built.map((b) => [b.name, []]));
  const coldTimes = new Map<string, number[]>(built.map((b) => [b.name, []]));
  const hookTimes = new Map<string, number[]>(built.map((b) => [b.name, []]));
  const inflight: { r: InferenceRequest; to: Endpoint }[] = [];
  const pl = built[1].cfg.plugins.get('predicted-latency-scorer') as PredictedLatencyScorer;
  // The time bound starts after the warm-up (bounded by its count).
  let end = Infinity;
  for (let i = 0; i < decisions + WARMUP && performance.now() < end; i++) {
    if (i === WARMUP) end = performance.now() + maxMs;
    // The same request for both, in alternating order, so both see the same noise.
    const proto = request(groups, next);
    const order = i % 2 === 0 ? built : [built[1], built[0]];
    const reqs = new Map<Built, InferenceRequest>();
    let chosen: SchedulingResult | undefined;
    for (const b of order) {
      const r = parseOpenAIRequest('/v1/completions', {}, JSON.stringify({ model: MODEL, prompt: 'x', stream: true }));
      r.tokens = proto.tokens;
      r.estimatedTokens = proto.estimatedTokens;
      const t = performance.now();
      const result = await b.scheduler.schedule(r, pods, new CycleState());
      const dt = performance.now() - t;
      (i >= WARMUP ? times : coldTimes).get(b.name)!.push(dt);
      reqs.set(b, r);
      if (b === built[1]) chosen = result;
    }
    // Both profiles run their PreRequest hooks (the precise scorer's speculative entries; for
    // predicted-latency also its own) for one placement, predicted-latency's, so both indexes
    // keep the same contents. Timed for both: the difference is predicted-latency's own hooks.
    for (const b of order) {
      const r = reqs.get(b)!;
      const h = performance.now();
      for (const hook of b.cfg.preRequest) await hook.preRequest(r, chosen!);
      if (b === built[1]) {
        inflight.push({ r, to: chosen!.targets[0] });
        // Keep ~64 requests in flight: the oldest gets its first token and completes.
        if (inflight.length > 64) {
          const old = inflight.shift()!;
          pl.responseFirstToken(old.r, old.to);
          pl.responseComplete(old.r, old.to, { status: 200, completionTokens: 100 });
        }
      }
      if (i >= WARMUP) hookTimes.get(b.name)!.push(performance.now() - h);
    }
  }
  const base = times.get('precise-3-2-2')!;
  const mine = times.get('predicted-latency')!;
  console.log(`\n${nPods} pods, ${mine.length} decisions each (${SYS + Q}-token prompts, ${(SYS + Q) / BS} blocks, ${GROUPS} groups):`);
  console.log(`  precise 3:2:2       p50 ${us(pct(base, 50))}  p90 ${us(pct(base, 90))}  p99 ${us(pct(base, 99))}`);
  console.log(`  predicted-latency   p50 ${us(pct(mine, 50))}  p90 ${us(pct(mine, 90))}  p99 ${us(pct(mine, 99))}`);
  const diffs = mine.map((m, i) => m - base[i]);
  console.log(`  decision added by predicted-latency: paired per-decision difference p50 ${us(pct(diffs, 50))} (difference of the p50s ${us(pct(mine, 50) - pct(base, 50))})`);
  const hBase = hookTimes.get('precise-3-2-2')!;
  const hMine = hookTimes.get('predicted-latency')!;
  const hDiffs = hMine.map((m, i) => m - hBase[i]);
  console.log(`  hooks per request, not in the decision: precise 3:2:2 (speculative entries) p50 ${us(pct(hBase, 50))}; predicted-latency (speculative entries + PreRequest + first token + completion) p50 ${us(pct(hMine, 50))}`);
  console.log(`  hooks added by predicted-latency: paired difference p50 ${us(pct(hDiffs, 50))}`);
  const cBase = coldTimes.get('precise-3-2-2')!;
  const cDiffs = coldTimes.get('predicted-latency')!.map((m, i) => m - cBase[i]);
  console.log(`  (the ${cDiffs.length} warm-up decisions before these, V8 still compiling: added p50 ${us(pct(cDiffs, 50))})`);
  for (const b of built) for (const p of b.cfg.plugins.values()) await p.close?.();
}

console.log('scheduler decision cost (Scheduler.schedule), one run on a shared machine: noisy, compare within the run');
await run(8, quick ? 500 : 3000, quick ? 5_000 : 30_000);
await run(96, quick ? 200 : 1000, quick ? 10_000 : 60_000);
