// The scheduler comparison table (docs/bench/scheduler.md): runs each named workload for each
// strategy on the virtual clock (one `kvrouter bench` process per cell, sequentially, so a
// failed or slow cell costs only itself), then prints rows = workloads, columns = strategies,
// cells = TTFT p90 / TTFT p99 / output tok/s over the measured stages.
//   node --import tsx bench/scheduler-table.ts [--out DIR] [--workloads a,b] [--strategies a,b] [--table-only]
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SCHEDULER_COMPARISON } from '../src/bench/scheduler-presets.js';

const WORKLOADS = ['llm-d-73', 'sched-knee', 'sched-hetero', 'sched-pressure', 'sched-churn', 'sched-chat', 'sched-long-output', 'sched-64'];

const { values: v } = parseArgs({
  options: {
    out: { type: 'string', default: 'bench-results/scheduler' },
    workloads: { type: 'string' },
    strategies: { type: 'string' },
    'table-only': { type: 'boolean' },
  },
});
const workloads = v.workloads ? v.workloads.split(',') : WORKLOADS;
const strategies = v.strategies ? v.strategies.split(',') : SCHEDULER_COMPARISON;
const cellDir = (w: string, s: string) => join(v.out as string, `${w}--${s}`);

if (!v['table-only']) {
  for (const w of workloads) {
    for (const s of strategies) {
      if (existsSync(join(cellDir(w, s), 'results.json'))) continue;
      console.error(`${w} / ${s} ...`);
      spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'bench', '--preset', w, '--strategies', s, '--out', cellDir(w, s), '--quiet'], { stdio: 'inherit' });
    }
  }
}

interface Total { ttft: { p90: number; p99: number }; outputTokPerSec: number; clientHitRate: number }
const fmt = (x: number) => (x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3));
const lines = [`| workload | ${strategies.join(' | ')} |`, `|---|${strategies.map(() => '---').join('|')}|`];
for (const w of workloads) {
  const cells = strategies.map((s) => {
    const f = join(cellDir(w, s), 'results.json');
    if (!existsSync(f)) return 'not run';
    const r = JSON.parse(readFileSync(f, 'utf8')) as { strategies: { error?: string; total: Total }[] };
    const st = r.strategies[0];
    if (!st || st.error) return `failed`;
    const t = st.total;
    return `${fmt(t.ttft.p90)} / ${fmt(t.ttft.p99)} / ${Math.round(t.outputTokPerSec)} (${(t.clientHitRate * 100).toFixed(0)} %)`;
  });
  lines.push(`| ${w} | ${cells.join(' | ')} |`);
}
console.log(lines.join('\n'));
