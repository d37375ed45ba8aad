// Limits from the config's `limits` section and from `serve` flags: validation naming the key,
// defaults < config < flags, and a real router over loopback running with what the config says.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseEndpointPickerConfig } from '../../src/scheduler/config.js';
import { LIMIT_SETTINGS, configKey, limitsFromConfig, limitsFromFlags, resolveLimits } from '../../src/gateway/limit-settings.js';
import { HTTP_EDGE_DEFAULTS } from '../../src/gateway/limits.js';
import { DEFAULT_REQUEST_LIMITS } from '../../src/gateway/request-limits.js';
import { CLI } from '../helpers/cli.js';
import { startPod, startRouterFor, type FakePod } from './fake-pods.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('every limit flag has a config key; the config takes Go durations and integers', () => {
  assert.equal(configKey('upstream-first-byte-timeout'), 'upstreamFirstByteTimeout');
  const cfg = parseEndpointPickerConfig(`
limits:
  maxBodyBytes: 1048576
  headersTimeout: 10s
  upstreamFirstByteTimeout: 2m30s
  upstreamIdleTimeout: 0
  slowStart: 1500ms
  maxMessages: 64
`);
  const v = limitsFromConfig(cfg.limits);
  assert.deepEqual(v.edge, { maxBodyBytes: 1048576, headersTimeoutMs: 10_000, upstreamFirstByteTimeoutMs: 150_000, upstreamIdleTimeoutMs: 0, slowStartMs: 1500 });
  assert.deepEqual(v.request, { maxMessages: 64 });
  // A parsed config parses again unchanged (epp and embedded pass parsed configs on).
  assert.deepEqual(parseEndpointPickerConfig(cfg).limits, cfg.limits);
  // The table covers every edge limit.
  const edgeKeys = LIMIT_SETTINGS.flatMap((s) => ('edge' in s ? [s.edge] : []));
  assert.deepEqual([...edgeKeys].sort(), Object.keys(HTTP_EDGE_DEFAULTS).sort());
});

test('a bad value in the limits section is a config error naming the key', () => {
  const cases: [string, RegExp][] = [
    ['headersTimeout: 30', /limits\.headersTimeout: .*duration.*nanoseconds/],
    ['keepAliveTimeout: "30"', /limits\.keepAliveTimeout: .*has no unit/],
    ['upstreamIdleTimeout: -1s', /limits\.upstreamIdleTimeout: .*negative/],
    ['maxBodyBytes: -5', /limits\.maxBodyBytes: expected a non-negative integer/],
    ['maxConnections: 1.5', /limits\.maxConnections: expected a non-negative integer/],
    ['maxMessages: 0', /limits\.maxMessages: expected a positive integer/],
    ['maxBodyBytes: "1000"', /limits\.maxBodyBytes: expected a non-negative integer/],
    ['headerTimeout: 30s', /limits: .*headerTimeout/],
  ];
  for (const [line, re] of cases) {
    assert.throws(
      () => parseEndpointPickerConfig(`limits:\n  ${line}\n`, 'router.yaml'),
      (err: unknown) => err instanceof ConfigError && re.test(err.message) && err.message.startsWith('router.yaml'),
      line,
    );
  }
});

test('flags: bare numbers are milliseconds and counts; bad ones name the flag', () => {
  const v = limitsFromFlags({ 'headers-timeout': '2500', 'request-timeout': '1m', 'max-body-bytes': '4096', 'max-prompt-tokens': '100' });
  assert.deepEqual(v.edge, { headersTimeoutMs: 2500, requestTimeoutMs: 60_000, maxBodyBytes: 4096 });
  assert.deepEqual(v.request, { maxPromptTokens: 100 });
  assert.throws(() => limitsFromFlags({ 'max-connections': 'lots' }), /--max-connections: expected a non-negative integer/);
  assert.throws(() => limitsFromFlags({ 'slow-start': 'soon' }), /--slow-start: invalid duration/);
});

test('defaults < config < flags', () => {
  const r = resolveLimits(
    { edge: { maxBodyBytes: 1000, headersTimeoutMs: 5000 }, request: { maxMessages: 10, maxPromptChars: 500 } },
    { edge: { maxBodyBytes: 2000, keepAliveTimeoutMs: undefined }, request: { maxMessages: 20, maxPromptTokens: undefined } },
  );
  assert.equal(r.edge.maxBodyBytes, 2000); // flag over config
  assert.equal(r.edge.headersTimeoutMs, 5000); // config over default
  assert.equal(r.edge.keepAliveTimeoutMs, HTTP_EDGE_DEFAULTS.keepAliveTimeoutMs); // an unset flag keeps the config/default
  assert.equal(r.request.maxMessages, 20);
  assert.equal(r.request.maxPromptChars, 500);
  assert.equal(r.request.maxPromptTokens, DEFAULT_REQUEST_LIMITS.maxPromptTokens);
});

async function post(url: string, body: string): Promise<{ status: number; code: unknown }> {
  const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const json = (await res.json()) as { error?: { code?: unknown } };
  return { status: res.status, code: json.error?.code };
}

test('a router runs with the config limits, and options (flags) override them', async () => {
  const pod: FakePod = await startPod();
  cleanups.push(() => pod.close());
  const config = { plugins: [{ type: 'queue-scorer' }], limits: { maxBodyBytes: 2000, maxPromptChars: 300 } };
  const fromConfig = await startRouterFor([pod], { config });
  cleanups.push(() => fromConfig.close());
  const flagged = await startRouterFor([pod], { config, limits: { maxBodyBytes: 8000 }, requestLimits: { maxPromptChars: 5000 } });
  cleanups.push(() => flagged.close());

  const mid = JSON.stringify({ model: 'm', prompt: 'x'.repeat(3000), max_tokens: 1 }); // > 2000 bytes, < 8000
  const small = JSON.stringify({ model: 'm', prompt: 'x'.repeat(400), max_tokens: 1 }); // 400 characters > 300
  assert.deepEqual(await post(fromConfig.url, mid), { status: 413, code: 'body_too_large' });
  assert.deepEqual(await post(fromConfig.url, small), { status: 413, code: 'prompt_too_large' });
  assert.deepEqual(await post(flagged.url, mid), { status: 200, code: undefined });
  assert.deepEqual(await post(flagged.url, small), { status: 200, code: undefined });
  assert.equal(pod.served, 2);
});

test('kvrouter serve refuses a config with a bad limit, naming the key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvr-limits-'));
  const path = join(dir, 'router.yaml');
  writeFileSync(path, 'limits:\n  upstreamConnectTimeout: 5\n');
  const res = spawnSync(process.execPath, [...CLI, 'serve', '--config', path, '--port', '0'], { encoding: 'utf8', timeout: 60_000 });
  assert.notEqual(res.status, 0);
  assert.match(res.stderr, /limits\.upstreamConnectTimeout/);
});

test("README's limits example is valid, lists every limit, and shows the defaults", () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Limits and timeouts'));
  const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1];
  const cfg = parseEndpointPickerConfig(yaml, 'README.md');
  assert.deepEqual(Object.keys(cfg.limits!).sort(), LIMIT_SETTINGS.map((s) => configKey(s.flag)).sort());
  const r = resolveLimits(limitsFromConfig(cfg.limits), { edge: {}, request: {} });
  assert.deepEqual(r.edge, HTTP_EDGE_DEFAULTS);
  assert.deepEqual(r.request, DEFAULT_REQUEST_LIMITS);
});
