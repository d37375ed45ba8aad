// A lean gRPC server for one bidirectional-streaming method, directly on node:http2 (h2c):
// the gRPC wire format is HTTP/2 with `content-type: application/grpc`, each message framed as
// [compressed flag (1 byte), length (4 bytes, big-endian), protobuf bytes], and the status in
// trailers (grpc-status, grpc-message). ext_proc opens one stream per HTTP request, so per-call
// cost matters; this skips grpc-js's per-call machinery (interceptors, filters, deadline timers).
// Compressed messages are refused (Envoy does not compress ext_proc messages).
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

/** The server side of one call: events 'data' (decoded), 'end', 'cancelled', 'error'. */
export interface DuplexCall<Req, Res> {
  on(event: 'data', listener: (msg: Req) => void): unknown;
  on(event: 'end' | 'cancelled', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  write(msg: Res): boolean;
  end(): void;
}

export interface BidiMethod<Req, Res> {
  /** `/package.Service/Method` */
  path: string;
  decode(buf: Buffer): Req;
  encode(msg: Res): Buffer;
  handler(call: DuplexCall<Req, Res>): void;
}

const GRPC_OK = 0;
const GRPC_INTERNAL = 13;
const GRPC_UNIMPLEMENTED = 12;

class H2Call<Req, Res> extends EventEmitter implements DuplexCall<Req, Res> {
  private pending: Buffer | null = null;
  private ended = false;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly method: BidiMethod<Req, Res>,
  ) {
    super();
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('end', () => this.emit('end'));
    stream.on('aborted', () => this.emit('cancelled'));
    stream.on('error', (err) => this.emit('error', err));
    stream.on('close', () => {
      if (!this.ended) this.emit('cancelled');
    });
  }

  private onData(chunk: Buffer): void {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      if (buf[0] !== 0) {
        this.fail(GRPC_INTERNAL, 'compressed messages are not supported');
        return;
      }
      const msg = buf.subarray(5, 5 + len);
      buf = buf.subarray(5 + len);
      let decoded: Req;
      try {
        decoded = this.method.decode(msg);
      } catch (err) {
        this.fail(GRPC_INTERNAL, `cannot decode the request message: ${(err as Error).message}`);
        return;
      }
      this.emit('data', decoded);
    }
    if (buf.length > 0) this.pending = Buffer.from(buf);
  }

  write(msg: Res): boolean {
    if (this.ended || this.stream.destroyed) return false;
    const body = this.method.encode(msg);
    const frame = Buffer.allocUnsafe(5 + body.length);
    frame[0] = 0;
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    return this.stream.write(frame);
  }

  end(): void {
    this.finish(GRPC_OK, '');
  }

  fail(code: number, message: string): void {
    this.finish(code, message);
    this.emit('error', new Error(message));
  }

  private finish(code: number, message: string): void {
    if (this.ended) return;
    this.ended = true;
    if (this.stream.destroyed || this.stream.closed) return;
    this.stream.once('wantTrailers', () => {
      const trailers: http2.OutgoingHttpHeaders = { 'grpc-status': String(code) };
      if (message) trailers['grpc-message'] = encodeURIComponent(message);
      this.stream.sendTrailers(trailers);
    });
    this.stream.end();
  }
}

export interface H2GrpcServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startH2GrpcServer<Req, Res>(host: string, port: number, method: BidiMethod<Req, Res>, logger: Logger): Promise<H2GrpcServer> {
  const server = http2.createServer({ settings: { maxConcurrentStreams: 10_000 } });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const ct = String(headers['content-type'] ?? '');
    if (headers[':path'] !== method.path || !ct.startsWith('application/grpc')) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(GRPC_UNIMPLEMENTED), 'grpc-message': encodeURIComponent(`unknown method ${String(headers[':path'])}`) }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto' }, { waitForTrailers: true });
    try {
      method.handler(new H2Call(stream, method));
    } catch (err) {
      logger.error({ err }, 'gRPC handler failed');
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.close();
        const t = setTimeout(() => {
          for (const s of sessions) s.destroy();
        }, 2000);
        server.close(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
}
