// `kvrouter bench`: routing strategies side by side on standard workloads, against fresh
// simulated pods per strategy; writes results.json, report.md, index.html and SVG charts.
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { resolveBench, PRESET_NAMES, type BenchFlags } from '../../bench/options.js';
import { STRATEGIES } from '../../bench/strategies.js';
import { SCENARIO_HELP } from '../../bench/scenarios.js';

const HELP = `Usage: kvrouter bench [--preset NAME] [options]

Runs each routing strategy against fresh simulated vLLM pods (one router per strategy, the same
seeded request sequence and schedule) and reports TTFT p50/p90/p99, ITL, output tok/s, req/s,
prefix-cache hit rate (pods' /metrics), load imbalance, errors and shed load per stage, against
the workload's oracle hit rate (infinite cache). Times are model time (wall / --time-scale).

  --preset NAME            ${PRESET_NAMES.join(' | ')} (flags below override it)
  --workload W             shared_prefix | multi_round | trace
  --strategies a,b,...     ${STRATEGIES.map((s) => s.name).join(', ')}
  --pods N                 simulated pods per strategy
  --qps 3,10,20            stage ladder (requests/s, model time)
  --stage-duration S       model seconds per stage
  --load constant|poisson  arrival process (default poisson)
  --warmup RATExSEC        an unreported warm-up stage first, e.g. 15x50
  --seed S                 workload and arrival seed (default 42)
  --time-scale X           simulator slow-down (wall seconds per model second)
  --out DIR                output directory (default bench-results/<timestamp>)
  shared_prefix: --groups N --prompts-per-group N --system-len T --question-len T --output-len T [--multi-turn]
  multi_round:   --users N --rounds N --system-len T --history-len T --question-len T --output-len T
  trace:         --trace FILE.jsonl [--trace-speed X] [--max-output-len T]   (Mooncake format)
  --max-requests N         cap the number of requests
  simulator:     --block-size B --num-gpu-blocks N --max-num-seqs N --max-num-batched-tokens N
                 --max-model-len N --profile NAME --model M
  time model (ms; default: the profile's, derived in src/sim/timing.ts):
                 --step-overhead-ms X --prefill-ms-per-token X --decode-ms-per-seq X
                 --kv-read-ms-per-token X (per context token of each decoding sequence)
                 --prefill-attn-ms-per-pair X (per prefill token x earlier token attended to)
                 --pod-timing-multipliers 1,1,2,2 (one per pod: heterogeneous pods)
  --scenario a,b,...       scenarios, with any preset:
${SCENARIO_HELP}
  --in-process-pods        host the pods in this process (default: a child process)
  --drain-timeout S        model seconds to wait for in-flight requests after the last send
  --clock real|virtual     default: the preset's (llm-d-73, mooncake-*, scale-*: virtual; others real).
                           real: the simulator in scaled wall time, the router over HTTP;
                           virtual: the same router logic and engines on one discrete-event clock
                           in model time, as fast as the CPU allows, deterministic per seed
  virtual clock: --event-delay-ms MS (default 5) --scrape-interval-ms MS (default 50)
                 --router-overhead-ms MS (default 1; tokenization, HTTP and proxy before the pod)
  inference-perf semantics (both clocks):
  --order cyclic|stage-cyclic|random
                           shared_prefix prompt order: the pool shuffled once and cycled (stage-cyclic:
                           from its first prompt again at every stage, as inference-perf), or drawn
                           at random (default random; llm-d-73: stage-cyclic)
  --drain-stages           start each stage once every request of the previous one finished
  --stage-durations 20,30  model seconds per stage (one value per --qps rate, or one for all)
  --max-inflight N         client concurrency cap; due requests queue, TTFT runs from the send
  --stage-interval S       virtual clock: model seconds between stages (inference-perf: 1)
  --request-timeout S      virtual clock: abandon a request S model seconds after its send; it counts
                           as an error, not in TTFT or throughput (aiohttp's default: 300)
  --quiet                  no progress output
`;

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        preset: { type: 'string' },
        workload: { type: 'string' },
        strategies: { type: 'string' },
        pods: { type: 'string' },
        qps: { type: 'string' },
        'stage-duration': { type: 'string' },
        load: { type: 'string' },
        warmup: { type: 'string' },
        seed: { type: 'string' },
        'time-scale': { type: 'string' },
        out: { type: 'string' },
        trace: { type: 'string' },
        'trace-speed': { type: 'string' },
        'max-requests': { type: 'string' },
        'max-output-len': { type: 'string' },
        groups: { type: 'string' },
        'prompts-per-group': { type: 'string' },
        'system-len': { type: 'string' },
        'question-len': { type: 'string' },
        'output-len': { type: 'string' },
        'multi-turn': { type: 'boolean' },
        users: { type: 'string' },
        rounds: { type: 'string' },
        'history-len': { type: 'string' },
        'block-size': { type: 'string' },
        'num-gpu-blocks': { type: 'string' },
        'max-num-seqs': { type: 'string' },
        profile: { type: 'string' },
        model: { type: 'string' },
        'in-process-pods': { type: 'boolean' },
        'max-num-batched-tokens': { type: 'string' },
        'max-model-len': { type: 'string' },
        'step-overhead-ms': { type: 'string' },
        'prefill-ms-per-token': { type: 'string' },
        'decode-ms-per-seq': { type: 'string' },
        'kv-read-ms-per-token': { type: 'string' },
        'prefill-attn-ms-per-pair': { type: 'string' },
        'pod-timing-multipliers': { type: 'string' },
        scenario: { type: 'string' },
        'drain-timeout': { type: 'string' },
        quiet: { type: 'boolean' },
        clock: { type: 'string' },
        'event-delay-ms': { type: 'string' },
        'scrape-interval-ms': { type: 'string' },
        'router-overhead-ms': { type: 'string' },
        order: { type: 'string' },
        'drain-stages': { type: 'boolean' },
        'stage-durations': { type: 'string' },
        'max-inflight': { type: 'string' },
        'stage-interval': { type: 'string' },
        'request-timeout': { type: 'string' },
      },
    });
  } catch (err) {
    console.error(`kvrouter bench: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const num = (name: string, s: string | undefined): number | undefined => {
    if (s === undefined) return undefined;
    const n = Number(s);
    if (!Number.isFinite(n)) throw new Error(`--${name} expects a number (got "${s}")`);
    return n;
  };
  let resolved;
  try {
    const flags: BenchFlags = {
      preset: v.preset, workload: v.workload, strategies: v.strategies, pods: num('pods', v.pods), qps: v.qps,
      stageDuration: num('stage-duration', v['stage-duration']), load: v.load, warmup: v.warmup, seed: num('seed', v.seed),
      timeScale: num('time-scale', v['time-scale']), trace: v.trace, traceSpeed: num('trace-speed', v['trace-speed']),
      maxRequests: num('max-requests', v['max-requests']), maxOutputLen: num('max-output-len', v['max-output-len']),
      groups: num('groups', v.groups), promptsPerGroup: num('prompts-per-group', v['prompts-per-group']),
      systemLen: num('system-len', v['system-len']), questionLen: num('question-len', v['question-len']),
      outputLen: num('output-len', v['output-len']), multiTurn: v['multi-turn'], users: num('users', v.users),
      rounds: num('rounds', v.rounds), historyLen: num('history-len', v['history-len']), blockSize: num('block-size', v['block-size']),
      numGpuBlocks: num('num-gpu-blocks', v['num-gpu-blocks']), maxNumSeqs: num('max-num-seqs', v['max-num-seqs']),
      profile: v.profile, model: v.model, drainTimeout: num('drain-timeout', v['drain-timeout']), inProcessPods: v['in-process-pods'],
      clock: v.clock, eventDelayMs: num('event-delay-ms', v['event-delay-ms']), scrapeIntervalMs: num('scrape-interval-ms', v['scrape-interval-ms']),
      routerOverheadMs: num('router-overhead-ms', v['router-overhead-ms']), order: v.order, drainStages: v['drain-stages'],
      stageDurations: v['stage-durations'], maxInflight: num('max-inflight', v['max-inflight']),
      stageInterval: num('stage-interval', v['stage-interval']), requestTimeout: num('request-timeout', v['request-timeout']),
      maxNumBatchedTokens: num('max-num-batched-tokens', v['max-num-batched-tokens']), maxModelLen: num('max-model-len', v['max-model-len']),
      stepOverheadMs: num('step-overhead-ms', v['step-overhead-ms']), prefillMsPerToken: num('prefill-ms-per-token', v['prefill-ms-per-token']),
      decodeMsPerSeq: num('decode-ms-per-seq', v['decode-ms-per-seq']), kvReadMsPerToken: num('kv-read-ms-per-token', v['kv-read-ms-per-token']),
      prefillAttnMsPerPair: num('prefill-attn-ms-per-pair', v['prefill-attn-ms-per-pair']),
      podTimingMultipliers: v['pod-timing-multipliers'], scenario: v.scenario,
    };
    resolved = resolveBench(flags);
  } catch (err) {
    console.error(`kvrouter bench: ${(err as Error).message}`);
    return 2;
  }
  const { runBench } = await import('../../bench/runner.js');
  const { defaultHarness } = await import('../../bench/hosts.js');
  const { writeReport } = await import('../../bench/report/write.js');
  const { Progress } = await import('../../bench/progress.js');
  const out = v.out ?? join('bench-results', new Date().toISOString().replace(/[:.]/g, '-'));
  const progress = new Progress(process.stderr, !!v.quiet);
  // With --clock virtual, runBench hands the options to the virtual runner (no pods, no harness).
  const results = await runBench(defaultHarness({ inProcessPods: resolved.inProcessPods }), { ...resolved.options, progress });
  const files = writeReport(results, out);
  progress.log(`results: ${files.json}\nreport:  ${files.markdown}\nhtml:    ${files.html}\ncharts:  ${files.svgs.join(', ')}`);
  const failed = results.strategies.filter((s) => s.error);
  if (failed.length) {
    console.error(`kvrouter bench: ${failed.length} strateg${failed.length === 1 ? 'y' : 'ies'} failed: ${failed.map((s) => `${s.name} (${s.error})`).join('; ')}`);
    return 1;
  }
  return 0;
}
