// The hand-written ext_proc codec against protobufjs (through @grpc/proto-loader, exactly what
// grpc-js uses) as the oracle: same bytes when encoding, same objects when decoding, unknown
// fields skipped, large and multi-message bodies, truncated input refused.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as protoLoader from '@grpc/proto-loader';
import {
  codecFields,
  decodeProcessingRequest,
  decodeProcessingResponse,
  encodeProcessingRequest,
  encodeProcessingRequestFrames,
  encodeProcessingResponse,
  encodeProcessingResponseFrames,
  streamedBodyResponse,
} from '../../src/k8s/extproc-codec.js';
import { LOADER_OPTIONS, extProcService, setHeader, toPbStruct, type ProcessingRequest, type ProcessingResponse } from '../../src/k8s/proto.js';
import { rng } from '../helpers/rng.js';

const def = extProcService().Process;
const pbEncodeReq = (m: ProcessingRequest) => def.requestSerialize(m) as Buffer;
const pbDecodeReq = (b: Buffer) => def.requestDeserialize(b) as ProcessingRequest;
const pbEncodeRes = (m: ProcessingResponse) => def.responseSerialize(m) as Buffer;
const pbDecodeRes = (b: Buffer) => def.responseDeserialize(b) as ProcessingResponse;

const hdrs = (h: Record<string, string>) => ({ headers: Object.entries(h).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) });
const big = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff));

const REQUESTS: Record<string, ProcessingRequest> = {
  headers: { request_headers: { headers: hdrs({ ':method': 'POST', ':path': '/v1/completions', 'content-type': 'application/json', 'x-request-id': 'r-1' }) } },
  'headers eos, value not raw_value, unicode': { request_headers: { headers: { headers: [{ key: 'x-ü', value: 'wert € 😀' }, { key: '', raw_value: Buffer.alloc(0) }] }, end_of_stream: true } },
  'headers with subset hint (list)': {
    request_headers: { headers: hdrs({ ':path': '/v1/chat/completions' }), end_of_stream: false },
    metadata_context: { filter_metadata: { 'envoy.lb.subset_hint': toPbStruct({ 'x-gateway-destination-endpoint-subset': ['10.0.0.1:8000', '10.0.0.2:8000'] }) } },
  },
  'struct of every value kind': {
    request_trailers: {},
    metadata_context: {
      filter_metadata: {
        a: toPbStruct({ s: 'x', n: -1.5, big: 2 ** 60, b: true, f: false, z: null, l: [1, 'two', [3], { four: 4 }], o: { deep: { deeper: { deepest: 'y' } } }, e: {} }),
        '': toPbStruct({}),
      },
    },
  },
  'small body': { request_body: { body: Buffer.from('{"model":"m","prompt":"hi"}'), end_of_stream: true } },
  'empty body, all flags': { request_body: { body: Buffer.alloc(0), end_of_stream: false, end_of_stream_without_message: true, grpc_message_compressed: false } },
  'large body (1 MiB)': { request_body: { body: big(1 << 20), end_of_stream: true } },
  'response headers with served endpoint': {
    response_headers: { headers: hdrs({ ':status': '200', 'content-type': 'text/event-stream' }) },
    metadata_context: { filter_metadata: { 'envoy.lb': toPbStruct({ 'x-gateway-destination-endpoint-served': '10.0.0.2:8000' }) } },
  },
  'response body': { response_body: { body: Buffer.from('data: {"usage":null}\n\n'), end_of_stream: false } },
  'response trailers': { response_trailers: { trailers: hdrs({ 'grpc-status': '0' }) } },
  'observability, protocol config, attributes': {
    request_headers: { headers: hdrs({ a: 'b' }) },
    observability_mode: true,
    protocol_config: { request_body_mode: 4, response_body_mode: 4, send_body_without_waiting_for_header_response: true },
    attributes: { 'envoy.filters.http.ext_proc': toPbStruct({ 'request.path': '/v1/completions', 'source.port': 4242 }) },
  },
  empty: {},
};

