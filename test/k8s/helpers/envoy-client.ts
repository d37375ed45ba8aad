// Plays Envoy's ext_proc filter in FULL_DUPLEX_STREAMED mode over real gRPC: sends request
// headers, a body in several chunks, response headers and body, and collects the picker's
// answers. One ExtProcExchange per HTTP request, as Envoy opens one stream per request.
import * as grpc from '@grpc/grpc-js';
import { extProcClientCtor, headerText, toPbStruct, type HeaderValueOption, type ProcessingRequest, type ProcessingResponse } from '../../../src/k8s/proto.js';

export function extProcClient(port: number): grpc.Client {
  const Ctor = extProcClientCtor();
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

export class ExtProcExchange {
  readonly responses: ProcessingResponse[] = [];
  private readonly call: grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;
  private waiters: Array<() => void> = [];
  ended = false;
  error: grpc.ServiceError | undefined;

  constructor(client: grpc.Client) {
    const method = (client as unknown as { Process: () => grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse> }).Process;
    this.call = method.call(client);
    this.call.on('data', (r: ProcessingResponse) => {
      this.responses.push(r);
      this.wake();
    });
    this.call.on('end', () => {
      this.ended = true;
      this.wake();
    });
    this.call.on('error', (e: grpc.ServiceError) => {
      this.error = e;
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(msg: ProcessingRequest): void {
    this.call.write(msg);
  }

  requestHeaders(headers: Record<string, string>, endOfStream = false, subset?: string[] | string): void {
    const msg: ProcessingRequest = {
      request_headers: {
        headers: { headers: Object.entries(headers).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) },
        end_of_stream: endOfStream,
      },
    };
    if (subset !== undefined) {
      msg.metadata_context = { filter_metadata: { 'envoy.lb.subset_hint': toPbStruct({ 'x-gateway-destination-endpoint-subset': subset }) } };
    }
    this.send(msg);
  }

  /** The body in `parts` chunks, end_of_stream on the last. */
  requestBody(body: Buffer | string, parts = 3): void {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const size = Math.max(1, Math.ceil(buf.length / parts));
    for (let off = 0, i = 0; i < parts; i++, off += size) {
      this.send({ request_body: { body: buf.subarray(off, Math.min(off + size, buf.length)), end_of_stream: i === parts - 1 } });
    }
  }

  responseHeaders(headers: Record<string, string>, served?: string, endOfStream = false): void {
    const msg: ProcessingRequest = {
      response_headers: { headers: { headers: Object.entries(headers).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) }, end_of_stream: endOfStream },
    };
    if (served) msg.metadata_context = { filter_metadata: { 'envoy.lb': toPbStruct({ 'x-gateway-destination-endpoint-served': served }) } };
    this.send(msg);
  }

  responseBody(chunk: Buffer | string, endOfStream: boolean): void {
    this.send({ response_body: { body: Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk), end_of_stream: endOfStream } });
  }

  end(): void {
    this.call.end();
  }

  cancel(): void {
    this.call.cancel();
  }

  /** Waits until `pred` holds over the responses so far (or the stream ends). */
  async waitFor(pred: (r: ProcessingResponse[]) => boolean, timeoutMs = 5000): Promise<ProcessingResponse[]> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.responses)) {
      if (this.ended) throw new Error(`stream ended before the condition held (${this.responses.length} responses${this.error ? `, ${this.error.message}` : ''})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ext-proc responses (${this.responses.length} so far)`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.responses;
  }

  /** Waits for the routing answer: the request HeadersResponse and every body chunk up to EoS. */
  async routed(timeoutMs = 5000): Promise<RoutingAnswer> {
    await this.waitFor((rs) => rs.some((r) => r.immediate_response) || rs.some((r) => r.request_body?.response?.body_mutation?.streamed_response?.end_of_stream), timeoutMs);
    return routingAnswer(this.responses);
  }
}

export interface RoutingAnswer {
  immediate?: { status: number; body: string; details?: string; headers: Record<string, string> };
  headers: Record<string, string>;
  removed: string[];
  clearRouteCache: boolean;
  metadataDestination?: string;
  body: Buffer;
  chunkSizes: number[];
}

function mutationRecord(set: HeaderValueOption[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const o of set ?? []) out[o.header.key] = headerText(o.header);
  return out;
}

export function routingAnswer(rs: ProcessingResponse[]): RoutingAnswer {
  const ans: RoutingAnswer = { headers: {}, removed: [], clearRouteCache: false, body: Buffer.alloc(0), chunkSizes: [] };
  const bodies: Buffer[] = [];
  for (const r of rs) {
    if (r.immediate_response) {
      const ir = r.immediate_response;
      ans.immediate = { status: ir.status.code, body: Buffer.from(ir.body ?? []).toString('utf8'), details: ir.details, headers: mutationRecord(ir.headers?.set_headers) };
    }
    const hr = r.request_headers?.response;
    if (hr) {
      ans.headers = mutationRecord(hr.header_mutation?.set_headers);
      ans.removed = hr.header_mutation?.remove_headers ?? [];
      ans.clearRouteCache = hr.clear_route_cache === true;
      const lb = r.dynamic_metadata?.fields?.['envoy.lb']?.structValue?.fields?.['x-gateway-destination-endpoint'];
      ans.metadataDestination = lb?.stringValue;
    }
    const sb = r.request_body?.response?.body_mutation?.streamed_response;
    if (sb) {
      const b = Buffer.from(sb.body ?? []);
      bodies.push(b);
      ans.chunkSizes.push(b.length);
    }
  }
  ans.body = Buffer.concat(bodies);
  return ans;
}
