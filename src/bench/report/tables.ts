// Markdown report: headline per strategy, then every stage.
import type { BenchResults, StageResult } from '../results.js';
import { fmtNum } from './svg.js';
import { crossValidationMarkdown } from '../virtual/cross-validate.js';

const pct = (v: number) => (Number.isFinite(v) ? (v * 100).toFixed(1) + '%' : '-');
const sec = (v: number) => (Number.isFinite(v) ? (v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3)) + ' s' : '-');
const ms = (v: number) => (Number.isFinite(v) ? (v * 1000).toFixed(v >= 0.1 ? 0 : 1) + ' ms' : '-');

function row(name: string, s: StageResult, first: string): string {
  return `| ${first}${name} | ${s.sent} | ${sec(s.ttft.p50)} | ${sec(s.ttft.p90)} | ${sec(s.ttft.p99)} | ${ms(s.itl.p50)} | ${fmtNum(s.outputTokPerSec)} | ${fmtNum(s.reqPerSec)} | ${pct(s.clientHitRate)} | ${pct(s.hitRate)} | ${pct(s.oracleHitRate)} | ${fmtNum(s.imbalanceRequests)} / ${fmtNum(s.imbalancePromptTokens)} | ${pct(s.errorRate)}${s.shed ? ` (${s.shed} shed)` : ''} |`;
}

const HEADER =
  '| strategy | requests | TTFT p50 | TTFT p90 | TTFT p99 | ITL p50 | output tok/s | req/s | client hit | pod hit | oracle | imbalance req / prompt tok | errors + shed |\n' +
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|';

export function markdownReport(r: BenchResults): string {
  const m = r.meta;
  const lines: string[] = [];
  lines.push(`# kvrouter bench: ${m.workload.kind}${m.preset ? ` (preset ${m.preset})` : ''}`);
  lines.push('');
  lines.push(
    `${m.pods} simulated pods, ${m.requests} requests per strategy, load ${m.load.type} ${m.load.stages.map((s) => s.rate + (s.warmup ? '(warm-up)' : '')).join(' -> ')} QPS, seed ${m.seed}, model ${m.model}.`,
  );
  lines.push(
    m.clock === 'virtual' && m.virtualClock
      ? `All times are model time on the virtual clock (discrete events; KV events after ${m.virtualClock.eventDelayMs} ms, scrapes every ${m.virtualClock.scrapeIntervalMs} ms, ${m.virtualClock.routerOverheadMs} ms router overhead). Started ${m.startedAt}, took ${Math.round(m.wallSeconds)} s wall on ${m.host.cpus} CPUs.`
      : `All times are model time (simulator time scale ${m.timeScale}: wall times divided by it). Started ${m.startedAt}, took ${Math.round(m.wallSeconds)} s wall on ${m.host.cpus} CPUs.`,
  );
  lines.push('');
  lines.push('Workload: `' + JSON.stringify(m.workload.params) + '`');
  lines.push('');
  lines.push('Simulator: `' + JSON.stringify(m.sim) + '`');
  lines.push('');
  lines.push(`Oracle (infinite cache, vLLM hit rule) hit rate: **${pct(r.oracle.hitRate)}** over all planned requests (warm-up included); the tables' oracle column covers exactly the requests each strategy served, in the order it sent them.`);
  lines.push('');
  lines.push('## Summary (all measured stages)');
  lines.push('');
  lines.push(HEADER);
  for (const s of r.strategies) lines.push(s.error ? `| ${s.label} | failed: ${s.error.replace(/\|/g, '/')} |` : row(s.label, s.total, ''));
  lines.push('');
  lines.push('Client hit: usage.prompt_tokens_details.cached_tokens / prompt tokens of served requests (what clients saw). Pod hit: vllm:prefix_cache_hits / vllm:prefix_cache_queries deltas across pods, which count a preempted request again each time it is rescheduled. ITL: per-request mean time between output tokens. Imbalance: max/mean over pods of routed requests and prompt tokens (1 = even). Throughput: output tokens of successful requests over the time from the stage\'s first send to its last completion.');
  lines.push('');
  if (r.strategies.some((s) => s.virtual)) lines.push(...virtualSection(r), '');
  if (r.crossValidation) lines.push(...crossValidationMarkdown(r.crossValidation), '');
  timeModelSection(r, lines);
  scenarioSection(r, lines);
  lines.push('## Per stage');
  lines.push('');
  const stages = r.strategies.find((s) => !s.error)?.stages ?? [];
  for (const st of stages) {
    lines.push(`### Stage ${st.index + 1}: ${st.rate} QPS x ${st.duration} s${st.warmup ? ' (warm-up)' : ''}`);
    lines.push('');
    lines.push(HEADER);
    for (const s of r.strategies) {
      const x = s.stages[st.index];
      if (x) lines.push(row(s.label, x, ''));
    }
    lines.push('');
  }
  lines.push('## Strategies');
  lines.push('');
  for (const s of r.strategies) {
    const lag = s.simLagMs !== undefined ? ` Simulator timer lag ${s.simLagMs.toFixed(2)} model-ms mean; ${Math.round(s.wallSeconds)} s wall.` : '';
    const src = s.source ? ` Source: ${s.source}.` : '';
    lines.push(`- **${s.label}** (\`${s.name}\`): ${s.description}.${src}${lag}`);
  }
  if (m.notes.length) {
    lines.push('');
    lines.push('## Notes');
    lines.push('');
    for (const n of m.notes) lines.push(`- ${n}`);
  }
  const errs = r.strategies.filter((s) => s.sampleErrors.length);
  if (errs.length) {
    lines.push('');
    lines.push('## Sample errors');
    lines.push('');
    for (const s of errs) for (const e of s.sampleErrors) lines.push(`- ${s.name}: ${e.replace(/\n/g, ' ')}`);
  }
  return lines.join('\n') + '\n';
}

