// Loads the ext_proc and gRPC health definitions from proto/ (our minimal subsets of the
// upstream files) and describes the decoded messages as TypeScript types.
//
// Loader options: keepCase (field names as in the .proto, snake_case), oneofs (a virtual field
// names the member that is set), bytes as Buffer, no defaults (absent fields stay undefined).
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { decodeProcessingRequest, encodeProcessingResponse } from './extproc-codec.js';

export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));
export const EXT_PROC_SERVICE_NAME = 'envoy.service.ext_proc.v3.ExternalProcessor';
export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: Number,
  defaults: false,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

let cached: grpc.GrpcObject | undefined;

/** The loaded package tree (envoy.*, grpc.health.v1.*), parsed once per process. */
export function protoPackage(): grpc.GrpcObject {
  if (!cached) {
    const def = protoLoader.loadSync(['envoy/service/ext_proc/v3/external_processor.proto', 'grpc/health/v1/health.proto'], LOADER_OPTIONS);
    cached = grpc.loadPackageDefinition(def);
  }
  return cached;
}

function lookup(name: string): grpc.ServiceClientConstructor {
  let node: unknown = protoPackage();
  for (const part of name.split('.')) node = (node as Record<string, unknown>)[part];
  if (typeof node !== 'function') throw new Error(`proto service ${name} not found`);
  return node as grpc.ServiceClientConstructor;
}

export function extProcService(): grpc.ServiceDefinition {
  return lookup(EXT_PROC_SERVICE_NAME).service;
}
/**
 * The ext_proc service as the picker serves it: grpc-js's transport with the hand-written codec
 * (extproc-codec.ts: byte-compatible with protobufjs, which stays the clients' codec and the
 * tests' oracle, and several times cheaper per message).
 */
export function extProcServerService(): grpc.ServiceDefinition {
  const def = extProcService();
  return {
    ...def,
    Process: {
      ...def.Process,
      requestDeserialize: decodeProcessingRequest,
      responseSerialize: (m: ProcessingResponse) => encodeProcessingResponse(m),
    },
  };
}
export function healthService(): grpc.ServiceDefinition {
  return lookup(HEALTH_SERVICE_NAME).service;
}
/** Client constructors, for tests and benchmarks that play Envoy's part. */
export function extProcClientCtor(): grpc.ServiceClientConstructor {
  return lookup(EXT_PROC_SERVICE_NAME);
}
export function healthClientCtor(): grpc.ServiceClientConstructor {
  return lookup(HEALTH_SERVICE_NAME);
}

// ---- google.protobuf.Struct ----
// protobufjs's bundled well-known types name Value's members in camelCase even with keepCase.

export interface PbValue {
  kind?: string;
  nullValue?: number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: PbStruct;
  listValue?: { values?: PbValue[] };
}
export interface PbStruct {
  fields?: Record<string, PbValue>;
}

// ---- envoy.config.core.v3 ----

export interface HeaderValue {
  key: string;
  value?: string;
  raw_value?: Buffer | Uint8Array;
}
export interface HeaderMap {
  headers?: HeaderValue[];
}
export const APPEND_IF_EXISTS_OR_ADD = 0;
export const OVERWRITE_IF_EXISTS_OR_ADD = 2;
export interface HeaderValueOption {
  header: HeaderValue;
  /** Deprecated upstream in favour of append_action. */
  append?: { value?: boolean };
  append_action?: number;
  keep_empty_value?: boolean;
}
export interface Metadata {
  filter_metadata?: Record<string, PbStruct>;
}

// ---- envoy.service.ext_proc.v3 ----

export interface HttpHeaders {
  headers?: HeaderMap;
  end_of_stream?: boolean;
}
export interface HttpBody {
  body?: Buffer | Uint8Array;
  end_of_stream?: boolean;
  end_of_stream_without_message?: boolean;
  grpc_message_compressed?: boolean;
}
export interface HttpTrailers {
  trailers?: HeaderMap;
}
export type RequestKind = 'request_headers' | 'response_headers' | 'request_body' | 'response_body' | 'request_trailers' | 'response_trailers';

