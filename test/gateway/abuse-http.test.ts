// HTTP attacks and pod faults against a live router on loopback (real sockets, bounded in count
// and time). Each asserts the router stays up, keeps serving normal requests meanwhile, loses
// nothing that could have been served, and holds its RSS within a bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Router } from '../../src/gateway/router.js';
import { ManualClock } from '../../src/util/clock.js';
import { MAX_PIPELINED, pipelineStats } from '../../src/gateway/http-front.js';
import { until } from './helpers.js';
import { COMPLETION, Raw, startPod, startRouterFor, statuses, type FakePod } from './fake-pods.js';

/** RSS growth allowed across one attack (the test process holds router, pods and attacker). */
const RSS_BOUND = 200 * 1024 * 1024;

async function complete(router: Router, headers: Record<string, string> = {}): Promise<{ status: number; endpoint: string | null; body: string }> {
  const res = await fetch(`${router.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: COMPLETION });
  return { status: res.status, endpoint: res.headers.get('x-kvrouter-endpoint'), body: await res.text() };
}

/** `n` normal requests, `concurrency` at a time; their statuses. */
async function normalTraffic(router: Router, n: number, concurrency = 4): Promise<number[]> {
  const out: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        out.push((await complete(router)).status);
      }
    }),
  );
  return out;
}

async function withRouter(pods: FakePod[], o: Parameters<typeof startRouterFor>[1], fn: (r: Router) => Promise<void>): Promise<void> {
  const router = await startRouterFor(pods, o);
  try {
    await fn(router);
  } finally {
    await router.close();
    for (const p of pods) await p.close().catch(() => {});
  }
}

test('a client that pipelines GETs and never reads is paused; RSS stays bounded, others are served', async () => {
  const pod = await startPod();
  // no per-connection request cap: the pipeliner is held by its unread answers alone
  await withRouter([pod], { limits: { maxRequestsPerConnection: 0 } }, async (router) => {
    const rss0 = process.memoryUsage().rss;
    const c = await Raw.open(Number(new URL(router.url).port));
    c.socket.pause(); // never reads
    const batch = Buffer.from('GET /health HTTP/1.1\r\nhost: a\r\n\r\n'.repeat(2000));
    let sent = 0;
    let stalled = false;
    // Up to 256 MB of requests; the router must stop taking them long before.
    while (sent < 256 * 1024 * 1024) {
      if (!c.socket.write(batch)) {
        const drained = await Promise.race([once(c.socket, 'drain').then(() => true), new Promise((r) => setTimeout(() => r(false), 1000))]);
        if (!drained) {
          stalled = true;
          break;
        }
      }
      sent += batch.length;
    }
    assert.ok(stalled, `the router kept reading: ${sent} bytes of pipelined requests taken`);
    // The pipeliner is held behind its unread answers; normal requests are answered before the
    // router has handled its backlog (they did not queue behind it).
    assert.ok(pipelineStats.deferred > 0, 'pipelined requests waited for earlier answers');
    const pipelined = sent / (batch.length / 2000);
    const handled0 = pipelineStats.handled;
    const statusesDuring = await normalTraffic(router, 20);
    assert.deepEqual(statusesDuring, Array(20).fill(200), 'normal traffic served while the pipeliner is stuck');
    const pipelinerHandled = pipelineStats.handled - 20;
    assert.ok(pipelinerHandled < pipelined, `normal traffic waited for the pipeliner's whole backlog (${pipelinerHandled} of ${pipelined} handled, from ${handled0})`);
    const grew = process.memoryUsage().rss - rss0;
    assert.ok(grew < RSS_BOUND, `RSS grew ${(grew / 1048576).toFixed(0)} MB`);
    c.destroy();
    assert.equal((await fetch(`${router.url}/health`)).status, 200);
  });
});

test('a pipelining client that reads gets every answer, in order, past the per-connection handling bound', async () => {
  const pod = await startPod();
  await withRouter([pod], {}, async (router) => {
    const c = await Raw.open(Number(new URL(router.url).port));
    const n = MAX_PIPELINED * 6;
    const deferred0 = pipelineStats.deferred;
    // one write: llhttp hands node all of them at once, so most wait for earlier answers
    c.write(Array.from({ length: n }, (_, i) => `GET /health?i=${i} HTTP/1.1\r\nhost: a\r\n\r\n`).join(''));
    const text = await c.waitFor((t) => (t.match(/HTTP\/1\.1 200/g) ?? []).length >= n);
    assert.equal((text.match(/HTTP\/1\.1 200/g) ?? []).length, n);
    assert.ok(pipelineStats.deferred > deferred0, 'some requests waited for earlier answers');
    assert.equal(pipelineStats.waiting, 0);
    c.destroy();
  });
});

