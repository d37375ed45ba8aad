// `kvrouter sim` as a user runs it: pods come up on free ports, serve, publish, stop on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import * as zmq from 'zeromq';

const BIN = 'bin/kvrouter.js';

test('kvrouter sim --pods 2: prints each pod, serves completions, publishes events, exits 0 on SIGTERM', async () => {
  const child = spawn(
    process.execPath,
    [BIN, 'sim', '--model', 'm', '--port', '0', '--pods', '2', '--profile', 'h100-qwen3-0.6b', '--num-gpu-blocks', '300', '--max-model-len', '2048', '--hash-seed', '0', '--llmd-topic', '--kv-events-config', '{"enable_kv_cache_events":true,"endpoint":"tcp://127.0.0.1:*"}'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  try {
    const lines = createInterface({ input: child.stdout });
    const pods: { url: string; podId: string; topic: string; kvEventsEndpoint: string }[] = [];
    for await (const line of lines) {
      pods.push(JSON.parse(line));
      if (pods.length === 2) break;
    }
    assert.equal(pods.length, 2, stderr);
    assert.notEqual(pods[0].url, pods[1].url);
    assert.equal(pods[0].topic, `kv@${pods[0].podId}@m`);
    const sub = new zmq.Subscriber({ linger: 0 });
    sub.connect(pods[1].kvEventsEndpoint);
    sub.subscribe('kv@');
    await new Promise((r) => setTimeout(r, 200));
    const r = await fetch(`${pods[1].url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', prompt: Array.from({ length: 20 }, (_, i) => i + 1), max_tokens: 2 }) });
    assert.equal(r.status, 200);
    const [topic, seq] = await sub.receive();
    assert.equal(topic.toString(), pods[1].topic);
    assert.equal(seq.readBigUInt64BE(0), 0n);
    sub.close();
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
});

test('kvrouter sim rejects bad options with a clear message', () => {
  const noModel = spawnSync(process.execPath, [BIN, 'sim', '--port', '0'], { encoding: 'utf8' });
  assert.equal(noModel.status, 1);
  assert.match(noModel.stderr, /--model is required/);
  const badJson = spawnSync(process.execPath, [BIN, 'sim', '--model', 'm', '--port', '0', '--kv-events-config', '{bad'], { encoding: 'utf8' });
  assert.equal(badJson.status, 1);
  assert.match(badJson.stderr, /--kv-events-config is not valid JSON/);
});

test('kvrouter sim --pods 2 with a connecting endpoint: every pod publishes to that one endpoint', async () => {
  const sub = new zmq.Subscriber({ linger: 0 });
  await sub.bind('tcp://127.0.0.1:0');
  sub.subscribe('kv@');
  const child = spawn(
    process.execPath,
    [BIN, 'sim', '--model', 'm', '--port', '0', '--pods', '2', '--profile', 'h100-qwen3-0.6b', '--num-gpu-blocks', '300', '--max-model-len', '2048', '--hash-seed', '0', '--llmd-topic', '--kv-events-config', JSON.stringify({ enable_kv_cache_events: true, endpoint: sub.lastEndpoint })],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  try {
    const lines = createInterface({ input: child.stdout });
    const pods: { url: string; podId: string; topic: string; kvEventsEndpoint: string }[] = [];
    for await (const line of lines) {
      pods.push(JSON.parse(line));
      if (pods.length === 2) break;
    }
    assert.equal(pods.length, 2, stderr);
    assert.equal(pods[0].kvEventsEndpoint, sub.lastEndpoint, 'pod 0 connects to the endpoint as given');
    assert.equal(pods[1].kvEventsEndpoint, sub.lastEndpoint, 'pod 1 too: no per-pod port offset');
    const topics = new Set<string>();
    const receiving = (async () => {
      for await (const [topic] of sub) {
        topics.add(topic.toString());
        if (topics.size === 2) return;
      }
    })();
    // the PUB sockets connect asynchronously (slow joiner): ask again until both were heard
    for (let i = 0; i < 50 && topics.size < 2; i++) {
      for (const p of pods) {
        const r = await fetch(`${p.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', prompt: Array.from({ length: 20 }, (_, k) => k + 1 + i * 100), max_tokens: 2 }) });
        assert.equal(r.status, 200);
      }
      await Promise.race([receiving, new Promise((r) => setTimeout(r, 100))]);
    }
    assert.deepEqual([...topics].sort(), pods.map((p) => p.topic).sort(), 'both pods reached the one endpoint');
    const help = spawnSync(process.execPath, [BIN, 'sim', '--help'], { encoding: 'utf8' });
    assert.match(help.stdout, /every pod's publisher connects to the same/);
  } finally {
    sub.close();
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
});
