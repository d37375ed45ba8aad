#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's test runner (TypeScript through tsx).
// Node 20's --test takes no globs, so the files are listed here. The timeout (per test and per
// file) only catches hangs: a loaded 2-core machine can take minutes for the slowest files.
// A full run (no filter) also measures coverage of the sources (node's built-in V8 coverage,
// mapped back to the .ts files through tsx's source maps) and fails under COVERAGE_FLOOR.
// KVROUTER_COVERAGE=0 skips it; a filtered run (`node scripts/run-tests.js test/events`) never measures.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

/**
 * Percent of lines, branches and functions of the sources the tests load. Set from the full run
 * of 2026-12-07 (94.67 / 89.25 / 94.50) minus a margin for runs that differ in what they load.
 */
const COVERAGE_FLOOR = { lines: 92, branches: 87, functions: 92 };

function collect(dir, out) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) collect(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const filter = process.argv.slice(2);
let files = collect('test', []);
if (filter.length) files = files.filter((f) => filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const coverage = filter.length === 0 && process.env.KVROUTER_COVERAGE !== '0';
// stdout is piped (to read the coverage summary), so name the reporter node would pick itself.
const reporter = process.stdout.isTTY ? 'spec' : 'tap';
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=600000', `--test-reporter=${reporter}`, '--test-reporter-destination=stdout', ...(coverage ? ['--experimental-test-coverage'] : []), ...files],
  { stdio: ['inherit', 'pipe', 'inherit'] },
);
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString('utf8')).slice(-64 * 1024);
});
child.on('close', (code, signal) => {
  if (code !== 0) process.exit(code ?? (signal ? 1 : 0));
  if (!coverage) process.exit(0);
  // "all files | line % | branch % | funcs % |" (TAP lines start with "#", spec lines with "ℹ").
  const m = /all files\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)/.exec(tail);
  if (!m) {
    console.error('coverage: no summary in the test runner output');
    process.exit(1);
  }
  const got = { lines: Number(m[1]), branches: Number(m[2]), functions: Number(m[3]) };
  const low = Object.entries(COVERAGE_FLOOR).filter(([k, floor]) => got[k] < floor);
  console.log(`coverage: lines ${got.lines}%, branches ${got.branches}%, functions ${got.functions}% (floor ${COVERAGE_FLOOR.lines}/${COVERAGE_FLOOR.branches}/${COVERAGE_FLOOR.functions})`);
  if (low.length) {
    console.error(`coverage below the floor: ${low.map(([k, f]) => `${k} ${got[k]}% < ${f}%`).join(', ')}`);
    process.exit(1);
  }
  process.exit(0);
});