test('a pipelined backlog is handled over many loop turns, a bounded number per turn', async () => {
  const pod = await startPod();
  await withRouter([pod], {}, async (router) => {
    const c = await Raw.open(Number(new URL(router.url).port));
    const n = MAX_PIPELINED * 8;
    // requests handled between two of our setImmediate callbacks: one loop turn each
    const perTurn: number[] = [];
    let last = pipelineStats.handled;
    let sampling = true;
    const sample = () => {
      perTurn.push(pipelineStats.handled - last);
      last = pipelineStats.handled;
      if (sampling) setImmediate(sample);
    };
    setImmediate(sample);
    c.write(Array.from({ length: n }, (_, i) => `GET /health?i=${i} HTTP/1.1\r\nhost: a\r\n\r\n`).join(''));
    await c.waitFor((t) => (t.match(/HTTP\/1\.1 200/g) ?? []).length >= n);
    sampling = false;
    // answered at once, the backlog would run in the turn that parsed it (a pipeliner holding the loop)
    assert.ok(Math.max(...perTurn) <= 2 * MAX_PIPELINED, `most handled in one turn: ${Math.max(...perTurn)} of ${n}`);
    assert.ok(perTurn.filter((x) => x > 0).length >= n / (2 * MAX_PIPELINED), `handled in only ${perTurn.filter((x) => x > 0).length} turns`);
    c.destroy();
  });
});

test('a half-closed client (request, then FIN) still gets its proxied answer', async () => {
  const pod = await startPod();
  pod.mode = 'stream'; // the answer comes after the FIN
  await withRouter([pod], {}, async (router) => {
    const c = await Raw.open(Number(new URL(router.url).port));
    c.write(`POST /v1/completions HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\ncontent-length: ${COMPLETION.length}\r\n\r\n${COMPLETION}`);
    c.socket.end();
    const text = await c.waitFor((t) => t.includes('data: [DONE]'));
    assert.match(text, /HTTP\/1\.1 200 OK/);
    assert.ok(text.includes('data: [DONE]'), text);
    assert.equal(pod.served, 1);
    c.destroy();
  });
});

test('the connection cap: connections over it are closed, open ones keep being served, room comes back', async () => {
  const pod = await startPod();
  const cap = 16;
  await withRouter([pod], { limits: { maxConnections: cap } }, async (router) => {
    const port = Number(new URL(router.url).port);
    const rss0 = process.memoryUsage().rss;
    // A normal client holding one kept-alive connection (raw, so it surely is the same socket).
    const normal = await Raw.open(port);
    const ask = async (i: number) => {
      normal.write('GET /health HTTP/1.1\r\nhost: a\r\n\r\n');
      await normal.waitFor((t) => statuses(t).length >= i);
    };
    await ask(1);
    const attackers = await Promise.all(Array.from({ length: cap * 2 }, () => Raw.open(port)));
    // The normal client holds one of the cap's slots: cap + 1 of the 2 x cap attackers are closed.
    await until(() => attackers.filter((a) => a.ended).length >= cap + 1, 5000, 'connections over the cap to be closed');
    const open = attackers.filter((a) => !a.ended).length;
    assert.ok(open <= cap - 1, `${open} attacker connections open beside the normal one (cap ${cap})`);
    for (let i = 2; i <= 6; i++) await ask(i);
    assert.deepEqual(statuses(normal.buf.toString('latin1')), Array(6).fill(200), 'the open connection is served');
    for (const a of attackers) a.destroy();
    await until(async () => (await fetch(`${router.url}/health`).then((r) => r.status, () => 0)) === 200, 5000, 'a new connection to be accepted');
    assert.ok(process.memoryUsage().rss - rss0 < RSS_BOUND);
    normal.destroy();
  });
});

test('a pod answering 500 is ejected after consecutive failures; traffic moves to the healthy one', async () => {
  const bad = await startPod();
  const good = await startPod();
  bad.mode = 'status500';
  await withRouter([bad, good], { limits: { outlierConsecutiveFailures: 3 } }, async (router) => {
    const out = await normalTraffic(router, 40, 2);
    const failed = out.filter((s) => s !== 200).length;
    // Three failures eject it; with two clients one more request may already be on its way.
    assert.ok(bad.received >= 3 && bad.received <= 3 + 1, `the failing pod drew ${bad.received} requests`);
    assert.equal(failed, bad.received, 'only the failing pod\'s own 500s reached clients');
    assert.equal(good.served, 40 - failed);
    const metrics = await (await fetch(`${router.url}/metrics`)).text();
    assert.match(metrics, new RegExp(`kvrouter_endpoint_ejections_total\\{endpoint="${bad.address}"\\} 1`));
    assert.match(metrics, new RegExp(`kvrouter_endpoint_ejected\\{endpoint="${bad.address}"\\} 1`));
  });
});

