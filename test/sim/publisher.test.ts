// KV events over real ZeroMQ sockets: framing, seq from 0, bind/connect rule, replay over a
// DEALER in both reply layouts, buffer_steps retention, data-parallel ranks, restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import * as zmq from 'zeromq';
import { startSimPod, publisherBinds, offsetEndpointPort, type SimPod, type SimPodOptions } from '../../src/sim/index.js';
import { decodeEventBatch } from '../../src/events/decode.js';

const tokens = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function base(over: Partial<SimPodOptions> = {}): SimPodOptions {
  return { model: 'm', profile: 'h100-qwen3-0.6b', numGpuBlocks: 400, maxModelLen: 2048, pythonHashSeed: '0', ...over };
}

async function complete(pod: SimPod, prompt: number[], maxTokens = 2): Promise<void> {
  const r = await fetch(`${pod.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', prompt, max_tokens: maxTokens }) });
  assert.equal(r.status, 200, await r.text());
}

/** Collects [topic, seq, payload] messages from a SUB socket in the background. */
function collect(sub: zmq.Subscriber) {
  const got: { topic: string; seq: bigint; payload: Buffer }[] = [];
  const done = (async () => {
    try {
      for await (const frames of sub) {
        assert.equal(frames.length, 3);
        assert.equal(frames[1].length, 8);
        got.push({ topic: frames[0].toString(), seq: frames[1].readBigUInt64BE(0), payload: frames[2] });
      }
    } catch {
      // socket closed
    }
  })();
  return { got, done };
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(10);
  }
}

test('vLLM bind/connect rule and port offsets', () => {
  assert.equal(publisherBinds('tcp://*:5557'), true);
  assert.equal(publisherBinds('tcp://[::]:5557'), true);
  assert.equal(publisherBinds('ipc:///tmp/x'), true);
  assert.equal(publisherBinds('inproc://x'), true);
  assert.equal(publisherBinds('tcp://router.ns.svc:5557'), false);
  assert.equal(offsetEndpointPort('tcp://*:5557', 0), 'tcp://*:5557');
  assert.equal(offsetEndpointPort('tcp://*:5557', 3), 'tcp://*:5560');
  assert.equal(offsetEndpointPort('inproc://ev', 2), 'inproc://ev_dp2');
  assert.throws(() => offsetEndpointPort('ipc:///tmp/x', 1), /Invalid endpoint/);
});

test('PUB binds a wildcard endpoint: 3 frames, topic, seq from 0 (8 bytes BE), one batch per step', async () => {
  const pod = await startSimPod(base({ llmdTopic: true, kvEventsConfig: { enable_kv_cache_events: true, endpoint: 'tcp://127.0.0.1:*' } }));
  const sub = new zmq.Subscriber({ linger: 0 });
  try {
    sub.connect(pod.kvEventsEndpoint as string);
    sub.subscribe('kv@');
    const c = collect(sub);
    await sleep(150); // slow joiner
    await complete(pod, tokens(40), 30);
    await waitFor(() => c.got.length === pod.batchesPublished && c.got.length > 0);
    assert.equal(c.got[0].seq, 0n);
    c.got.forEach((m, i) => assert.equal(m.seq, BigInt(i)));
    assert.equal(c.got[0].topic, `kv@${pod.podId}@m`);
    const batches = c.got.map((m) => decodeEventBatch(m.payload));
    assert.equal(batches[0].dataParallelRank, 0);
    const stored = batches.flatMap((b) => b.events).filter((e) => e.type === 'BlockStored');
    // 40 prompt + 30 output = 70 tokens, 69 computed: 4 full blocks; the prompt's 2 in one event.
    assert.equal(stored.reduce((n, e) => n + (e.type === 'BlockStored' ? e.blockHashes.length : 0), 0), 4);
    assert.equal(stored[0].type === 'BlockStored' && stored[0].blockHashes.length, 2);
    assert.ok(batches.every((b) => b.events.length > 0), 'no empty batches');
  } finally {
    sub.close();
    await pod.close();
  }
});

test('PUB connects to a router-side bound SUB when the endpoint has no wildcard', async () => {
  const sub = new zmq.Subscriber({ linger: 0 });
  await sub.bind('tcp://127.0.0.1:*');
  sub.subscribe('');
  const c = collect(sub);
  const pod = await startSimPod(base({ kvEventsConfig: { enable_kv_cache_events: true, endpoint: sub.lastEndpoint as string } }));
  try {
    await sleep(200);
    await complete(pod, tokens(32));
    await waitFor(() => c.got.length > 0 && c.got.length === pod.batchesPublished);
    assert.equal(c.got[0].topic, '', "vLLM's default topic is empty");
  } finally {
    sub.close();
    await pod.close();
  }
});

async function replayRaw(endpoint: string, start: bigint, frames?: Buffer[]): Promise<Buffer[][]> {
  const d = new zmq.Dealer({ linger: 0, receiveTimeout: 1500 });
  d.connect(endpoint);
  const seq = Buffer.alloc(8);
  seq.writeBigUInt64BE(start);
  await d.send(frames ?? [Buffer.alloc(0), seq]);
  const out: Buffer[][] = [];
  try {
    for (;;) {
      const m = (await d.receive()) as Buffer[];
      out.push(m);
      if (m.some((f) => f.length === 8 && f.equals(Buffer.alloc(8, 0xff)))) break;
    }
  } catch (err) {
    if ((err as { code?: string }).code !== 'EAGAIN') throw err;
  } finally {
    d.close();
  }
  return out;
}

for (const layout of ['pre-45177', 'post-45177'] as const) {
  test(`replay ROUTER over a DEALER (${layout} layout) with buffer_steps retention`, async () => {
    const pod = await startSimPod(
      base({ replayLayout: layout, llmdTopic: true, kvEventsConfig: { enable_kv_cache_events: true, endpoint: 'tcp://127.0.0.1:*', replay_endpoint: 'tcp://127.0.0.1:*', buffer_steps: 3 } }),
    );
    try {
      for (let i = 0; i < 5; i++) await complete(pod, tokens(16, 1000 * (i + 1)), 1);
      await waitFor(() => pod.batchesPublished === 5);
      const msgs = await replayRaw(pod.replayEndpoint as string, 0n);
      // buffer_steps 3: seqs 2, 3, 4 then the end marker.
      assert.equal(msgs.length, 4);
      const end = msgs[3];
      if (layout === 'post-45177') {
        for (const m of msgs.slice(0, 3)) assert.equal(m.length, 4);
        assert.deepEqual(msgs.slice(0, 3).map((m) => m[2].readBigUInt64BE(0)), [2n, 3n, 4n]);
        assert.equal(msgs[0][1].toString(), pod.topic);
        assert.equal(msgs[0][0].length, 0);
        assert.deepEqual(end, [Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(8, 0xff), Buffer.alloc(0)]);
        assert.equal(decodeEventBatch(msgs[0][3]).events[0].type, 'BlockStored');
      } else {
        for (const m of msgs.slice(0, 3)) assert.equal(m.length, 3);
        assert.deepEqual(msgs.slice(0, 3).map((m) => m[1].readBigUInt64BE(0)), [2n, 3n, 4n]);
        assert.deepEqual(end, [Buffer.alloc(0), Buffer.alloc(8, 0xff), Buffer.alloc(0)]);
        assert.equal(decodeEventBatch(msgs[0][2]).events[0].type, 'BlockStored');
      }
      // start_seq in the middle; malformed request (no delimiter) gets no reply at all.
      const from4 = await replayRaw(pod.replayEndpoint as string, 4n);
      assert.equal(from4.length, 2);
      const bad = await replayRaw(pod.replayEndpoint as string, 0n, [Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])]);
      assert.equal(bad.length, 0);
    } finally {
      await pod.close();
    }
  });
}

async function consecutiveFreePorts(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const p = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    let ok = p + n < 65535;
    for (let i = 1; i < n && ok; i++) {
      const t = createServer();
      ok = await new Promise<boolean>((r) => {
        t.once('error', () => r(false));
        t.listen(p + i, '127.0.0.1', () => t.close(() => r(true)));
      });
    }
    if (ok) return p;
  }
  throw new Error('no consecutive free ports');
}

test('data parallel: HTTP port + rank, endpoints offset like vLLM, data_parallel_rank in batches', async () => {
  const port = await consecutiveFreePorts(2);
  const pod = await startSimPod(base({ port, dataParallelSize: 2, kvEventsConfig: { enable_kv_cache_events: true, endpoint: 'inproc://sim-dp', replay_endpoint: 'inproc://sim-dp-replay' } }));
  const subs = [0, 1].map(() => new zmq.Subscriber({ linger: 0 }));
  try {
    assert.equal(pod.ranks.length, 2);
    assert.deepEqual(
      pod.ranks.map((r) => r.port),
      [port, port + 1],
    );
    assert.deepEqual(
      pod.ranks.map((r) => r.kvEventsEndpoint),
      ['inproc://sim-dp', 'inproc://sim-dp_dp1'],
    );
    assert.deepEqual(
      pod.ranks.map((r) => r.replayEndpoint),
      ['inproc://sim-dp-replay', 'inproc://sim-dp-replay_dp1'],
    );
    const cs = subs.map((s, i) => {
      s.connect(pod.ranks[i].kvEventsEndpoint as string);
      s.subscribe('');
      return collect(s);
    });
    await sleep(100);
    await complete(pod.ranks[1], tokens(32));
    await waitFor(() => cs[1].got.length > 0);
    assert.equal(cs[1].got[0].seq, 0n, 'each rank has its own seq');
    assert.equal(decodeEventBatch(cs[1].got[0].payload).dataParallelRank, 1);
    assert.equal(cs[0].got.length, 0);
    const metrics = await (await fetch(`${pod.ranks[1].url}/metrics`)).text();
    assert.match(metrics, /vllm:num_requests_running\{model_name="m",engine="1"\}/);
  } finally {
    for (const s of subs) s.close();
    await pod.close();
  }
});

test('restart: same endpoint, seq back to 0, cache empty', async () => {
  const pod = await startSimPod(base({ kvEventsConfig: { enable_kv_cache_events: true, endpoint: 'tcp://127.0.0.1:*' } }));
  const sub = new zmq.Subscriber({ linger: 0 });
  try {
    const ep = pod.kvEventsEndpoint;
    sub.connect(ep as string);
    sub.subscribe('');
    const c = collect(sub);
    await sleep(150);
    await complete(pod, tokens(48));
    await complete(pod, tokens(48, 500));
    await waitFor(() => c.got.length === 2);
    await pod.restart();
    assert.equal(pod.kvEventsEndpoint, ep);
    assert.equal(pod.cacheSnapshot().length, 0);
    await sleep(300); // SUB reconnects
    await complete(pod, tokens(48, 900));
    await waitFor(() => c.got.length === 3);
    assert.equal(c.got[2].seq, 0n, 'seq restarts at 0');
  } finally {
    sub.close();
    await pod.close();
  }
});

test('LoRA adapters: served as models, lora_name/lora_id and the name in extra_keys and the hash', async () => {
  const pod = await startSimPod(base({ loraModules: ['my-lora'], kvEventsConfig: { enable_kv_cache_events: true, endpoint: 'tcp://127.0.0.1:*' } }));
  const sub = new zmq.Subscriber({ linger: 0 });
  try {
    sub.connect(pod.kvEventsEndpoint as string);
    sub.subscribe('');
    const c = collect(sub);
    await sleep(150);
    const models = (await (await fetch(`${pod.url}/v1/models`)).json()) as { data: { id: string; parent: string | null }[] };
    assert.deepEqual(
      models.data.map((m) => [m.id, m.parent]),
      [
        ['m', null],
        ['my-lora', 'm'],
      ],
    );
    const prompt = tokens(16, 1);
    await complete(pod, prompt, 1);
    const r = await fetch(`${pod.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'my-lora', prompt, max_tokens: 1 }) });
    assert.equal(r.status, 200);
    await waitFor(() => c.got.length === 2);
    const [baseEv, loraEv] = c.got.map((m) => decodeEventBatch(m.payload).events[0]);
    assert.ok(baseEv.type === 'BlockStored' && loraEv.type === 'BlockStored');
    assert.equal(baseEv.loraName, null);
    assert.equal(loraEv.loraName, 'my-lora');
    assert.equal(loraEv.loraId, 1);
    assert.deepEqual(loraEv.extraKeys, [['my-lora']]);
    // PYTHONHASHSEED=0, tokens 1..16, extra ("my-lora",): the reference sha256_cbor wire value.
    assert.equal(loraEv.blockHashes[0], 15444946753610453501n);
    assert.equal(baseEv.blockHashes[0], 3236607068019569386n);
    const metrics = await (await fetch(`${pod.url}/metrics`)).text();
    assert.match(metrics, /vllm:lora_requests_info\{max_lora="1",waiting_lora_adapters="",running_lora_adapters=""\}/);
  } finally {
    sub.close();
    await pod.close();
  }
});
