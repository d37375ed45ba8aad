// The simulator's HTTP surface: the official openai client (streaming and not), /metrics through
// a strict Prometheus text parser, /tokenize, errors, faults, kill and restart.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startSimPod, type SimPod } from '../../src/sim/index.js';
import { parsePrometheusText } from '../../src/endpoints/prom-text.js';

const MODEL = 'Qwen/Qwen3-0.6B';
let pod: SimPod;
let client: OpenAI;

before(async () => {
  pod = await startSimPod({ model: MODEL, profile: 'h100-qwen3-0.6b', numGpuBlocks: 2000, maxModelLen: 4096, pythonHashSeed: '0' });
  client = new OpenAI({ baseURL: `${pod.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await pod.close();
});

const tokens = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(`${pod.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, text, json: text ? (JSON.parse(text) as Record<string, unknown>) : null };
}

test('completions with token-id prompts: usage with cached_tokens; second call hits the cache', async () => {
  const prompt = tokens(100);
  const a = await client.completions.create({ model: MODEL, prompt, max_tokens: 5 });
  assert.equal(a.object, 'text_completion');
  assert.equal(a.choices[0].finish_reason, 'length');
  assert.equal(a.choices[0].text.split(' ').length, 5);
  assert.equal(a.usage?.prompt_tokens, 100);
  assert.equal(a.usage?.completion_tokens, 5);
  const details = (a.usage as unknown as { prompt_tokens_details: { cached_tokens: number } }).prompt_tokens_details;
  assert.equal(details.cached_tokens, 0);
  const b = await client.completions.create({ model: MODEL, prompt, max_tokens: 5 });
  assert.equal((b.usage as unknown as { prompt_tokens_details: { cached_tokens: number } }).prompt_tokens_details.cached_tokens, 96);
});

test('completions stream through the openai client: text chunks, finish_reason on the last, usage chunk', async () => {
  const stream = await client.completions.create({ model: MODEL, prompt: tokens(40, 500), max_tokens: 6, stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  const content = chunks.filter((c) => c.choices.length > 0);
  assert.equal(content.length, 6);
  assert.deepEqual(
    content.map((c) => c.choices[0].finish_reason),
    [null, null, null, null, null, 'length'],
  );
  const usage = chunks[chunks.length - 1];
  assert.deepEqual(usage.choices, []);
  assert.equal(usage.usage?.completion_tokens, 6);
  assert.equal(content.map((c) => c.choices[0].text).join('').split(' ').length, 6);
});

test('chat stream through the openai client: role first, finish_reason on the last content chunk, [DONE]', async () => {
  const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hello there, simulator' }], max_tokens: 4, stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.equal(chunks[0].object, 'chat.completion.chunk');
  assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  const content = chunks.slice(1).filter((c) => c.choices.length > 0);
  assert.equal(content.length, 4);
  assert.equal(content[3].choices[0].finish_reason, 'length');
  assert.ok(content.slice(0, 3).every((c) => c.choices[0].finish_reason === null));
  const last = chunks[chunks.length - 1];
  assert.ok(last.usage && last.usage.prompt_tokens > 5 && last.usage.completion_tokens === 4);
  // Raw stream ends with data: [DONE]
  const r = await fetch(`${pod.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 2, stream: true }) });
  const raw = await r.text();
  assert.ok(raw.endsWith('data: [DONE]\n\n'));
  assert.equal(r.headers.get('content-type'), 'text/event-stream');
});

test('chat non-stream: message, prompt tokens equal /tokenize of the same messages', async () => {
  const messages = [{ role: 'user' as const, content: 'What is a KV cache?' }];
  const c = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 3 });
  assert.equal(c.object, 'chat.completion');
  assert.equal(c.choices[0].message.role, 'assistant');
  assert.equal(c.choices[0].finish_reason, 'length');
  const t = await post('/tokenize', { model: MODEL, messages, add_generation_prompt: true });
  assert.equal(t.status, 200);
  assert.equal(c.usage?.prompt_tokens, (t.json as { count: number }).count);
  const tc = await post('/tokenize', { model: MODEL, prompt: 'hello world' });
  assert.equal(tc.status, 200);
  assert.ok(Array.isArray((tc.json as { tokens: number[] }).tokens));
});

test('models, health, and OpenAI-style errors for bad input', async () => {
  const models = await client.models.list();
  assert.equal(models.data[0].id, MODEL);
  assert.equal((await fetch(`${pod.url}/health`)).status, 200);
  const bad = await post('/v1/completions', '{not json');
  assert.equal(bad.status, 400);
  assert.match((bad.json as { error: { message: string } }).error.message, /invalid JSON/);
  const unknown = await post('/v1/completions', { model: 'nope', prompt: [1, 2] });
  assert.equal(unknown.status, 404);
  assert.equal((unknown.json as { error: { type: string } }).error.type, 'NotFoundError');
  const long = await post('/v1/completions', { model: MODEL, prompt: tokens(4000), max_tokens: 200 });
  assert.equal(long.status, 400);
  assert.match((long.json as { error: { message: string } }).error.message, /maximum context length is 4096/);
  const noPrompt = await post('/v1/completions', { model: MODEL });
  assert.equal(noPrompt.status, 400);
  assert.equal((await post('/v1/completions', { model: MODEL, prompt: [1, 2], max_tokens: 0 })).status, 400);
  assert.equal((await post('/v1/completions', { model: MODEL, prompt: [1, 2 ** 40] })).status, 400);
  assert.equal((await post('/v1/completions', { model: MODEL, prompt: [1, -2] })).status, 400);
  assert.equal((await fetch(`${pod.url}/nowhere`)).status, 404);
  const stats = (await (await fetch(`${pod.url}/sim/stats`)).json()) as { model_time_s: number; steps: number; prefix_cache_hits: number };
  assert.ok(stats.model_time_s > 0 && stats.steps > 0 && stats.prefix_cache_hits >= 96);
});

test('X-Return-Error forces an error by code or failure type', async () => {
  const a = await post('/v1/completions', { model: MODEL, prompt: [1, 2, 3] }, { 'x-return-error': '429' });
  assert.equal(a.status, 429);
  const b = await post('/v1/chat/completions', { model: MODEL, messages: [] }, { 'x-return-error': 'server_error' });
  assert.equal(b.status, 503);
  await assert.rejects(client.completions.create({ model: MODEL, prompt: [1, 2, 3] }, { headers: { 'X-Return-Error': '503' } }), (e: { status?: number }) => e.status === 503);
});

interface Family {
  type: string;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

/** A strict Prometheus 0.0.4 text parser: every line must be a valid comment or sample of a declared family. */
function strictParse(text: string): Map<string, Family> {
  const fams = new Map<string, Family>();
  const nameRe = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  const suffixes = ['_bucket', '_sum', '_count', '_created', '_total'];
  assert.ok(text.endsWith('\n'), 'page ends with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) continue;
    const t = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (t) {
      assert.ok(nameRe.test(t[1]), `metric name ${t[1]}`);
      assert.ok(!fams.has(t[1]), `duplicate TYPE for ${t[1]}`);
      fams.set(t[1], { type: t[2], samples: [] });
      continue;
    }
    assert.ok(!line.startsWith('#'), `unexpected comment: ${line}`);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( \d+)?$/.exec(line);
    assert.ok(m, `malformed sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      const lr = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
      let pos = 0;
      while (pos < m[3].length) {
        lr.lastIndex = pos;
        const l = lr.exec(m[3]);
        assert.ok(l, `bad labels in ${line}`);
        assert.ok(!(l[1] in labels), `duplicate label ${l[1]}`);
        labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
        pos = lr.lastIndex;
      }
    }
    const v = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    assert.ok(m[4] === 'NaN' || !Number.isNaN(v), `bad value in ${line}`);
    let fam = fams.get(m[1]);
    if (!fam) {
      const base = suffixes.map((s) => (m[1].endsWith(s) ? m[1].slice(0, -s.length) : null)).find((b) => b !== null && fams.has(b));
      assert.ok(base, `sample ${m[1]} has no TYPE`);
      fam = fams.get(base) as Family;
    }
    fam.samples.push({ name: m[1], labels, value: v });
  }
  // Histograms: cumulative buckets ending in +Inf == _count.
  for (const [name, f] of fams) {
    if (f.type !== 'histogram') continue;
    const buckets = f.samples.filter((s) => s.name === `${name}_bucket`);
    const count = f.samples.find((s) => s.name === `${name}_count`);
    assert.ok(buckets.length > 0 && count, `${name} has buckets and a count`);
    let prev = -1;
    let prevLe = -Infinity;
    for (const b of buckets) {
      const le = b.labels.le === '+Inf' ? Infinity : Number(b.labels.le);
      assert.ok(le > prevLe, `${name} le ascending`);
      assert.ok(b.value >= prev, `${name} cumulative`);
      prev = b.value;
      prevLe = le;
    }
    assert.equal(buckets[buckets.length - 1].labels.le, '+Inf');
    assert.equal(buckets[buckets.length - 1].value, count.value);
  }
  return fams;
}

test('/metrics parses strictly and carries vLLM names, types, labels and buckets', async () => {
  await client.completions.create({ model: MODEL, prompt: tokens(50, 7000), max_tokens: 3 });
  const r = await fetch(`${pod.url}/metrics`);
  assert.equal(r.status, 200);
  const text = await r.text();
  const fams = strictParse(text);
  const expectType = (n: string, t: string) => assert.equal(fams.get(n)?.type, t, n);
  expectType('vllm:num_requests_running', 'gauge');
  expectType('vllm:num_requests_waiting', 'gauge');
  expectType('vllm:kv_cache_usage_perc', 'gauge');
  expectType('vllm:cache_config_info', 'gauge');
  expectType('vllm:prefix_cache_queries_total', 'counter');
  expectType('vllm:prefix_cache_hits_total', 'counter');
  expectType('vllm:prompt_tokens_total', 'counter');
  expectType('vllm:generation_tokens_total', 'counter');
  expectType('vllm:time_to_first_token_seconds', 'histogram');
  expectType('vllm:e2e_request_latency_seconds', 'histogram');
  const running = fams.get('vllm:num_requests_running')?.samples[0];
  assert.deepEqual(running?.labels, { model_name: MODEL, engine: '0' });
  const info = fams.get('vllm:cache_config_info')?.samples[0];
  assert.equal(info?.labels.block_size, '16');
  assert.equal(info?.labels.num_gpu_blocks, '2000');
  const ttftLe = fams.get('vllm:time_to_first_token_seconds')?.samples.filter((s) => s.name.endsWith('_bucket')).map((s) => s.labels.le);
  assert.deepEqual(ttftLe, ['0.001', '0.005', '0.01', '0.02', '0.04', '0.06', '0.08', '0.1', '0.25', '0.5', '0.75', '1', '2.5', '5', '7.5', '10', '20', '40', '80', '160', '640', '2560', '+Inf']);
  const e2eLe = fams.get('vllm:e2e_request_latency_seconds')?.samples.filter((s) => s.name.endsWith('_bucket')).map((s) => s.labels.le);
  assert.equal(e2eLe?.[0], '0.3');
  assert.equal(e2eLe?.[e2eLe.length - 2], '7680');
  const queries = fams.get('vllm:prefix_cache_queries_total')?.samples[0].value ?? 0;
  assert.ok(queries >= 50);
  // The router's own scraper reads the same page without errors.
  assert.equal(parsePrometheusText(text).errors, 0);
});

test('reset_prefix_cache: later requests miss', async () => {
  const prompt = tokens(64, 20000);
  await client.completions.create({ model: MODEL, prompt, max_tokens: 1 });
  const reset = await post('/reset_prefix_cache', {});
  assert.equal(reset.status, 200);
  const again = await client.completions.create({ model: MODEL, prompt, max_tokens: 1 });
  assert.equal((again.usage as unknown as { prompt_tokens_details: { cached_tokens: number } }).prompt_tokens_details.cached_tokens, 0);
});

test('error injection rate, startup delay, kill (connection refused) and restart (cache empty)', async () => {
  const p = await startSimPod({ model: 'm', profile: 'h100-qwen3-0.6b', numGpuBlocks: 500, maxModelLen: 2048, faults: { errorRate: 1, errorCodes: ['rate_limit'], startupDelayMs: 2000 } });
  try {
    // 2 s: the first check must land inside the delay even on a loaded machine; the end is polled
    assert.equal((await fetch(`${p.url}/health`)).status, 503, 'not ready during the startup delay');
    let status = 503;
    for (let i = 0; i < 500 && status === 503; i++) {
      await new Promise((r) => setTimeout(r, 20));
      status = (await fetch(`${p.url}/health`)).status;
    }
    assert.equal(status, 200);
    const r = await fetch(`${p.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', prompt: [1, 2, 3] }) });
    assert.equal(r.status, 429);
  } finally {
    await p.close();
  }
  const q = await startSimPod({ model: 'm', profile: 'h100-qwen3-0.6b', numGpuBlocks: 500, maxModelLen: 2048 });
  try {
    const body = JSON.stringify({ model: 'm', prompt: tokens(40), max_tokens: 2 });
    await (await fetch(`${q.url}/v1/completions`, { method: 'POST', body })).json();
    assert.ok(q.cacheSnapshot().length > 0);
    const port = q.port;
    await q.kill();
    await assert.rejects(fetch(`${q.url}/health`), 'connections are refused after kill');
    await q.restart();
    assert.equal(q.port, port);
    assert.equal(q.cacheSnapshot().length, 0, 'restart empties the cache');
    const res = (await (await fetch(`${q.url}/v1/completions`, { method: 'POST', body })).json()) as { usage: { prompt_tokens_details: { cached_tokens: number } } };
    assert.equal(res.usage.prompt_tokens_details.cached_tokens, 0);
  } finally {
    await q.close();
  }
});

test('batched token-id prompts give one choice each; continuous_usage_stats adds usage to every chunk', async () => {
  const r = await post('/v1/completions', { model: MODEL, prompt: [tokens(20, 30000), tokens(36, 31000)], max_tokens: 2 });
  assert.equal(r.status, 200);
  const j = r.json as { choices: { index: number }[]; usage: { prompt_tokens: number; completion_tokens: number } };
  assert.deepEqual(
    j.choices.map((c) => c.index),
    [0, 1],
  );
  assert.equal(j.usage.prompt_tokens, 56);
  assert.equal(j.usage.completion_tokens, 4);
  const s = await fetch(`${pod.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: MODEL, prompt: tokens(20, 32000), max_tokens: 3, stream: true, stream_options: { include_usage: true, continuous_usage_stats: true } }) });
  const events = (await s.text()).split('\n\n').filter((e) => e.startsWith('data: {'));
  const parsed = events.map((e) => JSON.parse(e.slice(6)) as { usage?: { completion_tokens: number } });
  assert.deepEqual(
    parsed.map((p) => p.usage?.completion_tokens),
    [1, 2, 3, 3],
  );
});

test('a client that disconnects mid-stream aborts its request and frees its blocks', async () => {
  const ac = new AbortController();
  // One non-streaming and one streaming request, both abandoned by the client.
  const nonStream = fetch(`${pod.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: MODEL, prompt: tokens(64, 40000), max_tokens: 3000 }), signal: ac.signal }).catch(() => null);
  const s = await fetch(`${pod.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: MODEL, prompt: tokens(64, 41000), max_tokens: 3000, stream: true }), signal: ac.signal });
  const reader = (s.body as ReadableStream<Uint8Array>).getReader();
  await reader.read();
  const start = Date.now() + 3000;
  while (pod.engine.numRunning < 2 && Date.now() < start) await new Promise((res) => setTimeout(res, 10));
  assert.equal(pod.engine.numRunning, 2);
  ac.abort();
  await nonStream;
  const end = Date.now() + 3000;
  while ((pod.engine.numRunning > 0 || pod.engine.numWaiting > 0) && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
  assert.equal(pod.engine.numRunning, 0);
  assert.equal(pod.engine.pool.numFree, pod.engine.pool.capacity, 'every block is free again');
});
