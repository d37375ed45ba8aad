// A keep-alive HTTP/1.1 connection pool to one upstream origin, made for the proxy hop: one
// request per connection at a time, the request head and body leave in one writev, the answer
// is handed to callbacks as views of the socket's reads, with backpressure and cancellation.
// Measured against undici's Pool on the same hop, it saves about 0.1 ms per upstream leg on
// this machine (bench/router.bench.ts shows the router against a node:http + undici hop).
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { withDefaults } from '../util/options.js';
import { ResponseParseError, ResponseParser, type ResponseHead, type ResponseSink } from './response-parser.js';

export type { ResponseHead } from './response-parser.js';

export interface Http1PoolOptions {
  /** Most connections open at once; more requests wait in FIFO order. */
  connections?: number;
  connectTimeoutMs?: number;
  /** From the request's last byte written to the response head (error code KVR_HEADERS_TIMEOUT). */
  headersTimeoutMs?: number;
  /** Longest silence between body bytes (error code KVR_BODY_TIMEOUT). */
  bodyTimeoutMs?: number;
  /** Idle connections close after this; kept below common servers' keep-alive (uvicorn: 5 s). */
  keepAliveTimeoutMs?: number;
  maxHeaderBytes?: number;
}

export interface UpstreamRequest {
  method: string;
  path: string;
  /** Header values must already be valid field values (no CR/LF); host is added. */
  headers: Record<string, string>;
  body?: Buffer;
}

export interface ResponseHandler {
  onResponseStart(head: ResponseHead): void;
  /** Return false to pause the upstream until `call.resume()`. */
  onData(chunk: Buffer): boolean | void;
  onComplete(): void;
  /** Once at most, instead of onComplete; never after abort(). */
  onError(err: UpstreamError): void;
}

export type UpstreamPhase = 'connect' | 'headers' | 'body';

export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly phase: UpstreamPhase,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UpstreamError';
  }
}

const DEFAULTS: Required<Http1PoolOptions> = {
  connections: 1024,
  connectTimeoutMs: 2_000,
  headersTimeoutMs: 600_000,
  bodyTimeoutMs: 600_000,
  keepAliveTimeoutMs: 4_000,
  maxHeaderBytes: 64 * 1024,
};

/** One request in flight or waiting for a connection. */
export class UpstreamCall {
  conn: Connection | null = null;
  done = false;
  /** The request went out on a reused connection (a stale one may be retried once). */
  reused = false;
  retried = false;
  paused = false;

  constructor(
    readonly pool: Http1Pool,
    readonly req: UpstreamRequest,
    readonly handler: ResponseHandler,
  ) {}

  /** Stops the call: the connection is destroyed (its state is unknown) and no callback follows. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    if (this.conn) this.conn.destroy();
    else this.pool.dequeue(this);
  }

  /** Reads from the upstream again after onData returned false. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.conn?.resumeReading();
  }

  fail(err: UpstreamError): void {
    if (this.done) return;
    this.done = true;
    this.conn = null;
    this.handler.onError(err);
  }
}

/** Reports a whole answer; an exception from the handler becomes its onError, never a crash. */
function complete(call: UpstreamCall): void {
  call.done = true;
  try {
    call.handler.onComplete();
  } catch (err) {
    try {
      call.handler.onError(new UpstreamError(`response handler failed: ${(err as Error).message}`, 'KVR_HANDLER', 'body', { cause: err }));
    } catch {
      // The handler is broken twice over; the connection is already settled.
    }
  }
}

type TimerKind = 'connect' | 'headers' | 'body' | 'idle';

/** One socket to the origin and the call it carries; it is the parser's sink. */
class Connection implements ResponseSink {
  readonly socket: Socket;
  private readonly parser: ResponseParser;
  call: UpstreamCall | null = null;
  private connected = false;
  /** Requests this socket has carried. */
  private uses = 0;
  private keepAlive = true;
  private headSeen = false;
  private completed = false;
  private timer: NodeJS.Timeout | null = null;
  private timerKind: TimerKind | '' = '';
  private idleMs: number;
  private destroyed = false;