export interface ProcessingRequest {
  request?: RequestKind;
  request_headers?: HttpHeaders;
  response_headers?: HttpHeaders;
  request_body?: HttpBody;
  response_body?: HttpBody;
  request_trailers?: HttpTrailers;
  response_trailers?: HttpTrailers;
  metadata_context?: Metadata;
  attributes?: Record<string, PbStruct>;
  observability_mode?: boolean;
  protocol_config?: { request_body_mode?: number; response_body_mode?: number; send_body_without_waiting_for_header_response?: boolean };
}

export interface HeaderMutation {
  set_headers?: HeaderValueOption[];
  remove_headers?: string[];
}
export interface StreamedBodyResponse {
  body?: Buffer | Uint8Array;
  end_of_stream?: boolean;
}
export interface BodyMutation {
  mutation?: 'body' | 'clear_body' | 'streamed_response';
  body?: Buffer;
  clear_body?: boolean;
  streamed_response?: StreamedBodyResponse;
}
export interface CommonResponse {
  status?: number;
  header_mutation?: HeaderMutation;
  body_mutation?: BodyMutation;
  trailers?: HeaderMap;
  clear_route_cache?: boolean;
}
export interface HeadersResponse {
  response?: CommonResponse;
}
export interface BodyResponse {
  response?: CommonResponse;
}
export interface TrailersResponse {
  header_mutation?: HeaderMutation;
}
export interface ImmediateResponse {
  status: { code: number };
  headers?: HeaderMutation;
  body?: Buffer;
  grpc_status?: { status?: number };
  details?: string;
}
export type ResponseKind = 'request_headers' | 'response_headers' | 'request_body' | 'response_body' | 'request_trailers' | 'response_trailers' | 'immediate_response';

export interface ProcessingResponse {
  response?: ResponseKind;
  request_headers?: HeadersResponse;
  response_headers?: HeadersResponse;
  request_body?: BodyResponse;
  response_body?: BodyResponse;
  request_trailers?: TrailersResponse;
  response_trailers?: TrailersResponse;
  immediate_response?: ImmediateResponse;
  dynamic_metadata?: PbStruct;
  mode_override?: Partial<Record<'request_header_mode' | 'response_header_mode' | 'request_body_mode' | 'response_body_mode' | 'request_trailer_mode' | 'response_trailer_mode', number>>;
  /** google.protobuf.Duration; seconds is an int64 (a decimal string when decoded). */
  override_message_timeout?: { seconds?: number | string; nanos?: number };
}

// ---- helpers ----

/** A header's value: Envoy sends raw_value bytes; other clients may use value. */
export function headerText(h: HeaderValue): string {
  const raw = h.raw_value;
  if (raw && raw.length > 0) return Buffer.isBuffer(raw) ? raw.toString('utf8') : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8');
  return h.value ?? '';
}

/** Lower-cased header map keeping the first value of each name. */
export function headerRecord(map: HeaderMap | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of map?.headers ?? []) {
    const k = (h.key ?? '').toLowerCase();
    if (!(k in out)) out[k] = headerText(h);
  }
  return out;
}

export function setHeader(key: string, value: string, append = false): HeaderValueOption {
  return { header: { key, raw_value: Buffer.from(value, 'utf8') }, append_action: append ? APPEND_IF_EXISTS_OR_ADD : OVERWRITE_IF_EXISTS_OR_ADD };
}

/** A plain JSON value as a protobuf Value. */
export function toPbValue(v: unknown): PbValue {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toPbValue) } };
  return { structValue: toPbStruct(v as Record<string, unknown>) };
}
export function toPbStruct(obj: Record<string, unknown>): PbStruct {
  const fields: Record<string, PbValue> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = toPbValue(v);
  return { fields };
}
export function fromPbValue(v: PbValue | undefined): unknown {
  if (!v) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.numberValue !== undefined) return v.numberValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.structValue !== undefined) return fromPbStruct(v.structValue);
  if (v.listValue !== undefined) return (v.listValue.values ?? []).map(fromPbValue);
  return null;
}
export function fromPbStruct(s: PbStruct | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = fromPbValue(v);
  return out;
}
