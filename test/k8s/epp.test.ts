// `kvrouter epp` end to end: pods discovered through a fake Kubernetes API (list+watch over
// HTTP), real simulated vLLM pods (two data-parallel ranks, KV events dialed in discovery mode),
// the router's scheduling stack, and a test client playing Envoy over real gRPC: it asks the
// picker, sends the request where the picker says, and streams the response back through it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { parsePrometheusText } from '../../src/endpoints/prom-text.js';
import { startEpp, type Epp } from '../../src/k8s/epp.js';
import { EXT_PROC_SERVICE_NAME, healthClientCtor } from '../../src/k8s/proto.js';
import { startSimPod, type SimPod } from '../../src/sim/index.js';
import { ExtProcExchange, extProcClient } from './helpers/envoy-client.js';
import { FakeApiServer, PODS, fakePod } from './helpers/fake-apiserver.js';
import { freePortRange } from './helpers/ports.js';
import { waitUntil } from './helpers/wait.js';

const MODEL = 'Qwen/Qwen3-0.6B';
const BLOCK = 16;

function config(socketPort: number): string {
  return `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
  - type: single-profile-handler
  - type: decode-filter
  - type: precise-prefix-cache-scorer
    parameters:
      tokenProcessorConfig: {blockSize: ${BLOCK}, hashSeed: "42"}
      kvEventsConfig: {topicFilter: "kv@", discoverPods: true, podDiscoveryConfig: {socketPort: ${socketPort}}}
      speculativeIndexing: false
  - type: kv-cache-utilization-scorer
  - type: queue-scorer
  - type: max-score-picker
schedulingProfiles:
  - name: default
    plugins:
      - {pluginRef: decode-filter}
      - {pluginRef: precise-prefix-cache-scorer, weight: 2.0}
      - {pluginRef: kv-cache-utilization-scorer, weight: 1.0}
      - {pluginRef: queue-scorer, weight: 1.0}
      - {pluginRef: max-score-picker}
`;
}

/** Token-id prompt (no tokenizer needed): `blocks` full blocks, distinct per seed. */
function prompt(seed: number, blocks: number): number[] {
  return Array.from({ length: blocks * BLOCK + 3 }, (_, i) => 1000 + ((seed * 7919 + i * 31) % 50000));
}

function healthCheck(port: number, service: string): Promise<{ status?: number; code?: number }> {
  const Ctor = healthClientCtor();
  const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: number }) => void): void;
  };
  return new Promise((resolve) => {
    client.Check({ service }, (err, res) => {
      client.close();
      resolve(err ? { code: err.code } : { status: res!.status });
    });
  });
}

interface Routed {
  dest: string[];
  status?: number;
  body?: string;
}

