// A lean gRPC server for one bidirectional-streaming method, directly on node:http2 (h2c):
// the gRPC wire format is HTTP/2 with `content-type: application/grpc`, each message framed as
// [compressed flag (1 byte), length (4 bytes, big-endian), protobuf bytes], and the status in
// trailers (grpc-status, grpc-message). ext_proc opens one stream per HTTP request, so per-call
// cost matters; this skips grpc-js's per-call machinery (interceptors, filters, deadline timers).
// Compressed messages are refused (Envoy does not compress ext_proc messages).
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
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
  /** Several messages, each with gRPC's 5-byte prefix, in one buffer (else built from encode). */
  encodeFrames?(msgs: readonly Res[]): Buffer;
  handler(call: DuplexCall<Req, Res>): void;
}

const GRPC_OK = 0;
const GRPC_RESOURCE_EXHAUSTED = 8;
const GRPC_INTERNAL = 13;
const GRPC_UNIMPLEMENTED = 12;
const STREAM_WINDOW = 1 << 20;
const CONNECTION_WINDOW = 16 << 20;
/** Largest request message accepted (grpc-js's server takes 4 MiB by default; bodies come in chunks). */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

type Listeners<Req> = { data: Array<(msg: Req) => void>; end: Array<() => void>; cancelled: Array<() => void>; error: Array<(err: Error) => void> };

/** One call. Listeners are plain arrays (an EventEmitter per call costs more than it gives). */
class H2Call<Req, Res> implements DuplexCall<Req, Res> {
  private readonly listeners: Listeners<Req> = { data: [], end: [], cancelled: [], error: [] };
  /** An incomplete message: its pieces so far, and how many bytes it needs in all. */
  private parts: Buffer[] = [];
  private partBytes = 0;
  private need = 5;
  /** Messages written in this turn of the event loop, sent together as one DATA write. */
  private outbox: Res[] = [];
  private ended = false;
  private readonly flushNow = () => this.flush();

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly method: BidiMethod<Req, Res>,
  ) {
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('end', () => this.emitEnd('end'));
    stream.on('error', (err) => this.emitError(err));
    // 'close' also covers a reset by the peer ('aborted').
    stream.on('close', () => {
      if (!this.ended) this.emitEnd('cancelled');
    });
  }

  on(event: 'data', listener: (msg: Req) => void): this;
  on(event: 'end' | 'cancelled', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: keyof Listeners<Req>, listener: (arg: never) => void): this {
    (this.listeners[event] as Array<(arg: never) => void>).push(listener);
    return this;
  }

  private emitEnd(event: 'end' | 'cancelled'): void {
    for (const f of this.listeners[event]) f();
  }

  private emitError(err: Error): void {
    for (const f of this.listeners.error) f(err);
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    if (this.partBytes > 0) {
      // Join the pieces only once the message (or its prefix) is complete: linear in its size.
      this.parts.push(chunk);
      this.partBytes += chunk.length;
      if (this.partBytes < this.need) return;
      chunk = Buffer.concat(this.parts, this.partBytes);
      this.parts = [];
      this.partBytes = 0;
    }
    let off = 0;
    while (chunk.length - off >= 5) {
      const len = chunk.readUInt32BE(off + 1);
      if (len > MAX_MESSAGE_BYTES) {
        this.fail(GRPC_RESOURCE_EXHAUSTED, `request message of ${len} bytes exceeds the limit of ${MAX_MESSAGE_BYTES}`);
        return;
      }
      if (chunk.length - off < 5 + len) break;
      if (chunk[off] !== 0) {
        this.fail(GRPC_INTERNAL, 'compressed messages are not supported');
        return;
      }
      let decoded: Req;
      try {
        decoded = this.method.decode(chunk.subarray(off + 5, off + 5 + len));
      } catch (err) {
        this.fail(GRPC_INTERNAL, `cannot decode the request message: ${(err as Error).message}`);
        return;
      }
      off += 5 + len;
      for (const f of this.listeners.data) f(decoded);
      if (this.ended) return;
    }
    if (off < chunk.length) {
      const rest = off === 0 ? chunk : chunk.subarray(off);
      this.parts.push(rest);
      this.partBytes = rest.length;
      this.need = rest.length >= 5 ? 5 + rest.readUInt32BE(1) : 5;
    }
  }

  write(msg: Res): boolean {
    if (this.ended || this.stream.destroyed) return false;
    // Flushed once the current turn's synchronous work (and its microtasks) is done.
    if (this.outbox.length === 0) process.nextTick(this.flushNow);
    this.outbox.push(msg);
    return true;
  }

  private frames(msgs: readonly Res[]): Buffer {
    if (this.method.encodeFrames) return this.method.encodeFrames(msgs);
    const parts: Buffer[] = [];
    for (const m of msgs) {
      const body = this.method.encode(m);
      const head = Buffer.allocUnsafe(5);
      head[0] = 0;
      head.writeUInt32BE(body.length, 1);
      parts.push(head, body);
    }
    return Buffer.concat(parts);
  }

  /**
   * Response headers go out with the first message (or the trailers), not when the stream opens:
   * one socket write and one wake-up of the proxy instead of two.
   */
  private respond(): void {
    if (this.stream.headersSent) return;
    this.stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto' }, { waitForTrailers: true });
  }

  private flush(): void {
    if (this.outbox.length === 0 || this.stream.destroyed) return;
    const data = this.frames(this.outbox);
    this.outbox = [];
    this.respond();
    this.stream.write(data);
  }

  end(): void {
    this.finish(GRPC_OK, '');
  }

  fail(code: number, message: string): void {
    this.outbox = [];
    this.finish(code, message);
    this.emitError(new Error(message));
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
    this.respond();
    // The last messages and the end of the stream in one write.
    if (this.outbox.length > 0) {
      const data = this.frames(this.outbox);
      this.outbox = [];
      this.stream.end(data);
    } else this.stream.end();
  }
}

export interface H2GrpcServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startH2GrpcServer<Req, Res>(host: string, port: number, method: BidiMethod<Req, Res>, logger: Logger): Promise<H2GrpcServer> {
  // Windows: a long prompt (hundreds of KiB) arrives without waiting for WINDOW_UPDATEs; data is
  // consumed as it arrives (flowing mode), so the window does not bound memory here anyway.
  const server = http2.createServer({ settings: { maxConcurrentStreams: 10_000, initialWindowSize: STREAM_WINDOW } });
  const sessions = new Set<http2.ServerHttp2Session>();
  // Small frames both ways, each answering the peer's: no Nagle delay (Envoy sets TCP_NODELAY too).
  server.on('connection', (socket: Socket) => socket.setNoDelay(true));
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.setLocalWindowSize(CONNECTION_WINDOW);
  });
  server.on('stream', (stream, headers) => {
    const ct = String(headers['content-type'] ?? '');
    if (headers[':path'] !== method.path || !ct.startsWith('application/grpc')) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(GRPC_UNIMPLEMENTED), 'grpc-message': encodeURIComponent(`unknown method ${String(headers[':path'])}`) }, { endStream: true });
      return;
    }
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