const RESPONSES: Record<string, ProcessingResponse> = {
  'routing headers + metadata': {
    request_headers: {
      response: {
        clear_route_cache: true,
        header_mutation: {
          set_headers: [setHeader('x-gateway-destination-endpoint', '10.0.0.1:8000,10.0.0.2:8000'), setHeader('content-length', '5842'), setHeader('x-extra', 'ä', true)],
          remove_headers: ['x-gateway-destination-endpoint-subset', ''],
        },
      },
    },
    dynamic_metadata: toPbStruct({ 'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.1:8000,10.0.0.2:8000' } }),
  },
  'streamed body chunk': { request_body: { response: { body_mutation: { streamed_response: { body: big(62_000), end_of_stream: true } } } } },
  'empty streamed body': { response_body: { response: { body_mutation: { streamed_response: { body: Buffer.alloc(0), end_of_stream: false } } } } },
  'body mutation variants': { request_body: { response: { status: 1, body_mutation: { body: Buffer.from('x') } } } },
  'clear body': { response_body: { response: { body_mutation: { clear_body: true } } } },
  'empty messages': { response_headers: { response: {} } },
  'trailers response': { request_trailers: {} },
  'trailers response with mutation': { response_trailers: { header_mutation: { set_headers: [{ header: { key: 'k', value: 'v' }, append: { value: false }, append_action: 0, keep_empty_value: true }] } } },
  'immediate response': {
    immediate_response: {
      status: { code: 429 },
      headers: { set_headers: [setHeader('content-type', 'application/json')] },
      body: Buffer.from('{"error":{"message":"shed"}}'),
      details: 'shed',
      grpc_status: { status: 8 },
    },
  },
  'common response trailers, negative enum, mode override, timeout': {
    response_headers: { response: { status: -1, trailers: hdrs({ t: '1' }) } },
    mode_override: { request_header_mode: 1, response_header_mode: 2, request_body_mode: 4, response_body_mode: 5, request_trailer_mode: 0, response_trailer_mode: 1 },
    override_message_timeout: { seconds: '315576000000', nanos: 999_999_999 },
  },
  'negative duration': { request_trailers: {}, override_message_timeout: { seconds: '-5', nanos: -3 } },
  empty: {},
};

const KINDS: Record<string, string> = {
  TYPE_BOOL: 'bool',
  TYPE_ENUM: 'enum',
  TYPE_INT32: 'int32',
  TYPE_UINT32: 'uint32',
  TYPE_INT64: 'int64',
  TYPE_DOUBLE: 'double',
  TYPE_STRING: 'string',
  TYPE_BYTES: 'bytes',
  TYPE_MESSAGE: 'message',
};
interface FieldDesc {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}
interface MessageDesc {
  field: FieldDesc[];
  nestedType?: (MessageDesc & { name: string; options?: { mapEntry?: boolean } | null })[];
}

describe('ext-proc codec schema', () => {
  it('has every field of every message reachable from ProcessingRequest and ProcessingResponse in proto/', () => {
    const def = protoLoader.loadSync(['envoy/service/ext_proc/v3/external_processor.proto'], LOADER_OPTIONS);
    const byShortName = new Map<string, MessageDesc>();
    for (const [full, d] of Object.entries(def)) {
      const t = (d as { type?: unknown }).type as MessageDesc | undefined;
      if (t && Array.isArray(t.field)) byShortName.set(full.split('.').pop()!, t);
    }
    const short = (typeName: string) => typeName.split('.').pop()!;
    const todo = ['ProcessingRequest', 'ProcessingResponse'];
    const done = new Set<string>();
    while (todo.length > 0) {
      const name = todo.pop()!;
      if (done.has(name)) continue;
      done.add(name);
      const desc = byShortName.get(name);
      assert.ok(desc, `message ${name} in proto/`);
      const expected = desc.field.map((f) => {
        const entry = desc.nestedType?.find((n) => n.name === f.typeName && n.options?.mapEntry);
        if (entry) {
          const value = short(entry.field.find((x) => x.number === 2)!.typeName);
          todo.push(value);
          return { no: f.number, name: f.name, kind: 'map', repeated: false, type: value };
        }
        const kind = KINDS[f.type];
        assert.ok(kind, `${name}.${f.name}: field type ${f.type} is not handled by the codec`);
        const type = kind === 'message' ? short(f.typeName) : undefined;
        if (type) todo.push(type);
        return { no: f.number, name: f.name, kind, repeated: f.label === 'LABEL_REPEATED', type };
      });
      const norm = (xs: { no: number; name: string; kind: string; repeated: boolean; type?: string }[]) => [...xs].sort((a, b) => a.no - b.no);
      assert.deepStrictEqual(norm(codecFields(name) ?? []), norm(expected), `codec schema of ${name}`);
    }
    assert.ok(done.size >= 20, `walked ${done.size} message types`);
  });
});

