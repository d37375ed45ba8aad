// The ext-proc protocol layer alone, over real gRPC on loopback, with a recording picker:
// header mutation, metadata, chunking, content-length, subset hint, errors, response passthrough.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { Registry } from 'prom-client';
import { extProcImplementation, type ExtProcOptions } from '../../src/k8s/extproc-server.js';
import { startGrpcServer, type GrpcServerHandle } from '../../src/k8s/grpc-server.js';
import { EppMetrics } from '../../src/k8s/metrics.js';
import { subsetAllows, type EndpointPicker, type PickInput, type PickOutcome, type ResponseOutcome } from '../../src/k8s/picker.js';
import { extProcServerService, extProcService } from '../../src/k8s/proto.js';
import { ExtProcExchange, extProcClient } from './helpers/envoy-client.js';

const ENDPOINTS = ['10.0.0.1:8000', '10.0.0.2:8000', '10.0.0.3:8000'];

class RecordingPicker implements EndpointPicker {
  inputs: PickInput[] = [];
  outcomes: ResponseOutcome[] = [];
  async pick(input: PickInput): Promise<PickOutcome> {
    this.inputs.push(input);
    let body: { model?: string; fail?: number };
    try {
      body = JSON.parse(input.body.toString('utf8'));
    } catch {
      return { error: { status: 400, code: 'bad_json', message: 'request body is not valid JSON' } };
    }
    if (body.fail) return { error: { status: body.fail, code: 'forced', message: `forced ${body.fail}` } };
    const allowed = input.subset ? ENDPOINTS.filter((e) => subsetAllows(new Set(input.subset), e)) : ENDPOINTS;
    if (allowed.length === 0) return { error: { status: 503, code: 'no_endpoints', message: 'no endpoint in the subset' } };
    // Re-serialize with an added field so the length changes.
    const out = Buffer.from(JSON.stringify({ ...body, routed: true }));
    return { endpoints: allowed.slice(0, 2), body: out, model: body.model, observer: { completed: (o) => this.outcomes.push(o) } };
  }
  pickAny(input: Omit<PickInput, 'body'>): PickOutcome {
    const allowed = input.subset ? ENDPOINTS.filter((e) => subsetAllows(new Set(input.subset), e)) : ENDPOINTS;
    if (allowed.length === 0) return { error: { status: 503, code: 'no_endpoints', message: 'none' } };
    return { endpoints: [allowed[0]] };
  }
}

/**
 * The picker's server (grpc-js with the hand-written codec, as `kvrouter epp` serves it) and the
 * same service on protobufjs: the clients here encode with protobufjs, so both must agree.
 */
type ServerCodec = 'extproc-codec' | 'protobufjs';
function serve(codec: ServerCodec, opts: ExtProcOptions): Promise<GrpcServerHandle> {
  const definition = codec === 'extproc-codec' ? extProcServerService() : extProcService();
  return startGrpcServer('127.0.0.1', 0, [{ definition, implementation: extProcImplementation(opts) }]);
}