test('a pod that resets or answers 503: each request is retried on the other pod, every client gets 200', async () => {
  for (const mode of ['reset', 'status503'] as const) {
    const bad = await startPod();
    const good = await startPod();
    bad.mode = mode;
    await withRouter([bad, good], { limits: { outlierConsecutiveFailures: 3 } }, async (router) => {
      const out = await normalTraffic(router, 30, 3);
      assert.deepEqual(out, Array(30).fill(200), mode);
      assert.ok(bad.received >= 1 && bad.received <= 3 + 2, `${mode}: the failing pod drew ${bad.received}`);
      const metrics = await (await fetch(`${router.url}/metrics`)).text();
      const reason = mode === 'reset' ? 'reset' : 'status_503';
      assert.match(metrics, new RegExp(`kvrouter_upstream_retries_total\\{endpoint="${bad.address}",reason="${reason}"\\} ${bad.received}`));
    });
  }
});

test('a pod killed with requests in flight (nothing sent to their clients): they are retried elsewhere and get 200', async () => {
  const victim = await startPod();
  const survivor = await startPod();
  victim.mode = 'hang';
  await withRouter([victim, survivor], {}, async (router) => {
    const pending = Array.from({ length: 8 }, () => complete(router));
    // The router's load scorers steer away from a pod that holds requests, so one may be all it gets.
    await until(() => victim.received >= 1, 5000, 'a request in flight on the victim');
    const inflight = victim.received;
    // Kill it: every connection reset, the port closed.
    victim.server.closeAllConnections();
    victim.server.close();
    const out = await Promise.all(pending);
    assert.deepEqual(out.map((r) => r.status), Array(8).fill(200), JSON.stringify(out));
    assert.ok(out.every((r) => r.endpoint === survivor.address));
    assert.equal(survivor.served, 8, `${inflight} requests were in flight on the victim`);
  });
});

test('a hanging pod: its requests get 504 after the configured time, the other pod serves meanwhile', async () => {
  const hung = await startPod();
  const good = await startPod();
  hung.mode = 'hang';
  await withRouter([hung, good], { limits: { upstreamFirstByteTimeoutMs: 1500, outlierConsecutiveFailures: 0 } }, async (router) => {
    const order: string[] = [];
    const reqs = Array.from({ length: 10 }, () =>
      complete(router).then((r) => {
        order.push(r.status === 200 ? 'ok' : String(r.status));
        return r;
      }),
    );
    const out = await Promise.all(reqs);
    const timedOut = out.filter((r) => r.status === 504);
    assert.equal(timedOut.length, hung.received, 'every request the hung pod took ended in 504');
    assert.ok(hung.received >= 1, 'the hung pod drew at least one request');
    for (const r of timedOut) assert.match(r.body, /"code":"upstream_timeout"/);
    assert.equal(out.filter((r) => r.status === 200).length, 10 - hung.received);
    // The healthy pod's answers did not wait for the hung one's timeouts.
    assert.equal(order.indexOf('504'), 10 - hung.received, order.join(','));
  });
});

