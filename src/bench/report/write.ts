// Writes a run's artefacts: results.json, report.md, index.html and one .svg per chart.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchResults } from '../results.js';
import { lineChart, type ChartSpec } from './svg.js';
import { markdownReport } from './tables.js';

export function charts(r: BenchResults): Record<string, ChartSpec> {
  const ok = r.strategies.filter((s) => !s.error);
  const measured = (s: (typeof ok)[number]) => s.stages.filter((x) => !x.warmup);
  const xLabel = 'offered load (QPS, model time)';
  const oracle = {
    name: 'oracle (infinite cache)',
    dashed: true,
    points: (ok[0] ? measured(ok[0]) : []).map((x) => [x.rate, x.oracleHitRate * 100] as [number, number]),
  };
  return {
    'ttft-p90': {
      title: 'TTFT p90 vs load',
      xLabel,
      yLabel: 'TTFT p90 (s)',
      series: ok.map((s) => ({ name: s.label, points: measured(s).map((x) => [x.rate, x.ttft.p90] as [number, number]) })),
      yScale: 'auto',
    },
    throughput: {
      title: 'Output throughput vs load',
      xLabel,
      yLabel: 'output tokens/s',
      series: ok.map((s) => ({ name: s.label, points: measured(s).map((x) => [x.rate, x.outputTokPerSec] as [number, number]) })),
      yScale: 'linear',
    },
    'hit-rate': {
      title: 'Prefix-cache hit rate vs load',
      xLabel,
      yLabel: 'hit rate (%)',
      series: [...ok.map((s) => ({ name: s.label, points: measured(s).map((x) => [x.rate, x.hitRate * 100] as [number, number]) })), oracle],
      yScale: 'linear',
      yMin: 0,
      yMax: 100,
    },
  };
}

function htmlPage(r: BenchResults, svgs: Record<string, string>, md: string): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  // The markdown tables rendered as HTML tables; other lines as paragraphs or headings.
  const body: string[] = [];
  let table: string[][] | null = null;
  const flush = () => {
    if (!table) return;
    const [head, , ...rows] = table;
    body.push('<table><thead><tr>' + head.map((c) => `<th>${esc(c)}</th>`).join('') + '</tr></thead><tbody>');
    for (const rr of rows) body.push('<tr>' + rr.map((c) => `<td>${esc(c).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>')}</td>`).join('') + '</tr>');
    body.push('</tbody></table>');
    table = null;
  };
  for (const line of md.split('\n')) {
    if (line.startsWith('|')) {
      (table ??= []).push(line.slice(1, -1).split('|').map((c) => c.trim()));
      continue;
    }
    flush();
    if (line.startsWith('# ')) continue;
    if (line.startsWith('### ')) body.push(`<h3>${esc(line.slice(4))}</h3>`);
    else if (line.startsWith('## ')) {
      if (line === '## Per stage') body.push('<h2>Charts</h2>' + Object.values(svgs).map((s) => `<div class="chart">${s}</div>`).join(''));
      body.push(`<h2>${esc(line.slice(3))}</h2>`);
    } else if (line.startsWith('- ')) body.push(`<li>${esc(line.slice(2)).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>').replace(/`([^`]+)`/g, '<code>$1</code>')}</li>`);
    else if (line.trim()) body.push(`<p>${esc(line).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>').replace(/`([^`]+)`/g, '<code>$1</code>')}</p>`);
  }
  flush();
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kvrouter bench: ${esc(r.meta.workload.kind)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f4f4f4}
.chart{display:inline-block;margin:8px;border:1px solid #eee}
code{background:#f6f6f6;padding:1px 3px;font-size:12px;word-break:break-all}
</style></head><body>
<h1>kvrouter bench: ${esc(r.meta.workload.kind)}${r.meta.preset ? ` (preset ${esc(r.meta.preset)})` : ''}</h1>
${body.join('\n')}
</body></html>
`;
}

export interface WrittenFiles {
  dir: string;
  json: string;
  markdown: string;
  html: string;
  svgs: string[];
}

export function writeReport(r: BenchResults, dir: string): WrittenFiles {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'results.json');
  writeFileSync(json, JSON.stringify(r, null, 2) + '\n');
  const md = markdownReport(r);
  const markdown = join(dir, 'report.md');
  writeFileSync(markdown, md);
  const svgs: Record<string, string> = {};
  const svgFiles: string[] = [];
  for (const [name, spec] of Object.entries(charts(r))) {
    svgs[name] = lineChart(spec);
    const f = join(dir, `${name}.svg`);
    writeFileSync(f, svgs[name] + '\n');
    svgFiles.push(f);
  }
  const html = join(dir, 'index.html');
  writeFileSync(html, htmlPage(r, svgs, md));
  return { dir, json, markdown, html, svgs: svgFiles };
}
