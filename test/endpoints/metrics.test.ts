import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { parsePrometheusText } from '../../src/endpoints/prom-text.js';
import { applyMetricsPage, emptyMetrics } from '../../src/endpoints/vllm-metrics.js';
import { EndpointPool } from '../../src/endpoints/pool.js';
import { startSimPod } from '../../src/sim/index.js';
import { ManualClock } from '../../src/util/clock.js';

test('Prometheus text: labels with escapes, +Inf/NaN, timestamps; malformed lines counted and skipped', () => {
  const text = [
    '# HELP x help',
    '# TYPE x gauge',
    'x{a="1",b="q\\"uote\\\\n"} 3.5',
    'y_bucket{le="+Inf"} 7 1700000000000',
    'z NaN',
    'w{bad="unterminated} 1',
    'v{a="1"}',
    'u +Inf',
  ].join('\n');
  const { samples, errors } = parsePrometheusText(text);
  assert.deepEqual(samples.map((s) => s.name), ['x', 'y_bucket', 'z', 'u']);
  assert.equal(samples[0].labels.b, 'q"uote\\n');
  assert.equal(samples[0].value, 3.5);
  assert.equal(samples[1].labels.le, '+Inf');
  assert.ok(Number.isNaN(samples[2].value));
  assert.equal(samples[3].value, Infinity);
  assert.equal(errors, 2);
});

test('a simulated vLLM /metrics page maps to waiting, running, kv usage, block size and capacity', async () => {
  const pod = await startSimPod({ model: 'm', blockSize: 16, numGpuBlocks: 512, port: 0 });
  try {
    const text = await (await fetch(pod.url + '/metrics')).text();
    const m = emptyMetrics();
    assert.equal(applyMetricsPage(text, m), true);
    assert.equal(m.blockSize, 16);
    assert.equal(m.numGpuBlocks, 512);
    assert.equal(m.waiting, 0);
    assert.equal(m.running, 0);
    assert.ok(m.kvUsage >= 0 && m.kvUsage <= 1);
    assert.ok(m.updatedAt > 0);
  } finally {
    await pod.close();
  }
  const lora = emptyMetrics();
  applyMetricsPage(
    [
      'vllm:num_requests_waiting{engine="0"} 2',
      'vllm:num_requests_waiting{engine="1"} 3',
      'vllm:num_requests_running{engine="0"} 1',
      'vllm:kv_cache_usage_perc{engine="0"} 0.5',
      'vllm:lora_requests_info{max_lora="2",running_lora_adapters="a,b",waiting_lora_adapters=""} 100',
      'vllm:lora_requests_info{max_lora="2",running_lora_adapters="old",waiting_lora_adapters=""} 50',
    ].join('\n'),
    lora,
  );
  assert.equal(lora.waiting, 5);
  assert.deepEqual(lora.runningLoras, ['a', 'b']);
  assert.equal(lora.maxLora, 2);
  assert.equal(applyMetricsPage('some_other_metric 1', emptyMetrics()), false);
});

test('an endpoint that stops answering leaves the candidates on its first refused scrape and returns when it recovers', async () => {
  const pod = await startSimPod({ model: 'm', port: 0 });
  const pool = new EndpointPool([{ address: pod.podId, labels: { 'llm-d.ai/role': 'decode' } }], { logger: pino({ level: 'silent' }) });
  try {
    pool.start();
    await pool.waitReady(1, 5000);
    const e = pool.get(pod.podId)!;
    assert.equal(e.labels['llm-d.ai/role'], 'decode');
    // polled, not slept: a loaded machine may take longer than any fixed pause
    for (let i = 0; i < 1000 && !e.models; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(e.models?.some((m) => m.id === 'm'), 'models fetched from /v1/models');
    assert.deepEqual(pool.resolveModel('m'), { baseModel: 'm' });
    assert.equal(pool.resolveModel('unknown'), null);

    await pod.kill();
    const t0 = Date.now();
    while (pool.ready().length > 0 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(pool.ready().length, 0);
    // Causality, not a wall-clock bound: it left because a scrape was refused, not because its
    // metrics went stale (unhealthyAfterMs), which is the slower path.
    assert.match(e.lastError, /ECONNREFUSED|connect/i);

    await pod.restart();
    await pool.waitReady(1, 10_000);
    assert.equal(pool.ready()[0].address, pod.podId);
  } finally {
    await pool.close();
    await pod.close();
  }
});

test('a hung endpoint (accepts, never answers) leaves once its last good scrape is unhealthyAfterMs old', async () => {
  const net = await import('node:net');
  const sockets: import('node:net').Socket[] = [];
  const srv = net.createServer((s) => sockets.push(s));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as import('node:net').AddressInfo).port;
  const clock = new ManualClock(1_000_000);
  const pool = new EndpointPool([{ address: `127.0.0.1:${port}` }], {
    logger: pino({ level: 'silent' }),
    clock,
    scrapeIntervalMs: 50,
    unhealthyAfterMs: 750,
  });
  try {
    // Ready as if it had answered before hanging.
    const e = pool.get(`127.0.0.1:${port}`)!;
    e.lastOk = clock.now();
    e.ready = true;
    pool.start();
    // Model time moves in scrape periods; the hung scrapes never complete, so nothing refreshes lastOk.
    for (let t = 50; t <= 750; t += 50) {
      clock.advance(50);
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(e.ready, true, 'still ready at exactly unhealthyAfterMs');
    clock.advance(50);
    assert.equal(e.ready, false, 'not ready one scrape period later');
    assert.ok(sockets.length >= 1, 'the pool did try to scrape the hung endpoint');
  } finally {
    await pool.close();
    for (const s of sockets) s.destroy();
    srv.close();
  }
});
