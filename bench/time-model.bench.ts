// The time model against llm-d's published precise run on 73-capacity.
//
// Prints the h100-tp2-qwen3-32b constants with their derivation (src/sim/timing.ts), the
// steady-state check, then simulates ONE pod the way precise routing loads it in llm-d's run:
// its share of the groups (150 / 8) and of the offered QPS (Poisson), on a virtual clock, for
// each stage rate. x 8 gives the cluster. Baseline, in the same run: the previous constants
// (12 ms + 0.065 ms per prefill token + 0.25 ms per decoding sequence, no context term).
//
// Usage: npm run bench:time-model [-- --qps 10,20,60 --seconds 200]
import { parseArgs } from 'node:util';
import { Engine } from '../src/sim/engine.js';
import { VirtualClock } from '../src/sim/clock.js';
import { BlockHasher } from '../src/sim/hashing.js';
import { LLMD_73_PUBLISHED, PROFILES, calibrationCheck, type TimingModel } from '../src/sim/timing.js';
import { Rng, hashSeed, randomTokens } from '../src/bench/rng.js';

const { values: a } = parseArgs({ options: { qps: { type: 'string', default: '10,20,60' }, seconds: { type: 'string', default: '200' } } });
const rates = a.qps.split(',').map(Number);
const seconds = Number(a.seconds);
const PODS = 8;

function simulate(timing: TimingModel, clusterQps: number): { tokPerSec: number; itlMs: number; ttftP50: number; running: number; preemptions: number } {
  const clock = new VirtualClock();
  const engine = new Engine({
    blockSize: 64, numGpuBlocks: 4802, maxNumSeqs: 1024, maxNumBatchedTokens: 8192, maxModelLen: 40_960, timing,
    hasher: new BlockHasher('sha256', '42'), eventsEnabled: false,
    eventFields: { medium: 'GPU', extraKeys: false, groupIdx: null, kvCacheSpecKind: null }, clock, outputMode: 'random', seed: 1,
  });
  // This pod's share under precise routing: ~150/8 groups, each 5 fixed prompts.
  const groups = Math.round(150 / PODS);
  const pool: number[][] = [];
  for (let g = 0; g < groups; g++) {
    const sys = randomTokens(hashSeed(7, 'sys', g), 6000);
    for (let i = 0; i < 5; i++) pool.push(sys.concat(randomTokens(hashSeed(7, 'q', g, i), 1200)));
  }
  const rng = new Rng(hashSeed(7, 'arrivals'));
  const rate = clusterQps / PODS;
  const warm = 60;
  let out = 0;
  let itlSum = 0;
  let itlN = 0;
  const ttfts: number[] = [];
  let runningSum = 0;
  let runningN = 0;
  for (let t = rng.exponential(rate); t < seconds; t += rng.exponential(rate)) {
    const prompt = pool[rng.int(0, pool.length)];
    clock.at(t, () =>
      engine.submit({
        promptTokens: prompt, maxTokens: 1000,
        onFinish: (r) => {
          if (r.arrival < warm || r.finishReason !== 'length') return;
          ttfts.push(r.firstToken - r.arrival);
          itlSum += (r.finished - r.firstToken) / (r.outputCount - 1);
          itlN++;
        },
      }),
    );
  }
  engine.listener.onStep = (_p, decodeSeqs) => {
    if (clock.now() >= warm) {
      out += decodeSeqs;
      runningSum += engine.numRunning;
      runningN++;
    }
  };
  clock.runUntil(seconds);
  engine.stop();
  ttfts.sort((x, y) => x - y);
  return {
    tokPerSec: (out / (seconds - warm)) * PODS,
    itlMs: (itlSum / itlN) * 1000,
    ttftP50: ttfts[Math.floor(ttfts.length / 2)] ?? NaN,
    running: runningSum / runningN,
    preemptions: engine.preemptionsTotal,
  };
}

const now: TimingModel = PROFILES['h100-tp2-qwen3-32b'].timing;
const before: TimingModel = { stepOverheadMs: 12, prefillPerTokenMs: 0.065, decodePerSeqMs: 0.25 };
console.log('h100-tp2-qwen3-32b derivation:');
for (const l of PROFILES['h100-tp2-qwen3-32b'].derivation ?? []) console.log(`  ${l}`);
console.log('check:');
for (const l of calibrationCheck(now).lines) console.log(`  ${l}`);
console.log('baseline (previous constants) check:');
for (const l of calibrationCheck(before).lines.slice(1, 3)) console.log(`  ${l}`);
console.log(`\none pod under precise-like routing, x ${PODS} pods, Poisson, ${seconds} model s (first 60 s not measured):`);
console.log('model      | QPS | output tok/s (8 pods) | mean ITL ms | TTFT p50 s | running/pod | preemptions');
for (const qps of rates) {
  for (const [name, t] of [['derived', now], ['previous', before]] as const) {
    const r = simulate(t, qps);
    const f = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : '-');
    console.log(
      `${name.padEnd(10)} | ${String(qps).padStart(3)} | ${Math.round(r.tokPerSec).toLocaleString('en-US').padStart(21)} | ${f(r.itlMs, 1).padStart(11)} | ${f(r.ttftP50, 2).padStart(10)} | ${r.running.toFixed(0).padStart(11)} | ${r.preemptions}`,
    );
  }
}
console.log(
  '\nAbove ~11k output tok/s the pods are KV-bound (running sequences fill the cache, preemptions start); an open-loop Poisson' +
    " client then queues without bound. llm-d's precise run kept TTFT ~0.5 s at every rate because inference-perf caps each worker's in-flight requests.",
);
console.log(`published (${LLMD_73_PUBLISHED.source}): ${LLMD_73_PUBLISHED.outputTokPerSec.toLocaleString('en-US')} output tok/s over the whole ladder, ~10.5k at 60 QPS, ITL p90 ${LLMD_73_PUBLISHED.itlP90Ms.join('-')} ms`);
