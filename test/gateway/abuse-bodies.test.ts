// Abuse suite, large hostile bodies (issue 13: "a chat with 100k messages blocks every client for
// 6.3 s; a 5M-token-id prompt 1.9 s; 8M CJK characters ..."), sent at once on loopback with real
// sockets: the router stays up, normal requests sent after them are all answered while the
// hostile bodies are still being parsed (the parse thread still holds one), each hostile body
// gets its OpenAI error, none reaches the pod, and RSS stays within a bound.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { jsonBodyWorker } from '../../src/gateway/json-body.js';
import { COMPLETION, startPod, startRouterFor, type FakePod } from './fake-pods.js';
import { until } from './helpers.js';

/** RSS growth allowed (the test process holds the router, the pod, the parse thread and the attacker's bodies). */
const RSS_BOUND = 512 * 1024 * 1024;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function post(url: string, body: string): Promise<{ status: number; code: string | undefined }> {
  const r = await fetch(`${url}${body.includes('"messages"') ? '/v1/chat/completions' : '/v1/completions'}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const json = (await r.json()) as { error?: { code?: string } };
  return { status: r.status, code: json.error?.code };
}

test('hostile bodies at once: normal traffic is served while they are parsed, each is refused, RSS bounded', async (t) => {
  const pod: FakePod = await startPod();
  cleanups.push(() => pod.close());
  const router = await startRouterFor([pod]);
  cleanups.push(() => router.close());
  const w = jsonBodyWorker();

  const hostile: [string, number, string][] = [
    [JSON.stringify({ model: 'm', prompt: new Array<number>(4_000_000).fill(151_000), max_tokens: 1 }), 400, 'context_length_exceeded'],
    [JSON.stringify({ model: 'm', messages: Array.from({ length: 100_000 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i}` })) }), 413, 'too_many_messages'],
    [JSON.stringify({ model: 'm', prompt: '漢字テスト'.repeat(900_000), max_tokens: 1 }), 413, 'prompt_too_large'],
    [JSON.stringify({ model: 'm', prompt: 'x', max_tokens: 1, tools: new Array<null>(1_000_000).fill(null) }), 413, 'too_many_values'],
  ];
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const answers = Promise.all(hostile.map(([body]) => post(router.url, body)));
  await until(() => w.pending >= 2, 60_000, 'hostile bodies queued in the parse thread');

  const normal: number[] = [];
  for (let round = 0; round < 5; round++) {
    const rs = await Promise.all(Array.from({ length: 4 }, () => fetch(`${router.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: COMPLETION })));
    for (const r of rs) {
      normal.push(r.status);
      await r.arrayBuffer();
    }
  }
  const stillParsing = w.pending;
  assert.deepEqual(normal, Array(20).fill(200));
  assert.ok(stillParsing >= 1, 'normal traffic was answered while hostile bodies were still in the parse thread');

  const got = await answers;
  clearInterval(sampler);
  assert.deepEqual(
    got,
    hostile.map(([, status, code]) => ({ status, code })),
  );
  assert.equal(pod.received, 20, 'no hostile body reached the pod');
  assert.equal((await fetch(`${router.url}/health`)).status, 200);
  t.diagnostic(`RSS peak growth ${((peak - rss0) / 1048576).toFixed(0)} MB; parse-thread jobs pending after the normal traffic: ${stillParsing}`);
  assert.ok(peak - rss0 < RSS_BOUND, `RSS grew ${((peak - rss0) / 1048576).toFixed(0)} MB`);
});