  constructor(
    private readonly pool: Http1Pool,
    first: UpstreamCall,
  ) {
    const o = pool.options;
    this.idleMs = o.keepAliveTimeoutMs;
    this.socket = pool.tls
      ? tlsConnect({ host: pool.host, port: pool.port, servername: pool.servername, ALPNProtocols: ['http/1.1'] })
      : netConnect({ host: pool.host, port: pool.port, noDelay: true });
    this.socket.setNoDelay(true);
    this.parser = new ResponseParser(this, o.maxHeaderBytes);
    this.call = first;
    first.conn = this;
    this.arm(o.connectTimeoutMs, 'connect');
    this.socket.once(pool.tls ? 'secureConnect' : 'connect', () => {
      this.connected = true;
      this.clearTimer();
      if (this.call && !this.call.done) this.send(this.call);
    });
    this.socket.on('data', (buf: Buffer) => this.onData(buf));
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.onClose(err));
    this.socket.on('close', () => this.onClose());
  }

  send(call: UpstreamCall): void {
    this.call = call;
    call.conn = this;
    call.reused = this.uses > 0;
    this.uses++;
    this.headSeen = false;
    this.completed = false;
    this.parser.expect(call.req.method === 'HEAD');
    const { req } = call;
    let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${this.pool.hostHeader}\r\n`;
    for (const k in req.headers) head += `${k}: ${req.headers[k]}\r\n`;
    head += '\r\n';
    const s = this.socket;
    if (req.body && req.body.length > 0) {
      // One writev for head and body.
      s.cork();
      s.write(head, 'latin1');
      s.write(req.body);
      s.uncork();
    } else s.write(head, 'latin1');
    this.arm(this.pool.options.headersTimeoutMs, 'headers');
  }

  // ---- parser sink ----
  onHead(head: ResponseHead): void {
    this.headSeen = true;
    this.keepAlive = head.keepAlive;
    if (head.keepAliveTimeoutS !== undefined) {
      // Leave a second's margin before the server's own idle close.
      this.idleMs = Math.min(this.pool.options.keepAliveTimeoutMs, head.keepAliveTimeoutS * 1000 - 1000);
    }
    this.arm(this.pool.options.bodyTimeoutMs, 'body');
    const call = this.call;
    if (call && !call.done) call.handler.onResponseStart(head);
  }

  onBody(chunk: Buffer): void {
    const call = this.call;
    if (!call || call.done) return;
    if (this.timerKind === 'body') this.timer?.refresh();
    if (call.handler.onData(chunk) === false && !call.done && !this.destroyed) {
      call.paused = true;
      // A client that reads slowly is not a silent upstream: no body timeout while paused.
      this.clearTimer();
      this.socket.pause();
    }
  }

  onComplete(): void {
    this.completed = true;
  }

  resumeReading(): void {
    if (this.destroyed) return;
    this.arm(this.pool.options.bodyTimeoutMs, 'body');
    this.socket.resume();
  }

  private arm(ms: number, kind: TimerKind): void {
    if (this.timer) clearTimeout(this.timer);
    this.timerKind = kind;
    this.timer = ms > 0 && Number.isFinite(ms) ? setTimeout(() => this.onTimeout(kind, ms), ms) : null;
    this.timer?.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerKind = '';
  }

  private onTimeout(kind: TimerKind, ms: number): void {
    this.timer = null;
    const call = this.call;
    this.call = null;
    this.destroy();
    if (!call) return;
    const origin = this.pool.hostHeader;
    if (kind === 'connect') call.fail(new UpstreamError(`connect to ${origin} timed out after ${ms} ms`, 'KVR_CONNECT_TIMEOUT', 'connect'));
    else if (kind === 'headers') call.fail(new UpstreamError(`no response head from ${origin} within ${ms} ms`, 'KVR_HEADERS_TIMEOUT', 'headers'));
    else call.fail(new UpstreamError(`response body from ${origin} silent for ${ms} ms`, 'KVR_BODY_TIMEOUT', 'body'));
  }

  private onData(buf: Buffer): void {
    const call = this.call;
    if (!call) {
      // Bytes on an idle connection: the server is out of step with us; drop the connection.
      this.destroy();
      return;
    }
    let used: number;
    try {
      used = this.parser.execute(buf);
    } catch (err) {
      this.call = null;
      this.destroy();
      const phase = this.headSeen ? 'body' : 'headers';
      // The parser calls the handler: its exception lands here too, and must not escape the socket.
      if (err instanceof ResponseParseError) call.fail(new UpstreamError(`malformed response from ${this.pool.hostHeader}: ${err.message}`, 'KVR_UPSTREAM_PARSE', phase, { cause: err }));
      else call.fail(new UpstreamError(`response handler failed: ${(err as Error).message}`, 'KVR_HANDLER', phase, { cause: err }));
      return;
    }
    if (!this.completed) return;
    // The response is whole: free the connection first (a waiting call may take it), then report.
    this.call = null;
    call.conn = null;
    if (call.paused) {
      // Paused on the answer's last bytes: the call can no longer resume this socket, and the
      // next request on it must be read.
      call.paused = false;
      this.socket.resume();
    }
    if (used < buf.length || !this.keepAlive || this.idleMs <= 0 || this.destroyed) {
      // Bytes past the response would desynchronise the next one: never reuse such a socket.
      this.destroy();
    } else {
      this.arm(this.idleMs, 'idle');
      this.pool.connectionFree(this);
    }
    if (!call.done) complete(call);
  }

  private onClose(err?: NodeJS.ErrnoException): void {
    const call = this.call;
    this.call = null;
    if (!this.destroyed) {
      this.destroyed = true;
      this.clearTimer();
      this.socket.destroy();
    }
    this.pool.connectionGone(this);
    if (!call || call.done) return;
    // An until-close body ends with the connection.
    if (!err && this.parser.finishOnClose()) {
      call.conn = null;
      complete(call);
      return;
    }
    const origin = this.pool.hostHeader;
    if (!this.connected) {
      call.fail(new UpstreamError(`connect to ${origin} failed: ${err?.message ?? 'connection closed'}`, err?.code ?? 'ECONNREFUSED', 'connect', { cause: err }));
      return;
    }
    const started = this.parser.started;
    if (!started && call.reused && !call.retried) {
      // The server closed a kept-alive connection as we wrote to it: it never read the request.
      call.retried = true;
      call.conn = null;
      this.pool.dispatchFresh(call);
      return;
    }
    const why = err?.message ?? 'connection closed';
    call.fail(
      new UpstreamError(
        `${origin} ${started ? 'ended the response early' : 'closed the connection before answering'}: ${why}`,
        err?.code ?? 'KVR_UPSTREAM_CLOSED',
        this.headSeen ? 'body' : 'headers',
        { cause: err },
      ),
    );
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.clearTimer();
    this.socket.destroy();
  }
}

export class Http1Pool {
  readonly options: Required<Http1PoolOptions>;
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly servername: string | undefined;
  readonly hostHeader: string;
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();
  private readonly queue: UpstreamCall[] = [];
  private closed = false;

  /** `origin`: http(s)://host:port (IPv6 hosts in brackets). */
  constructor(origin: string, options: Http1PoolOptions = {}) {
    this.options = withDefaults(DEFAULTS, options);
    const u = new URL(origin);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`unsupported upstream protocol ${u.protocol} in ${origin}`);
    this.tls = u.protocol === 'https:';
    this.host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    this.port = Number(u.port || (this.tls ? 443 : 80));
    this.servername = this.tls && !/^[\d.]+$|:/.test(this.host) ? this.host : undefined;
    this.hostHeader = u.host;
  }

  /** Open connections (busy and idle). */
  get size(): number {
    return this.all.size;
  }

  get idleCount(): number {
    return this.idle.length;
  }

  request(req: UpstreamRequest, handler: ResponseHandler): UpstreamCall {
    const call = new UpstreamCall(this, req, handler);
    if (this.closed) {
      queueMicrotask(() => call.fail(Http1Pool.closedError()));
      return call;
    }
    // Most recently used first: it is the least likely to have been closed by the server.
    const conn = this.idle.pop();
    if (conn) conn.send(call);
    else if (this.all.size < this.options.connections) this.open(call);
    else this.queue.push(call);
    return call;
  }

  /**
   * A whole answer as text (control-plane requests: /metrics, /v1/models), within `timeoutMs`
   * for the whole exchange. Rejects with an UpstreamError on failure, on timeout (the call is
   * aborted) or when the body exceeds `maxBytes`.
   */
  text(req: UpstreamRequest, timeoutMs: number, maxBytes = 16 * 1024 * 1024): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      let size = 0;
      let status = 0;
      let phase: UpstreamPhase = 'headers';
      const fail = (err: UpstreamError) => {
        clearTimeout(timer);
        call.abort();
        reject(err);
      };
      const call = this.request(req, {
        onResponseStart: (head) => {
          status = head.status;
          phase = 'body';
        },
        onData: (chunk) => {
          size += chunk.length;
          if (size > maxBytes) fail(new UpstreamError(`answer from ${this.hostHeader}${req.path} exceeds ${maxBytes} bytes`, 'KVR_BODY_TOO_LARGE', 'body'));
          else parts.push(chunk);
        },
        onComplete: () => {
          clearTimeout(timer);
          resolve({ status, text: (parts.length === 1 ? parts[0] : Buffer.concat(parts, size)).toString('utf8') });
        },
        onError: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      const timer = setTimeout(() => fail(new UpstreamError(`${req.method} ${this.hostHeader}${req.path} took over ${timeoutMs} ms`, 'KVR_TIMEOUT', phase)), timeoutMs);
    });
  }

  private static closedError(): UpstreamError {
    return new UpstreamError('upstream pool is closed', 'KVR_POOL_CLOSED', 'connect');
  }

  /** Retries a call on a new connection (its reused one turned out to be closed). */
  dispatchFresh(call: UpstreamCall): void {
    if (this.closed) call.fail(Http1Pool.closedError());
    else if (this.all.size < this.options.connections) this.open(call);
    // The dead connection's slot already went to a waiting call: go first in line.
    else this.queue.unshift(call);
  }

  dequeue(call: UpstreamCall): void {
    const i = this.queue.indexOf(call);
    if (i >= 0) this.queue.splice(i, 1);
  }

  private open(call: UpstreamCall): void {
    this.all.add(new Connection(this, call));
  }

  connectionFree(conn: Connection): void {
    if (this.closed) {
      conn.destroy();
      return;
    }
    const next = this.queue.shift();
    if (next) conn.send(next);
    else this.idle.push(conn);
  }

  connectionGone(conn: Connection): void {
    if (!this.all.delete(conn)) return;
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    // A slot opened: a waiting call may connect now.
    const next = !this.closed && this.all.size < this.options.connections ? this.queue.shift() : undefined;
    if (next) this.open(next);
  }

  /** Closes idle connections now and every other one as its call ends; fails waiting calls. */
  close(): void {
    this.closed = true;
    for (const call of this.queue.splice(0)) call.fail(Http1Pool.closedError());
    for (const c of this.idle.splice(0)) c.destroy();
  }

  /** Closes everything, calls in flight included (they get no further callbacks). */
  destroy(): void {
    this.close();
    for (const c of [...this.all]) {
      const call = c.call;
      if (call) call.abort();
      c.destroy();
    }
    this.all.clear();
  }
}
