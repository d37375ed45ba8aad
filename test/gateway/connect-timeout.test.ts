// The upstream connect timeout, over real sockets. A pod whose TCP connects hang is made on
// loopback by filling a listener's accept queue: a child process listens with backlog 1 and then
// blocks its own event loop forever, so it never accepts; once two connections wait in its queue,
// Linux drops further SYNs and a connect to it neither succeeds nor fails. The router must give up
// after its configured connect timeout and try another pod, or answer an OpenAI-style 502.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import type { Router } from '../../src/gateway/router.js';
import { SUBSET_HEADER } from '../../src/gateway/parse.js';
import { COMPLETION, startPod, startRouterFor, type FakePod } from './fake-pods.js';

const CONNECT_TIMEOUT_MS = 300;

// Listens with backlog 1, prints its port, then never runs its event loop again.
const BLACKHOLE = `
const s = require('node:net').createServer();
s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  process.stdout.write(s.address().port + '\\n', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0));
});`;

interface Blackhole {
  child: ChildProcess;
  address: string;
  /** Connections sitting in its accept queue (established by the kernel, never accepted). */
  fillers: Socket[];
  /** A connect started once the queue was full: it must still be pending when the test ends. */
  probe: { socket: Socket; connected: boolean };
  close(): void;
}

async function startBlackhole(): Promise<Blackhole> {
  const child = spawn(process.execPath, ['-e', BLACKHOLE], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.once('exit', (code) => reject(new Error(`blackhole exited with ${code}`)));
  });
  // backlog 1: the kernel completes two handshakes into the accept queue, then drops SYNs.
  const fillers: Socket[] = [];
  for (let i = 0; i < 2; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    fillers.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
  }
  const probe = { socket: connect(port, '127.0.0.1'), connected: false };
  probe.socket.on('error', () => {});
  probe.socket.once('connect', () => (probe.connected = true));
  return {
    child,
    address: `127.0.0.1:${port}`,
    fillers,
    probe,
    close() {
      for (const s of [...fillers, probe.socket]) s.destroy();
      child.kill('SIGKILL');
    },
  };
}

async function complete(router: Router, headers: Record<string, string> = {}): Promise<{ status: number; endpoint: string | null; json: { error?: Record<string, unknown> } }> {
  const res = await fetch(`${router.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: COMPLETION });
  return { status: res.status, endpoint: res.headers.get('x-kvrouter-endpoint'), json: (await res.json()) as { error?: Record<string, unknown> } };
}

test('a pod whose connects hang: the connect timeout fires, the request is retried on another pod, or answered 502 when none is left', async () => {
  const hole = await startBlackhole();
  let good: FakePod | undefined;
  let router: Router | undefined;
  try {
    good = await startPod();
    // No scraping: the blackhole never answers /metrics, and must stay a candidate.
    router = await startRouterFor([], {
      endpoints: [{ address: hole.address }, { address: good.address }],
      scrapeIntervalMs: 0,
      limits: { upstreamConnectTimeoutMs: CONNECT_TIMEOUT_MS, outlierConsecutiveFailures: 0 },
    });
    // The queue scorer then prefers the blackhole: every first attempt goes to it.
    router.pool.get(good.address)!.metrics.waiting = 10;

    for (let i = 0; i < 3; i++) {
      const r = await complete(router);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.endpoint, good.address, 'retried on the pod that accepts');
    }
    assert.equal(good.received, 3);
    const metrics = await (await fetch(`${router.url}/metrics`)).text();
    assert.match(metrics, new RegExp(`kvrouter_upstream_retries_total\\{endpoint="${hole.address}",reason="connect"\\} 3`));

    // Only the blackhole allowed: every connect attempt times out, and the client gets a 502 naming it.
    const r = await complete(router, { [SUBSET_HEADER]: hole.address });
    assert.equal(r.status, 502);
    assert.equal(r.json.error?.type, 'bad_gateway_error');
    assert.equal(r.json.error?.code, 'upstream_connect_failed');
    assert.match(String(r.json.error?.message), new RegExp(`no endpoint accepted the connection \\(${hole.address}\\): Connect Timeout Error .*timeout: ${CONNECT_TIMEOUT_MS}ms`));

    // The router serves on, and the blackhole really never accepted (so the timeouts above were connects).
    assert.equal((await complete(router, { [SUBSET_HEADER]: good.address })).status, 200);
    assert.equal(hole.probe.connected, false, 'a connect to the full accept queue stays pending');
    assert.equal(hole.child.exitCode, null);
  } finally {
    await router?.close();
    await good?.close();
    hole.close();
  }
});