/** One request as Envoy would carry it: ext-proc decision, upstream call, response through ext-proc. */
async function viaEnvoy(client: grpc.Client, path: string, body: unknown, opts: { subset?: string[]; stream?: boolean } = {}): Promise<Routed & { immediate?: { status: number; body: string } }> {
  const x = new ExtProcExchange(client);
  const raw = JSON.stringify(body);
  x.requestHeaders({ ':method': 'POST', ':path': path, ':authority': 'gateway', 'content-type': 'application/json', 'content-length': String(raw.length) }, false, opts.subset);
  x.requestBody(raw, 4);
  const ans = await x.routed(10_000);
  if (ans.immediate) {
    x.end();
    return { dest: [], immediate: { status: ans.immediate.status, body: ans.immediate.body } };
  }
  const dest = ans.headers['x-gateway-destination-endpoint'].split(',');
  assert.equal(ans.metadataDestination, ans.headers['x-gateway-destination-endpoint']);
  assert.equal(ans.headers['content-length'], String(ans.body.length));
  // The proxy sends the picker's body to the first endpoint and streams the answer back.
  const res = await fetch(`http://${dest[0]}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: ans.body });
  x.responseHeaders({ ':status': String(res.status), 'content-type': res.headers.get('content-type') ?? '' }, dest[0]);
  let text = '';
  const reader = res.body!.getReader();
  let sent = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString();
    x.responseBody(Buffer.from(value), false);
    sent++;
  }
  x.responseBody(Buffer.alloc(0), true);
  await x.waitFor((rs) => rs.filter((r) => r.response_body).length === sent + 1, 10_000);
  const echoed = Buffer.concat(x.responses.filter((r) => r.response_body).map((r) => Buffer.from(r.response_body!.response!.body_mutation!.streamed_response!.body ?? []))).toString();
  assert.equal(echoed, text, 'the response body passes through the picker unchanged');
  x.end();
  return { dest, status: res.status, body: text };
}

describe('kvrouter epp (discovery, DP ranks, precise routing over ext-proc)', () => {
  const api = new FakeApiServer();
  let epp: Epp;
  let pod: SimPod;
  let client: grpc.Client;
  let httpPort = 0;

  before(async () => {
    await api.start();
    httpPort = await freePortRange(2);
    const zmqPort = await freePortRange(2);
    pod = await startSimPod({
      port: httpPort,
      host: '127.0.0.1',
      model: MODEL,
      blockSize: BLOCK,
      numGpuBlocks: 2048,
      dataParallelSize: 2,
      pythonHashSeed: '42',
      // vLLM gives every rank the same topic (the pod's base port); the batch carries the rank.
      kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint: `tcp://*:${zmqPort}`, topic: `kv@127.0.0.1:${httpPort}@${MODEL}` },
      logger: pino({ level: 'silent' }),
    });
    api.apply(PODS, fakePod('vllm-0', { ip: '127.0.0.1', labels: { app: 'vllm', 'llm-d.ai/role': 'decode' } }));
    epp = await startEpp({
      config: config(zmqPort),
      discovery: { kubeConfig: api.kubeConfig(), namespace: 'default', selector: { app: 'vllm' }, targetPorts: [httpPort, httpPort + 1] },
      host: '127.0.0.1',
      grpcPort: 0,
      grpcHealthPort: 0,
      metricsPort: 0,
      logger: pino({ level: 'silent' }),
    });
    client = extProcClient(epp.grpcPort);
  });

  after(async () => {
    client?.close();
    await epp?.close();
    await pod?.close();
    await api.stop();
  });

  it('serves gRPC health: liveness, readiness and the ext_proc service once the pool is synced', async () => {
    await waitUntil(() => epp.discovery!.synced, 'discovery synced', 10_000);
    assert.deepEqual(await healthCheck(epp.grpcHealthPort, 'liveness'), { status: 1 });
    assert.deepEqual(await healthCheck(epp.grpcHealthPort, 'readiness'), { status: 1 });
    assert.deepEqual(await healthCheck(epp.grpcHealthPort, EXT_PROC_SERVICE_NAME), { status: 1 });
    assert.deepEqual(await healthCheck(epp.grpcHealthPort, 'no-such-service'), { code: grpc.status.NOT_FOUND });
  });

  it('discovers one endpoint per target port and routes to the rank that caches the prefix', async () => {
    await epp.router.pool.waitReady(2, 10_000);
    assert.deepEqual(epp.router.pool.all().map((e) => e.address).sort(), [`127.0.0.1:${httpPort}`, `127.0.0.1:${httpPort + 1}`]);
    assert.deepEqual(epp.router.pool.all().map((e) => e.name).sort(), ['vllm-0-rank-0', 'vllm-0-rank-1']);

    const p = prompt(1, 8);
    const first = await viaEnvoy(client, '/v1/completions', { model: MODEL, prompt: p, max_tokens: 4, stream: true, stream_options: { include_usage: true } });
    assert.equal(first.status, 200);
    assert.match(first.body!, /data: \[DONE\]/);
    const target = first.dest[0];
    // The KV events of the chosen rank reach the index through the discovery-mode dial.
    const scoreOf = async (addr: string) => {
      const r = await fetch(`${epp.router.url}/score_completions`, { method: 'POST', body: JSON.stringify({ model: MODEL, prompt: p }) });
      const j = (await r.json()) as { scores: Record<string, number> };
      return j.scores[addr] ?? 0;
    };
    let score = 0;
    for (let i = 0; i < 200 && score === 0; i++) {
      score = await scoreOf(target);
      if (score === 0) await new Promise((r) => setTimeout(r, 25));
    }
    assert.ok(score > 0, `the serving rank ${target} holds the prompt's blocks (speculative indexing is off)`);
    // The same prefix again: precise routing sends it to the same rank, whichever rank that is.
    for (let i = 0; i < 3; i++) {
      const again = await viaEnvoy(client, '/v1/completions', { model: MODEL, prompt: p, max_tokens: 2 });
      assert.equal(again.dest[0], target);
      assert.equal(again.status, 200);
      assert.match(again.body!, /"cached_tokens":\s*(\d+)/);
      assert.ok(Number(/"cached_tokens":\s*(\d+)/.exec(again.body!)![1]) >= 8 * BLOCK - BLOCK, 'served from the prefix cache');
    }
  });

  it('honours the subset hint, and answers 503 when nothing in it is eligible', async () => {
    const other = `127.0.0.1:${httpPort + 1}`;
    const r = await viaEnvoy(client, '/v1/completions', { model: MODEL, prompt: prompt(1, 8), max_tokens: 2 }, { subset: [other] });
    assert.deepEqual(r.dest, [other]);
    const none = await viaEnvoy(client, '/v1/completions', { model: MODEL, prompt: prompt(2, 2), max_tokens: 2 }, { subset: ['10.9.9.9:8000'] });
    assert.equal(none.immediate?.status, 503);
  });

  it('answers bad requests with ImmediateResponse 400/404 and routes a body-less request', async () => {
    const missing = await viaEnvoy(client, '/v1/completions', { prompt: 'x' });
    assert.equal(missing.immediate?.status, 400);
    assert.equal(JSON.parse(missing.immediate!.body).error.code, 'missing_model');
    const unknown = await viaEnvoy(client, '/v1/completions', { model: 'no-such-model', prompt: 'x' });
    assert.equal(unknown.immediate?.status, 404);

    const x = new ExtProcExchange(client);
    x.requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, true);
    await x.waitFor((rs) => rs.some((m) => m.request_headers));
    const set = x.responses[0].request_headers!.response!.header_mutation!.set_headers!;
    const dest = Buffer.from(set.find((h) => h.header.key === 'x-gateway-destination-endpoint')!.header.raw_value!).toString();
    assert.ok([`127.0.0.1:${httpPort}`, `127.0.0.1:${httpPort + 1}`].includes(dest));
    x.end();
  });

  it('exports Prometheus metrics on the metrics port, with usage accounting', async () => {
    const text = await (await fetch(`http://127.0.0.1:${epp.metricsPort}/metrics`)).text();
    assert.equal(parsePrometheusText(text).errors, 0, 'the exposition parses');
    const types = [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]);
    assert.equal(new Set(types).size, types.length, 'each metric family appears once (picker + router registries)');
    assert.match(text, new RegExp(`inference_objective_request_total\\{model_name="${MODEL.replace('/', '\\/')}",target_model_name="[^"]+"\\} [1-9]`));
    assert.match(text, /inference_objective_input_tokens_count\{[^}]*\} [1-9]/);
    assert.match(text, /inference_objective_request_error_total\{[^}]*error_code="400"\} [1-9]/);
    assert.match(text, /inference_pool_ready_pods 2/);
    assert.match(text, /kvcache_events_messages_total(\{[^}]*\})? [1-9]/, "KV events arrived from the dialed ranks");
  });

  it('drops the pod when the API server says it is terminating: requests then get 503', async () => {
    api.apply(PODS, fakePod('vllm-0', { ip: '127.0.0.1', labels: { app: 'vllm' }, terminating: true }));
    await waitUntil(() => epp.router.pool.all().length === 0, 'endpoints removed', 10_000);
    const r = await viaEnvoy(client, '/v1/completions', { model: MODEL, prompt: prompt(3, 1), max_tokens: 1 });
    assert.equal(r.immediate?.status, 503);
  });
});