describe('ext-proc protocol: GIE conformance hooks', () => {
  const picker = new RecordingPicker();
  let server: GrpcServerHandle;
  let client: grpc.Client;
  before(async () => {
    server = await startGrpcServer('127.0.0.1', 0, [
      { definition: extProcService(), implementation: extProcImplementation({ picker, logger: pino({ level: 'silent' }), conformanceHooks: true }) },
    ]);
    client = extProcClient(server.port);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('restricts to test-epp-endpoint-selection and echoes the served endpoint', async () => {
    const x = new ExtProcExchange(client);
    x.requestHeaders({ ':path': '/v1/completions', 'test-epp-endpoint-selection': '10.0.0.2' });
    x.requestBody(JSON.stringify({ model: 'm', prompt: 'x' }), 1);
    const ans = await x.routed();
    assert.equal(ans.headers['x-gateway-destination-endpoint'], '10.0.0.2:8000');
    x.responseHeaders({ ':status': '200' }, '10.0.0.2:8000');
    const rs = await x.waitFor((r) => r.some((m) => m.response_headers));
    const set = rs.find((m) => m.response_headers)!.response_headers!.response!.header_mutation!.set_headers!;
    assert.equal(Buffer.from(set[0].header.raw_value!).toString(), '10.0.0.2:8000');
    assert.equal(set[0].header.key, 'x-conformance-test-served-endpoint');
    x.end();
  });
});

for (const transport of ['extproc-codec', 'protobufjs'] as const) describe(`ext-proc protocol (server codec: ${transport})`, () => {
  const picker = new RecordingPicker();
  const registry = new Registry();
  let server: GrpcServerHandle;
  let client: grpc.Client;

  before(async () => {
    server = await serve(transport, { picker, logger: pino({ level: 'silent' }), metrics: new EppMetrics(registry) });
    client = extProcClient(server.port);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('routes a body split across messages: headers, metadata, content-length, chunks', async () => {
    const x = new ExtProcExchange(client);
    const prompt = 'p'.repeat(150_000);
    const body = JSON.stringify({ model: 'm', prompt });
    x.requestHeaders({ ':method': 'POST', ':path': '/v1/completions', 'content-type': 'application/json', 'content-length': String(body.length) });
    x.requestBody(body, 5);
    const ans = await x.routed();
    assert.equal(ans.immediate, undefined);
    assert.equal(ans.headers['x-gateway-destination-endpoint'], '10.0.0.1:8000,10.0.0.2:8000');
    assert.equal(ans.metadataDestination, ans.headers['x-gateway-destination-endpoint']);
    assert.equal(ans.clearRouteCache, true);
    const expected = JSON.stringify({ model: 'm', prompt, routed: true });
    assert.equal(ans.body.toString(), expected);
    assert.equal(ans.headers['content-length'], String(Buffer.byteLength(expected)));
    assert.ok(ans.chunkSizes.every((n) => n <= 62_000), `chunks ${ans.chunkSizes}`);
    assert.equal(ans.chunkSizes.length, Math.ceil(Buffer.byteLength(expected) / 62_000));
    // x-request-id was absent: one is generated, passed to the picker and set on the request.
    const input = picker.inputs.at(-1)!;
    assert.match(ans.headers['x-request-id'], /^[0-9a-f-]{36}$/);
    assert.equal(input.requestId, ans.headers['x-request-id']);
    assert.equal(input.body.toString(), body);
    assert.equal(input.path, '/v1/completions');

    // Streaming response passes through chunk by chunk; usage comes from the final SSE chunk.
    x.responseHeaders({ ':status': '200', 'content-type': 'text/event-stream' }, '10.0.0.2:8000');
    await x.waitFor((rs) => rs.some((r) => r.response_headers));
    const events = [
      'data: {"choices":[{"text":"a"}],"usage":null}\n\n',
      'data: {"choices":[{"text":"b"}],"usage":null}\n\ndata: {"choices":[],"us',
      'age":{"prompt_tokens":12,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":8}}}\n\n',
      'data: [DONE]\n\n',
    ];
    for (let i = 0; i < events.length; i++) {
      x.responseBody(events[i], i === events.length - 1);
      // Each chunk comes back before the next is sent: nothing is buffered.
      await x.waitFor((rs) => rs.filter((r) => r.response_body).length === i + 1);
    }
    const echoed = x.responses.filter((r) => r.response_body).map((r) => Buffer.from(r.response_body!.response!.body_mutation!.streamed_response!.body ?? []).toString());
    assert.deepEqual(echoed, events);
    assert.equal(x.responses.at(-1)!.response_body!.response!.body_mutation!.streamed_response!.end_of_stream, true);
    x.end();
    await x.waitFor(() => false).catch(() => undefined);
    const o = picker.outcomes.at(-1)!;
    assert.equal(o.status, 200);
    assert.equal(o.servedEndpoint, '10.0.0.2:8000');
    assert.equal(o.promptTokens, 12);
    assert.equal(o.completionTokens, 2);
    assert.equal(o.cachedTokens, 8);
    assert.equal(o.aborted, false);
    const metrics = await registry.getSingleMetricAsString('inference_objective_request_total');
    assert.match(metrics, /inference_objective_request_total\{model_name="m",target_model_name="m"\} [1-9]/);
  });

  it('keeps a client x-request-id and reads the usage of a JSON response', async () => {
    const x = new ExtProcExchange(client);
    x.requestHeaders({ ':path': '/v1/chat/completions', 'x-request-id': 'abc-1' });
    x.requestBody(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }), 2);
    const ans = await x.routed();
    assert.equal(ans.headers['x-request-id'], undefined, 'client id kept, not overwritten');
    assert.equal(picker.inputs.at(-1)!.requestId, 'abc-1');
    x.responseHeaders({ ':status': '200', 'content-type': 'application/json' });
    x.responseBody('{"id":"x","usage":{"prompt_tokens":5,', false);
    x.responseBody('"completion_tokens":3}}', true);
    await x.waitFor((rs) => rs.filter((r) => r.response_body).length === 2);
    x.end();
    await x.waitFor(() => false).catch(() => undefined);
    const o = picker.outcomes.at(-1)!;
    assert.equal(o.promptTokens, 5);
    assert.equal(o.completionTokens, 3);
    assert.equal(o.cachedTokens, undefined);
  });

  it('restricts to the subset hint, and answers 503 to an empty or foreign subset', async () => {
    let x = new ExtProcExchange(client);
    x.requestHeaders({ ':path': '/v1/completions' }, false, ['10.0.0.3:8000']);
    x.requestBody(JSON.stringify({ model: 'm', prompt: 'x' }), 2);
    let ans = await x.routed();
    assert.equal(ans.headers['x-gateway-destination-endpoint'], '10.0.0.3:8000');
    assert.deepEqual(picker.inputs.at(-1)!.subset, ['10.0.0.3:8000']);
    x.end();

    x = new ExtProcExchange(client);
    x.requestHeaders({ ':path': '/v1/completions' }, false, '10.0.0.2,10.0.0.3'); // comma string, bare IPs
    x.requestBody(JSON.stringify({ model: 'm', prompt: 'x' }), 1);
    ans = await x.routed();
    assert.equal(ans.headers['x-gateway-destination-endpoint'], '10.0.0.2:8000,10.0.0.3:8000');
    x.end();

    x = new ExtProcExchange(client);
    x.requestHeaders({ ':path': '/v1/completions' }, false, []);
    x.requestBody(JSON.stringify({ model: 'm', prompt: 'x' }), 1);
    ans = await x.routed();
    assert.equal(ans.immediate?.status, 503);

    x = new ExtProcExchange(client);
    x.requestHeaders({ ':path': '/v1/completions' }, false, ['192.168.9.9:8000']);
    x.requestBody(JSON.stringify({ model: 'm', prompt: 'x' }), 1);
    ans = await x.routed();
    assert.equal(ans.immediate?.status, 503);
    assert.equal(JSON.parse(ans.immediate!.body).error.code, 'no_endpoints');
    assert.equal(JSON.parse(ans.immediate!.body).error.type, 'service_unavailable_error');
  });

  it('answers errors as ImmediateResponse with an OpenAI-style JSON body', async () => {
    for (const [body, status] of [['{not json', 400], ['{"model":"m","fail":429}', 429], ['{"model":"m","fail":500}', 500]] as const) {
      const x = new ExtProcExchange(client);
      x.requestHeaders({ ':path': '/v1/completions' });
      x.requestBody(body, 2);
      const ans = await x.routed();
      assert.equal(ans.immediate?.status, status, body);
      assert.equal(ans.immediate!.headers['content-type'], 'application/json');
      const err = JSON.parse(ans.immediate!.body).error;
      assert.equal(typeof err.code, 'string');
      assert.equal(err.type, { 400: 'invalid_request_error', 429: 'rate_limit_error', 500: 'internal_error' }[status]);
      assert.equal(typeof err.message, 'string');
      await x.waitFor(() => false, 10_000).catch(() => undefined);
      assert.equal(x.ended, true, 'stream ends after an immediate response');
    }
  });

  it('routes a header-only request (end_of_stream on headers) without a body', async () => {
    const x = new ExtProcExchange(client);
    x.requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, true);
    await x.waitFor((rs) => rs.some((r) => r.request_headers));
    const ans = await x.waitFor((rs) => rs.length >= 1).then((rs) => rs);
    const hr = ans[0].request_headers!.response!;
    const dest = hr.header_mutation!.set_headers!.find((h) => h.header.key === 'x-gateway-destination-endpoint');
    assert.ok(dest && ENDPOINTS.includes(Buffer.from(dest.header.raw_value!).toString()));
    assert.equal(hr.header_mutation!.set_headers!.some((h) => h.header.key === 'content-length'), false);
    assert.equal(ans.some((r) => r.request_body), false);
    x.end();
  });

  it('reports an aborted response to the observer when Envoy cancels the stream', async () => {
    const before = picker.outcomes.length;
    const x = new ExtProcExchange(client);
    x.requestHeaders({ ':path': '/v1/completions' });
    x.requestBody(JSON.stringify({ model: 'm', prompt: 'x' }), 1);
    await x.routed();
    x.responseHeaders({ ':status': '200', 'content-type': 'text/event-stream' });
    await x.waitFor((rs) => rs.some((r) => r.response_headers));
    x.cancel();
    for (let i = 0; i < 1000 && picker.outcomes.length === before; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(picker.outcomes.length, before + 1);
    assert.equal(picker.outcomes.at(-1)!.aborted, true);
  });
});

describe('ext-proc protocol: --max-body-bytes on a body Envoy streams in chunks', () => {
  const picker = new RecordingPicker();
  let server: GrpcServerHandle;
  let client: grpc.Client;
  before(async () => {
    server = await serve('extproc-codec', { picker, logger: pino({ level: 'silent' }), maxBodyBytes: 1000 });
    client = extProcClient(server.port);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  function assert413(ans: { immediate?: { status: number; body: string; headers: Record<string, string> } }): void {
    assert.equal(ans.immediate?.status, 413);
    assert.equal(ans.immediate!.headers['content-type'], 'application/json');
    const err = JSON.parse(ans.immediate!.body).error;
    assert.deepEqual(Object.keys(err).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(err.code, 'body_too_large');
    assert.equal(err.type, 'request_too_large_error');
  }

  it('a chunked body (no content-length) is refused with 413 on the chunk that goes over, before its end', async () => {
    const picked = picker.inputs.length;
    const x = new ExtProcExchange(client);
    x.requestHeaders({ ':method': 'POST', ':path': '/v1/completions' });
    // 400-byte chunks, never end_of_stream: the third one crosses 1000 bytes
    for (let i = 0; i < 3; i++) x.send({ request_body: { body: Buffer.alloc(400, 0x61), end_of_stream: false } });
    const ans = await x.routed();
    assert413(ans);
    assert.equal(x.responses.length, 1, 'the immediate response is the only answer');
    // Envoy may still have chunks on the wire: they change nothing
    x.send({ request_body: { body: Buffer.alloc(400, 0x61), end_of_stream: true } });
    await x.waitFor(() => false, 10_000).catch(() => undefined);
    assert.equal(x.ended, true, 'the stream ends after the immediate response');
    assert.equal(x.responses.length, 1);
    assert.equal(picker.inputs.length, picked, 'the picker never saw the body');
  });

  it('a declared content-length over the limit is refused at the headers, before any body', async () => {
    const picked = picker.inputs.length;
    const x = new ExtProcExchange(client);
    x.requestHeaders({ ':method': 'POST', ':path': '/v1/completions', 'content-length': '5000' });
    assert413(await x.routed());
    assert.equal(picker.inputs.length, picked);
  });

  it('a body of exactly the limit is routed', async () => {
    const x = new ExtProcExchange(client);
    const body = JSON.stringify({ model: 'm', prompt: 'p'.repeat(1000 - 25) });
    assert.equal(body.length, 1000);
    x.requestHeaders({ ':method': 'POST', ':path': '/v1/completions', 'content-length': String(body.length) });
    x.requestBody(body, 3);
    const ans = await x.routed();
    assert.equal(ans.immediate, undefined);
    assert.equal(picker.inputs.at(-1)!.body.toString(), body);
    x.end();
  });
});