describe('ext-proc codec vs protobufjs', () => {
  for (const [name, msg] of Object.entries(REQUESTS)) {
    it(`ProcessingRequest: ${name}`, () => {
      const oracle = pbEncodeReq(msg);
      const mine = encodeProcessingRequest(msg);
      assert.ok(mine.equals(oracle), 'same bytes as protobufjs');
      assert.deepStrictEqual(decodeProcessingRequest(oracle), pbDecodeReq(oracle));
    });
  }
  for (const [name, msg] of Object.entries(RESPONSES)) {
    it(`ProcessingResponse: ${name}`, () => {
      const oracle = pbEncodeRes(msg);
      const mine = encodeProcessingResponse(msg);
      assert.ok(mine.equals(oracle), `same bytes as protobufjs\n${mine.toString('hex').slice(0, 400)}\n${oracle.toString('hex').slice(0, 400)}`);
      assert.deepStrictEqual(decodeProcessingResponse(oracle), pbDecodeRes(oracle));
    });
  }

  it('writes pre-shaped streamed body responses exactly as protobufjs does', () => {
    const cases: Array<[Parameters<typeof streamedBodyResponse>[0], number, boolean]> = [
      ['request_body', 0, false],
      ['request_body', 100, true],
      ['response_body', 200, false],
      ['response_body', 16_384, true],
      ['request_body', 62_000, true],
      ['request_body', 3_000_000, false],
    ];
    for (const [kind, n, eos] of cases) {
      const m = streamedBodyResponse(kind, big(n), eos);
      assert.ok(encodeProcessingResponse(m).equals(pbEncodeRes(m)), `${kind} ${n} ${eos}`);
    }
    // Mixed with other messages in one framed buffer.
    const msgs = [RESPONSES['routing headers + metadata'], streamedBodyResponse('request_body', big(300), true), RESPONSES['empty messages']];
    const framed = encodeProcessingResponseFrames(msgs);
    assert.ok(framed.equals(Buffer.concat(msgs.map((m) => { const b = pbEncodeRes(m); const h = Buffer.alloc(5); h.writeUInt32BE(b.length, 1); return Buffer.concat([h, b]); }))));
  });

  it('decodes bytes fields as views of the input (no copy)', () => {
    const wire = pbEncodeReq(REQUESTS['large body (1 MiB)']);
    const m = decodeProcessingRequest(wire);
    const body = m.request_body!.body as Buffer;
    assert.equal(body.length, 1 << 20);
    assert.equal(body.buffer, wire.buffer, 'shares the input buffer');
    assert.ok(body.equals(big(1 << 20)));
  });

  it('accepts a Uint8Array that is not a Buffer', () => {
    const wire = pbEncodeReq(REQUESTS['headers']);
    const copy = new Uint8Array(wire.length + 3).subarray(3);
    copy.set(wire);
    assert.deepStrictEqual(decodeProcessingRequest(copy), pbDecodeReq(wire));
  });

  it('frames several messages into one buffer, each gRPC length-prefixed', () => {
    const msgs = Object.values(RESPONSES);
    const framed = encodeProcessingResponseFrames(msgs);
    const got: ProcessingResponse[] = [];
    for (let off = 0; off < framed.length; ) {
      assert.equal(framed[off], 0, 'uncompressed flag');
      const len = framed.readUInt32BE(off + 1);
      got.push(pbDecodeRes(framed.subarray(off + 5, off + 5 + len)));
      off += 5 + len;
    }
    assert.deepStrictEqual(got, msgs.map((m) => pbDecodeRes(pbEncodeRes(m))));
    const reqs = [REQUESTS['headers'], REQUESTS['large body (1 MiB)'], REQUESTS['empty']];
    const rf = encodeProcessingRequestFrames(reqs);
    assert.equal(rf.length, reqs.reduce((n, m) => n + 5 + pbEncodeReq(m).length, 0));
    assert.deepStrictEqual(decodeProcessingRequest(rf.subarray(5, 5 + rf.readUInt32BE(1))), pbDecodeReq(pbEncodeReq(reqs[0])));
  });

  it('skips unknown fields of every wire type, at the top level and nested', () => {
    // Unknown fields: 50 varint (10-byte), 51 fixed64, 52 length-delimited (a packed repeated
    // varint list), 53 fixed32, 54 a group holding a varint and a nested group.
    const unknown = Buffer.from([
      0x90, 0x03, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
      0x99, 0x03, 1, 2, 3, 4, 5, 6, 7, 8,
      0xa2, 0x03, 0x04, 0x01, 0x96, 0x01, 0x05,
      0xad, 0x03, 9, 9, 9, 9,
      0xb3, 0x03, 0x08, 0x07, 0x1b, 0x1c, 0xb4, 0x03,
    ]);
    const body = Buffer.from('{"x":1}');
    // HttpBody{body, unknown, end_of_stream} inside ProcessingRequest.request_body, then unknown.
    const inner = Buffer.concat([Buffer.from([0x0a, body.length]), body, unknown, Buffer.from([0x10, 0x01])]);
    const wire = Buffer.concat([unknown, Buffer.from([0x22, inner.length]), inner, unknown]);
    const oracle = pbDecodeReq(wire);
    assert.deepStrictEqual(oracle, { request: 'request_body', request_body: { body, end_of_stream: true } });
    assert.deepStrictEqual(decodeProcessingRequest(wire), oracle);
  });

  it('skips a known field number sent with another wire type; the last value of a scalar wins', () => {
    // request_body.end_of_stream (field 2) as fixed32, then as varint 0, then as varint 1.
    const inner = Buffer.from([0x15, 1, 0, 0, 0, 0x10, 0x00, 0x10, 0x01]);
    const wire = Buffer.concat([Buffer.from([0x22, inner.length]), inner]);
    assert.deepStrictEqual(decodeProcessingRequest(wire), { request: 'request_body', request_body: { end_of_stream: true } });
  });

  it('keeps the last member of a oneof', () => {
    const wire = Buffer.concat([pbEncodeReq(REQUESTS['headers']), pbEncodeReq(REQUESTS['small body'])]);
    const m = decodeProcessingRequest(wire);
    assert.equal(m.request, 'request_body');
    assert.equal(m.request_headers, undefined);
    assert.deepStrictEqual(m.request_body, pbDecodeReq(pbEncodeReq(REQUESTS['small body'])).request_body);
  });

  it('refuses truncated input at every cut inside a field, as protobufjs does', () => {
    for (const msg of [REQUESTS['headers with subset hint (list)'], REQUESTS['small body'], REQUESTS['observability, protocol config, attributes']]) {
      const wire = pbEncodeReq(msg);
      for (let cut = 0; cut < wire.length; cut++) {
        const part = wire.subarray(0, cut);
        let expected: ProcessingRequest | Error;
        try {
          expected = pbDecodeReq(part);
        } catch (err) {
          expected = err as Error;
        }
        if (expected instanceof Error) assert.throws(() => decodeProcessingRequest(part), /truncated|malformed|wire type/, `cut at ${cut}`);
        else assert.deepStrictEqual(decodeProcessingRequest(part), expected, `cut at ${cut}`);
      }
    }
  });

  it('never fails with anything but a clear error on corrupted input', () => {
    const rnd = rng(7);
    const base = pbEncodeReq(REQUESTS['headers with subset hint (list)']);
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.from(base);
      for (let k = 0; k < 3; k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      try {
        const m = decodeProcessingRequest(b);
        assert.equal(typeof m, 'object');
      } catch (err) {
        assert.match((err as Error).message, /protobuf message/);
      }
    }
  });

  it('rejects values of the wrong type when encoding, as protobufjs does', () => {
    assert.throws(() => encodeProcessingResponse({ request_headers: 'x' } as unknown as ProcessingResponse), /ProcessingResponse.request_headers: object expected/);
    assert.throws(() => encodeProcessingResponse({ request_headers: { response: { header_mutation: { set_headers: {} } } } } as unknown as ProcessingResponse), /array expected/);
  });
});
