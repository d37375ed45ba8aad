// `kvrouter tokenize` prints the /tokenize JSON.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CLI } from '../helpers/cli.js';

const run = (...args: string[]) => spawnSync(process.execPath, [...CLI, 'tokenize', ...args], { encoding: 'utf8', env: { ...process.env, HF_HOME: '/nonexistent' } });

test('--prompt prints count, max_model_len and tokens', () => {
  const r = run('--model', 'Qwen/Qwen3-0.6B', '--prompt', 'Hello world!');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { count: 3, max_model_len: 40960, tokens: [9707, 1879, 0] });
});

test('--messages with --kwargs and --render prints the rendered chat', () => {
  const rendered = run('--model', 'Qwen/Qwen3-0.6B', '--messages', '[{"role":"user","content":"hi"}]', '--kwargs', '{"enable_thinking":false}', '--render');
  assert.equal(rendered.status, 0, rendered.stderr);
  assert.equal(rendered.stdout, '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
});

test('an unknown model exits 1 with the error; bad usage exits 2', () => {
  const r = run('--model', 'nobody/nothing', '--prompt', 'x');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /nobody\/nothing/);
  assert.equal(run('--prompt', 'x').status, 2);
  assert.equal(run('--model', 'Qwen/Qwen3-0.6B').status, 2);
  assert.equal(run('--model', 'Qwen/Qwen3-0.6B', '--messages', '[oops').status, 1);
});