test('never a retry after the first byte reached the client: a reset mid-stream cuts the answer', async () => {
  const a = await startPod();
  const b = await startPod();
  a.mode = 'partial-reset';
  b.mode = 'partial-reset';
  await withRouter([a, b], {}, async (router) => {
    const res = await fetch(`${router.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt: 'x', stream: true }) });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.match(new TextDecoder().decode(first.value), /"i":0/);
    await assert.rejects(async () => {
      for (;;) if ((await reader.read()).done) break;
    }, 'the stream ends in an error, not a clean end');
    assert.equal(a.received + b.received, 1, 'the request went upstream once');
  });
});

test('a restarted pod starts slow: while its window runs it takes a small share of a burst', async () => {
  const a = await startPod();
  const b = await startPod();
  a.mode = 'stream';
  b.mode = 'stream';
  const clock = new ManualClock();
  await withRouter([a, b], { clock, limits: { slowStartMs: 10_000 } }, async (router) => {
    // Restart a on the same port: the pool sees it unready, then ready again.
    const port = a.port;
    await a.close();
    await until(() => !router.pool.get(a.address)!.ready, 5000, 'the pod to leave the candidates');
    const a2 = await startPod(port);
    a2.mode = 'stream';
    try {
      await until(() => router.pool.get(a.address)!.ready, 5000, 'the pod to return');
      assert.equal(router.outlier.slowStartFactor(a.address), 0.1);
      const out = await Promise.all(Array.from({ length: 12 }, () => complete(router)));
      assert.deepEqual(out.map((r) => r.status), Array(12).fill(200));
      // Its share of the peer's concurrency (10% of at most 12) is one request at a time.
      assert.ok(a2.received <= 2, `the returning pod drew ${a2.received} of 12 concurrent requests`);
      clock.advance(10_000);
      assert.equal(router.outlier.slowStartFactor(a.address), 1, 'the window is over');
    } finally {
      await a2.close();
    }
  });
});

test('a pod that goes silent mid-answer: the answer is cut after upstreamIdleTimeoutMs, never retried; the router serves on', async () => {
  // a pod that sends the head and one SSE chunk, then nothing (its connection stays open)
  const sockets = new Set<import('node:net').Socket>();
  const stall = createServer((req, res) => {
    if (req.url === '/metrics') return void res.end('vllm:num_requests_waiting{engine="0"} 0\n');
    if (req.url === '/v1/models') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ id: 'm' }] }));
    stalled++;
    sockets.add(req.socket);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/event-stream' }).write('data: {"i":0}\n\n'));
  });
  let stalled = 0;
  await new Promise<void>((r) => stall.listen(0, '127.0.0.1', r));
  const stallPod = { address: `127.0.0.1:${(stall.address() as AddressInfo).port}` } as FakePod;
  const router = await startRouterFor([stallPod], { limits: { upstreamIdleTimeoutMs: 300, outlierConsecutiveFailures: 0 } });
  try {
    const res = await fetch(`${router.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt: 'x', stream: true }) });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    assert.match(new TextDecoder().decode((await reader.read()).value), /"i":0/);
    // the pod never sends more and never closes: only the idle timeout can end this read
    await assert.rejects(async () => {
      for (;;) if ((await reader.read()).done) break;
    }, 'the cut answer ends in an error, not a clean end');
    assert.equal(stalled, 1, 'not retried after the first byte reached the client');
    assert.equal((await fetch(`${router.url}/health`)).status, 200);
  } finally {
    await router.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => stall.close(r));
  }
});

test('an idle kept-alive client connection is closed after keepAliveTimeoutMs; a busy one is not', async () => {
  const pod = await startPod();
  await withRouter([pod], { limits: { keepAliveTimeoutMs: 300 } }, async (router) => {
    const port = Number(new URL(router.url).port);
    const idle = await Raw.open(port);
    idle.write('GET /health HTTP/1.1\r\nhost: a\r\n\r\n');
    await idle.waitFor((t) => statuses(t).length === 1);
    // it sends nothing more: the router closes it (waitFor returns on close)
    await idle.waitFor(() => false);
    assert.equal(idle.ended, true);
    assert.deepEqual(statuses(idle.buf.toString('latin1')), [200], 'closed without another answer');
    // a connection that keeps asking within the timeout stays open across many timeouts' worth of requests
    const busy = await Raw.open(port);
    for (let i = 1; i <= 5; i++) {
      busy.write('GET /health HTTP/1.1\r\nhost: a\r\n\r\n');
      await busy.waitFor((t) => statuses(t).length === i);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(statuses(busy.buf.toString('latin1')), Array(5).fill(200));
    busy.destroy();
  });
});

test('upstreamRetries bounds the retries: 0 hands a pod\'s 503 to the client, 2 gets past two failing pods', async () => {
  for (const retries of [0, 2]) {
    const bad1 = await startPod();
    const bad2 = await startPod();
    const good = await startPod();
    bad1.mode = 'status503';
    bad2.mode = 'status503';
    await withRouter([bad1, bad2, good], { limits: { upstreamRetries: retries, outlierConsecutiveFailures: 0 } }, async (router) => {
      const out = await normalTraffic(router, 24, 3);
      const failed = out.filter((s) => s === 503).length;
      const tries = bad1.received + bad2.received + good.received;
      assert.ok(bad1.received + bad2.received >= 1, 'the failing pods drew requests');
      if (retries === 0) {
        assert.equal(failed, bad1.received + bad2.received, 'every 503 reached its client');
        assert.equal(tries, 24, 'one attempt per request');
      } else {
        assert.deepEqual(out, Array(24).fill(200));
        assert.ok(tries <= 24 * 3, `at most 3 attempts per request (${tries})`);
      }
    });
  }
});
