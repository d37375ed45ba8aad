// Cross-validation of the virtual clock against the real-time harness, as a benchmark report:
// the small preset (crossValidationOptions) through both runners, per strategy pod hit rate
// (bound: 2 points) and TTFT p50/p90 (bound: 15 %), plus the spread of the random strategy over
// its own draws, which one run per clock cannot separate from a clock difference.
// Writes results.json + report.md (with the cross-validation section) to --out.
//
// Usage: npm run bench:cross-validate [-- --strategies precise,round-robin,random --draws 10 --time-scale 2 --out DIR]
// The real side is wall time scaled by --time-scale: on a busy machine its simulator lags (the
// report prints the lag; clean below 1 model-ms), and a larger scale gives it more headroom.
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { defaultHarness } from '../src/bench/hosts.js';
import { Progress } from '../src/bench/progress.js';
import { writeReport } from '../src/bench/report/write.js';
import { runVirtualBench } from '../src/bench/virtual/runner.js';
import { crossValidate, crossValidationMarkdown, crossValidationOptions } from '../src/bench/virtual/cross-validate.js';

const { values: a } = parseArgs({
  options: {
    strategies: { type: 'string', default: 'precise,round-robin,random' },
    draws: { type: 'string', default: '10' },
    'time-scale': { type: 'string', default: '2' },
    out: { type: 'string', default: `bench-results/cross-validation-${new Date().toISOString().replace(/[:.]/g, '-')}` },
  },
});
const strategies = a.strategies.split(',').map((s) => s.trim()).filter(Boolean);
const draws = Number(a.draws);
const quiet = new Progress({ write: () => true, isTTY: false }, true);
const opts = { ...crossValidationOptions(strategies, quiet), timeScale: Number(a['time-scale']) };

const load = () => loadavg().map((x) => x.toFixed(2)).join(' / ');
console.log(`load average (1/5/15 min) before: ${load()}`);
const wall0 = performance.now();
const { virtual, comparison } = await crossValidate(defaultHarness({ inProcessPods: false }), opts);
console.log(crossValidationMarkdown(comparison).join('\n'));
console.log(`\nreal-clock simulator lag: ${(comparison.realLagMs ?? 0).toFixed(2)} model-ms mean per timer (clean below 1); ${((performance.now() - wall0) / 1000).toFixed(0)} s wall; load average after: ${load()}`);

// Strategies that draw at random: the same schedule, `draws` different pick seeds, virtual clock.
const randomized = strategies.filter((s) => s === 'random');
if (randomized.length && draws > 1) {
  console.log(`\n### Spread over ${draws} draws of the pickers' randomness (virtual clock, same schedule)\n`);
  console.log('| strategy | pod hit rate mean | sd | min | max | TTFT p90 mean (s) | min | max | real clock (one draw): hit, TTFT p90 |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const name of randomized) {
    const hits: number[] = [];
    const p90s: number[] = [];
    for (let k = 1; k <= draws; k++) {
      const r = await runVirtualBench({ ...opts, strategies: [name], clock: 'virtual', timeScale: 1 }, { pickSeedOffset: k });
      hits.push(r.strategies[0].total.hitRate * 100);
      p90s.push(r.strategies[0].total.ttft.p90);
    }
    const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
    const sd = Math.sqrt(mean(hits.map((h) => (h - mean(hits)) ** 2)));
    const row = comparison.rows.find((r) => r.strategy === name);
    console.log(
      `| ${name} | ${mean(hits).toFixed(1)} % | ${sd.toFixed(1)} | ${Math.min(...hits).toFixed(1)} | ${Math.max(...hits).toFixed(1)} | ${mean(p90s).toFixed(3)} | ${Math.min(...p90s).toFixed(3)} | ${Math.max(...p90s).toFixed(3)} | ${row ? `${(row.hitReal * 100).toFixed(1)} %, ${row.ttftP90Real.toFixed(3)} s` : ''} |`,
    );
  }
}
const files = writeReport(virtual, a.out);
console.log(`\nwrote ${files.markdown}`);
