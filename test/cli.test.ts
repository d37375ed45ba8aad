import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CLI } from './helpers/cli.js';

test('kvrouter --help lists every subcommand', () => {
  const res = spawnSync(process.execPath, [...CLI, '--help'], { encoding: 'utf8' });
  assert.equal(res.status, 0, res.stderr);
  for (const name of ['keys', 'tokenize', 'sim', 'serve', 'epp', 'bench']) assert.match(res.stdout, new RegExp(`\\b${name}\\b`));
});

test('an unknown subcommand exits 2 with usage', () => {
  const res = spawnSync(process.execPath, [...CLI, 'frobnicate'], { encoding: 'utf8' });
  assert.equal(res.status, 2);
  assert.match(res.stderr, /unknown command "frobnicate"/);
});
