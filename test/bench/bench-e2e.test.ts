// End to end: a tiny shared-prefix run through real simulated pods and the real router for
// precise and random, then the JSON, markdown, HTML and SVG artefacts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBench } from '../../src/bench/runner.js';
import { defaultHarness } from '../../src/bench/hosts.js';
import { writeReport } from '../../src/bench/report/write.js';
import { Progress } from '../../src/bench/progress.js';
import { sharedPrefixWorkload } from '../../src/bench/workloads/shared-prefix.js';
import type { BenchResults } from '../../src/bench/results.js';

test('bench: shared_prefix, precise vs random, end to end with reports', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvrouter-bench-'));
  try {
    const lines: string[] = [];
    const results = await runBench(defaultHarness({ inProcessPods: true }), {
      // 6 groups x 2 prompts with 512-token (32-block) system prompts on 2 pods of 128 blocks:
      // a pod holds at most ~3 groups' prefixes next to its running requests, so spreading groups
      // over both pods (random) churns both caches while keeping each group on one pod does not.
      workload: sharedPrefixWorkload({ numGroups: 6, promptsPerGroup: 2, systemPromptLen: 512, questionLen: 32, outputLen: 8, seed: 11 }),
      load: { type: 'poisson', stages: [{ rate: 6, duration: 2 }, { rate: 12, duration: 2 }] },
      strategies: ['precise', 'random'],
      sim: { pods: 2, model: 'Qwen/Qwen3-0.6B', blockSize: 16, numGpuBlocks: 128, profile: 'h100-tp2-qwen3-32b' },
      timeScale: 1,
      seed: 5,
      drainTimeoutSec: 20,
      progress: new Progress({ write: (s: string) => (lines.push(s), true), isTTY: false }),
    });
    const files = writeReport(results, dir);

    const json = JSON.parse(readFileSync(files.json, 'utf8')) as BenchResults;
    assert.equal(json.strategies.length, 2);
    const [precise, random] = json.strategies;
    for (const s of json.strategies) {
      assert.equal(s.error, undefined, `${s.name}: ${s.error}`);
      assert.equal(s.stages.length, 2);
      assert.equal(s.total.errors + s.total.shed, 0, `${s.name} errors: ${s.sampleErrors.join('; ')}`);
      assert.equal(s.total.sent, json.meta.requests);
      assert.ok(s.total.ttft.p50 > 0 && s.total.ttft.p50 < 5, `${s.name} TTFT p50 ${s.total.ttft.p50}`);
      assert.ok(s.total.ttft.p90 >= s.total.ttft.p50 && s.total.ttft.p99 >= s.total.ttft.p90);
      assert.ok(s.total.itl.p50 > 0 && s.total.itl.p50 < 1, `${s.name} ITL p50 ${s.total.itl.p50}`);
      assert.ok(s.total.outputTokPerSec > 0 && s.total.reqPerSec > 0);
      assert.ok(s.total.hitRate > 0 && s.total.hitRate <= 1, `${s.name} hit rate ${s.total.hitRate}`);
      // The pods' counters and the responses' cached_tokens tell the same story (a preempted
      // request is queried again when it is rescheduled, so allow for that).
      const preempted = s.total.perPod.reduce((a, p) => a + p.preemptions, 0);
      if (preempted === 0) assert.ok(Math.abs(s.total.hitRate - s.total.clientHitRate) < 0.05, `${s.name}: pods ${s.total.hitRate} vs usage ${s.total.clientHitRate}`);
      assert.ok(json.oracle.hitRate + 1e-9 >= s.total.hitRate, `oracle ${json.oracle.hitRate} >= ${s.name} ${s.total.hitRate}`);
      assert.ok(s.total.imbalanceRequests >= 1 && s.total.imbalanceRequests <= 2);
      assert.equal(s.total.perPod.length, 2);
      assert.equal(s.total.perPod.reduce((a, p) => a + p.requests, 0), s.total.ok);
      assert.equal(s.total.routedPerPod?.reduce((a, b) => a + b, 0), s.total.sent, 'every request names its endpoint');
    }
    assert.ok(precise.total.hitRate > random.total.hitRate, `precise ${precise.total.hitRate} > random ${random.total.hitRate}`);

    const md = readFileSync(files.markdown, 'utf8');
    assert.match(md, /\| precise \(llm-d 2:1:1\) \| \d+ \| [\d.]+ s \|/);
    assert.match(md, /Oracle \(infinite cache, vLLM hit rule\) hit rate: \*\*\d+\.\d%\*\*/);
    const html = readFileSync(files.html, 'utf8');
    assert.match(html, /<table>/);
    assert.equal((html.match(/<svg /g) ?? []).length, 3);
    assert.equal(files.svgs.length, 3);
    for (const f of files.svgs) {
      const svg = readFileSync(f, 'utf8');
      assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      assert.match(svg, /<path d="M[\d.]+ [\d.]+ L/); // at least one line with two points
      assert.ok(svg.includes('random') && svg.includes('precise'));
    }
    assert.ok(lines.some((l) => l.includes('precise: TTFT p90')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