/** Virtual clock: mean TTFT and waiting queue per strategy, and how fast each ran. */
function virtualSection(r: BenchResults): string[] {
  const out = [
    '## Virtual clock',
    '',
    '| strategy | TTFT mean | mean waiting queue per pod | model s | wall s | model s per wall s | wall us per request |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const s of r.strategies) {
    const v = s.virtual;
    if (!v || s.error) continue;
    out.push(`| ${s.label} | ${sec(s.total.ttft.mean)} | ${fmtNum(s.total.meanWaiting ?? NaN)} | ${fmtNum(v.modelSeconds)} | ${fmtNum(v.wallSeconds)} | ${fmtNum(v.speedup)} | ${fmtNum(v.usPerRequest)} |`);
  }
  return out;
}

function timeModelSection(r: BenchResults, lines: string[]): void {
  const tm = r.meta.timeModel;
  if (!tm) return;
  lines.push('## Time model');
  lines.push('');
  const t = tm.timing;
  lines.push(
    `Profile \`${tm.profile}\`${tm.overridden ? ' with command-line overrides' : ''}: step = ${t.stepOverheadMs} ms + prefill tokens x ${t.prefillPerTokenMs} ms + prefill attention pairs x ${t.prefillAttnPerPairMs ?? 0} ms + decoding sequences x ${t.decodePerSeqMs} ms + their context tokens x ${t.kvReadPerTokenMs ?? 0} ms.` +
      (tm.podTimingMultipliers ? ` Per-pod multipliers: ${tm.podTimingMultipliers.join(', ')}.` : ''),
  );
  lines.push('');
  lines.push('Derivation:');
  lines.push('');
  for (const l of tm.derivation) lines.push(`- ${l}`);
  lines.push('');
  lines.push(`Check against llm-d's published precise run (${tm.within20 ? 'within' : 'NOT within'} 20 %):`);
  lines.push('');
  for (const l of tm.check) lines.push(`- ${l}`);
  lines.push('');
}

function scenarioSection(r: BenchResults, lines: string[]): void {
  const sc = r.meta.scenario;
  if (!sc) return;
  lines.push('## Scenario');
  lines.push('');
  lines.push(`\`${sc.names.join(',')}\`: ${sc.description.join('; ')}.`);
  lines.push('');
  for (const s of r.strategies) {
    if (!s.scenarioEvents?.length) continue;
    const ev = s.scenarioEvents.map((e) => `${e.kind} pod ${e.pod} planned ${e.at.toFixed(1)} s, ${e.error ? `failed: ${e.error}` : e.doneAt !== undefined ? `done ${e.doneAt.toFixed(1)} s` : 'not reached'}`);
    lines.push(`- ${s.name}: ${ev.join('; ')}`);
  }
  lines.push('');
}
