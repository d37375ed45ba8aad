// A lean HTTP/1.1 server for the gateway's front: keep-alive, pipelining (answered in order),
// content-length and chunked request bodies, Expect: 100-continue, streamed (chunked) or
// whole answers. Requests reach the handler with their body already read (up to a limit), and
// an answer given whole leaves in one write. node:http's general machinery (a Readable per
// request, a Writable per response, several event-loop hops) cost about 0.1 ms per request on
// this machine's proxy hop; see bench/router.bench.ts.
//
// Request smuggling defences: a message with both transfer-encoding and content-length, an
// invalid or conflicting content-length, a transfer-coding other than chunked, obsolete
// line folding, or whitespace before a header's colon is refused with 400 (501 for an
// unknown coding) and the connection closed.
import { EventEmitter } from 'node:events';
import { STATUS_CODES } from 'node:http';
import { createServer as netCreateServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { withDefaults } from '../util/options.js';
import { ChunkedDecoder } from './chunked-decoder.js';

export interface Http1ServerOptions {
  /** Largest request head (request line and headers); 431 beyond. Default 16 KiB (node's). */
  maxHeaderBytes?: number;
  /** Largest request body; 413 beyond. Default 32 MiB. */
  maxBodyBytes?: number;
  /** From a request's first byte to its whole head; 408 beyond. Default 60 s. */
  headersTimeoutMs?: number;
  /** From a request's head to its whole body; 408 beyond. Default 5 min. */
  bodyTimeoutMs?: number;
  /** An idle kept-alive connection closes after this. Default 65 s. */
  keepAliveTimeoutMs?: number;
}

export type RequestListener = (req: ServerRequest, res: ServerReply) => void;

/** A request whose head and body have been read. */
export class ServerRequest {
  constructor(
    readonly method: string,
    /** The request target as sent (path and query). */
    readonly url: string,
    readonly httpVersion: '1.0' | '1.1',
    /** Lower-case names; repeated fields joined with ", " (cookie with "; "). */
    readonly headers: Record<string, string>,
    readonly body: Buffer,
    /** The body was over the server's limit and was not kept (`body` is empty): answer 413. */
    readonly bodyRefused: boolean,
  ) {}
}

const DEFAULTS: Required<Http1ServerOptions> = {
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 32 * 1024 * 1024,
  headersTimeoutMs: 60_000,
  bodyTimeoutMs: 300_000,
  keepAliveTimeoutMs: 65_000,
};

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field values may not hold CR, LF or NUL (response splitting). */
const BAD_VALUE = /[\r\n\0]/;
/** An answer's field values: visible latin1 and tabs only (node:http's rule); no CR/LF splitting. */
const BAD_REPLY_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const CRLF2 = Buffer.from('\r\n\r\n', 'latin1');
/** Control characters and spaces are not allowed in a request target. */
// eslint-disable-next-line no-control-regex
const BAD_TARGET = /[\x00-\x20\x7f]/;

let dateText = '';
let dateAt = 0;
/** The Date header, recomputed at most once a second. */
function httpDate(): string {
  const now = Date.now();
  if (now - dateAt >= 1000) {
    dateAt = now - (now % 1000);
    dateText = new Date(dateAt).toUTCString();
  }
  return dateText;
}

export type HeaderValue = string | number | readonly string[];

/** The answer to one request: node:http's ServerResponse shape, for the calls the gateway makes. */
export class ServerReply extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  /** end() was called and everything handed to the socket. */
  writableFinished = false;
  private headers: Record<string, HeaderValue> | null = null;
  private chunked = false;
  private ended = false;
  private closed = false;

  constructor(
    private readonly conn: Connection,
    /** HEAD, or (once the head is sent) a status that has no body: body bytes are not sent. */
    private noBody: boolean,
    /** Whether the connection stays open after this answer (sent as the connection header). */
    public keepAlive: boolean,
    /** An HTTP/1.0 request: no chunked coding, a streamed body ends with the connection. */
    private readonly http10 = false,
  ) {
    super();
  }

  get socket(): Socket {
    return this.conn.socket;
  }

  writeHead(status: number, headers?: Record<string, HeaderValue>): this {
    if (this.headersSent) throw new Error('headers already sent');
    this.statusCode = status;
    if (headers) this.headers = headers;
    return this;
  }

  /** Sends the head now (a stream's headers before its first chunk). */
  flushHeaders(): void {
    if (!this.headersSent) this.conn.socket.write(this.head(-1), 'latin1');
  }

  /** Writes a piece of the body; false when the socket's buffer is full (wait for 'drain'). */
  write(chunk: Buffer | string): boolean {
    if (this.ended || this.closed) return false;
    return this.put(this.headersSent ? '' : this.head(-1), toBuffer(chunk), false);
  }

  /** Ends the answer; a body given here with the head unsent leaves in one write. */
  end(chunk?: Buffer | string): this {
    if (this.ended || this.closed) return this;
    const data = chunk === undefined ? undefined : toBuffer(chunk);
    this.put(this.headersSent ? '' : this.head(data ? data.length : 0), data, true);
    this.ended = true;
    this.writableFinished = true;
    this.emit('finish');
    this.conn.replyEnded(this);
    return this;
  }

  /**
   * Writes `head` (may be empty), then `data` framed for this answer (a chunk when chunked; nothing
   * for HEAD and no-body statuses), then on the `last` write the chunked terminator: one cork.
   */
  private put(head: string, data: Buffer | undefined, last: boolean): boolean {
    const s = this.conn.socket;
    const body = !this.noBody && data && data.length > 0 ? data : undefined;
    let pre = head;
    let post = '';
    if (this.chunked) {
      if (body) {
        pre += body.length.toString(16) + '\r\n';
        post = '\r\n';
      }
      if (last) post += '0\r\n\r\n';
    }
    if (!body) return pre || post ? s.write(pre + post, 'latin1') : true;
    // A small answer with its head: one buffer, one syscall.
    if (pre && !post && body.length <= 16 * 1024) return s.write(Buffer.concat([Buffer.from(pre, 'latin1'), body]));
    if (!pre && !post) return s.write(body);
    s.cork();
    if (pre) s.write(pre, 'latin1');
    let ok = s.write(body);
    if (post) ok = s.write(post, 'latin1');
    s.uncork();
    return ok;
  }

  /** Drops the connection (an answer that cannot be completed). */
  destroy(): void {
    this.conn.socket.destroy();
  }

  /** The exchange is over (answer ended or connection lost): 'close', once. */
  markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }

  /** Serializes the head; `bodyLength` >= 0 when the whole body is known, -1 for a stream. */
  private head(bodyLength: number): string {
    const status = this.statusCode;
    let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    let hasLength = false;
    let hasDate = false;
    const h = this.headers;
    if (h) {
      for (const name in h) {
        const v = h[name];
        if (v === undefined) continue;
        const lower = name.toLowerCase();
        if (lower === 'connection' || lower === 'transfer-encoding' || lower === 'keep-alive') continue; // framing is ours
        if (lower === 'content-length') hasLength = true;
        else if (lower === 'date') hasDate = true;
        if (Array.isArray(v)) {
          for (const x of v) text += field(name, x);
        } else text += field(name, String(v));
      }
    }
    if (!hasDate) text += `date: ${httpDate()}\r\n`;
    const noContent = status === 204 || status === 304 || (status >= 100 && status < 200);
    const bodyless = this.noBody || noContent;
    // A HEAD answer states the length a GET would have (and keeps the connection reusable).
    if (this.noBody && !noContent && !hasLength && bodyLength >= 0) text += `content-length: ${bodyLength}\r\n`;
    // Body bytes given for a 204/304 would be read as the start of the next answer.
    if (bodyless) this.noBody = true;
    // A server closing, or a stream to an HTTP/1.0 client (which has no chunked coding), ends the connection.
    if (this.conn.server.closing) this.keepAlive = false;
    if (!hasLength && !bodyless) {
      if (bodyLength >= 0) text += `content-length: ${bodyLength}\r\n`;
      else if (this.http10) this.keepAlive = false;
      else this.chunked = true;
    }
    if (this.chunked) text += 'transfer-encoding: chunked\r\n';
    text += this.keepAlive ? 'connection: keep-alive\r\n' : 'connection: close\r\n';
    this.headersSent = true;
    return text + '\r\n';
  }
}

function toBuffer(chunk: Buffer | string): Buffer {
  return typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
}

function field(name: string, value: string): string {
  // A name is a token: one holding CR/LF would let a header (say, copied from upstream) split the head.
  if (!TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name.slice(0, 40))}`);
  if (BAD_REPLY_VALUE.test(value)) throw new TypeError(`invalid character in header ${name}`);
  return `${name}: ${value}\r\n`;
}

/** A request-level protocol error: answered with `status` and the connection closed. */
class ProtocolError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const enum Phase {
  /** Waiting for (more of) a request head. */
  Head,
  /** Reading a body by length. */
  Length,
  /** Reading a chunked body. */
  Chunked,
  /** The request is with the handler; later bytes wait (pipelining). */
  Busy,
  Closed,
}

type ConnTimer = 'idle' | 'head' | 'body' | '';

interface RequestHead {
  method: string;
  url: string;
  version: '1.0' | '1.1';
  headers: Record<string, string>;
  keepAlive: boolean;
}

/** One client connection: parses requests in order and hands them to the listener. */
class Connection {
  private phase = Phase.Head;
  private pending: Buffer | null = null;
  private head: RequestHead | null = null;
  private parts: Buffer[] = [];
  private bodyBytes = 0;
  private remaining = 0;
  private chunked: ChunkedDecoder | null = null;
  /** The body is over the limit: the request went to the listener, its body is being dropped. */
  private refused = false;
  /** The answer ended while a refused body was still being read. */
  private replyDone = false;
  reply: ServerReply | null = null;
  private timer: NodeJS.Timeout | null = null;
  private timerKind: ConnTimer = '';

  constructor(
    readonly server: Http1Server,
    readonly socket: Socket,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (buf: Buffer) => this.onData(buf));
    socket.on('error', () => {}); // 'close' follows; a reset client is not the server's error
    socket.on('close', () => this.onClose());
    socket.on('drain', () => this.reply?.emit('drain'));
    this.arm('head');
  }

  get idle(): boolean {
    return this.phase === Phase.Head && this.pending === null && this.reply === null;
  }

  private arm(kind: ConnTimer): void {
    if (this.timerKind === kind && this.timer) {
      this.timer.refresh();
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timerKind = kind;
    const o = this.server.options;
    const ms = kind === 'idle' ? o.keepAliveTimeoutMs : kind === 'head' ? o.headersTimeoutMs : kind === 'body' ? o.bodyTimeoutMs : 0;
    this.timer = ms > 0 ? setTimeout(() => this.onTimeout(kind), ms) : null;
    this.timer?.unref();
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerKind = '';
  }

  private onTimeout(kind: ConnTimer): void {
    this.timer = null;
    this.timerKind = '';
    if (kind === 'idle' || this.reply || this.replyDone) this.socket.destroy();
    else this.refuse(new ProtocolError(408, kind === 'head' ? 'request head not received in time' : 'request body not received in time'));
  }

  private onData(buf: Buffer): void {
    if (this.phase === Phase.Closed) return;
    if (this.phase === Phase.Busy) {
      // Pipelined bytes wait for the answer in progress; too many and we stop reading.
      this.pending = this.pending ? Buffer.concat([this.pending, buf]) : buf;
      if (this.pending.length > this.server.options.maxHeaderBytes * 4) this.socket.pause();
      return;
    }
    if (this.timerKind === 'idle') this.arm('head');
    const data = this.pending ? Buffer.concat([this.pending, buf]) : buf;
    this.pending = null;
    this.consume(data, 0);
  }

  /** Parses as much of `data` from `pos` as the current phase allows. */
  private consume(data: Buffer, pos: number): void {
    try {
      while (pos < data.length && this.phase !== Phase.Busy && this.phase !== Phase.Closed) {
        if (this.phase === Phase.Head) {
          const next = this.readHead(data, pos);
          if (next < 0) return;
          pos = next;
        } else if (this.phase === Phase.Length) {
          const n = Math.min(this.remaining, data.length - pos);
          if (!this.refused) this.parts.push(pos === 0 && n === data.length ? data : data.subarray(pos, pos + n));
          this.bodyBytes += n;
          this.remaining -= n;
          pos += n;
          if (this.remaining === 0) this.bodyComplete();
        } else {
          pos = this.chunked!.feed(data, pos, (piece) => this.chunkedPiece(piece));
          if (this.chunked!.done) this.bodyComplete();
        }
      }
    } catch (err) {
      this.refuse(err instanceof ProtocolError ? err : new ProtocolError(400, (err as Error).message));
      return;
    }
    if (pos < data.length && this.phase !== Phase.Closed) this.pending = pos === 0 ? data : data.subarray(pos);
  }

  private chunkedPiece(piece: Buffer): void {
    this.bodyBytes += piece.length;
    if (this.refused) return;
    if (this.bodyBytes > this.server.options.maxBodyBytes) {
      this.parts = [];
      this.dispatchRefused();
    } else this.parts.push(piece);
  }

  /** Reads one request head at `pos`; returns the position after it, or -1 when incomplete. */
  private readHead(data: Buffer, pos: number): number {
    // Empty lines before a request line are ignored (RFC 9112 section 2.2).
    while (pos + 1 < data.length && data[pos] === 13 && data[pos + 1] === 10) pos += 2;
    if (pos === data.length) return -1; // only empty lines: the connection is still idle
    const max = this.server.options.maxHeaderBytes;
    const at = data.indexOf(CRLF2, pos);
    if (at < 0) {
      if (data.length - pos > max) throw new ProtocolError(431, `request head exceeds ${max} bytes`);
      this.pending = pos === 0 ? data : data.subarray(pos);
      // A partial head behind a request answered at once: the head timer, not the idle one.
      if (this.timerKind !== 'head') this.arm('head');
      return -1;
    }
    if (at - pos > max) throw new ProtocolError(431, `request head exceeds ${max} bytes`);
    const head = parseRequestHead(data.toString('latin1', pos, at));
    this.head = head;
    this.parts = [];
    this.bodyBytes = 0;
    this.refused = false;
    this.replyDone = false;
    const { headers } = head;
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    const o = this.server.options;
    if (te !== undefined) {
      if (cl !== undefined) throw new ProtocolError(400, 'both transfer-encoding and content-length');
      if (head.version === '1.0') throw new ProtocolError(400, 'transfer-encoding in an HTTP/1.0 request');
      if (te.trim().toLowerCase() !== 'chunked') throw new ProtocolError(501, `transfer-coding ${JSON.stringify(te)} not supported`);
      this.chunked = new ChunkedDecoder();
      this.phase = Phase.Chunked;
      this.expectContinue(headers);
      this.arm('body');
    } else if (cl !== undefined) {
      const values = cl.split(',').map((v) => v.trim());
      if (!values.every((v) => /^\d{1,15}$/.test(v)) || values.some((v) => v !== values[0])) throw new ProtocolError(400, `invalid content-length ${JSON.stringify(cl)}`);
      const n = Number(values[0]);
      headers['content-length'] = values[0];
      this.remaining = n;
      if (n === 0) this.dispatch();
      else {
        this.phase = Phase.Length;
        if (n > o.maxBodyBytes && headers.expect !== undefined && head.version === '1.1') {
          // The client waits for 100 Continue before sending the body: it gets the 413 instead,
          // and the connection closes after it (the body it might still send is never read).
          head.keepAlive = false;
          this.phase = Phase.Busy;
          this.dispatchRefused();
        } else if (n > o.maxBodyBytes) {
          // Answered at once (413); the body is read and dropped so the answer is not lost to a reset.
          this.dispatchRefused();
          this.arm('body');
        } else if (data.length - (at + 4) < n) {
          this.expectContinue(headers);
          this.arm('body');
        }
      }
    } else this.dispatch();
    return at + 4;
  }

  /** A client waiting for "100 Continue" before its body gets it (417 for other expectations). */
  private expectContinue(headers: Record<string, string>): void {
    const expect = headers.expect;
    if (expect === undefined || this.head!.version !== '1.1') return;
    if (expect.toLowerCase() !== '100-continue') throw new ProtocolError(417, `expectation ${JSON.stringify(expect)} not supported`);
    this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
  }

  private bodyComplete(): void {
    this.chunked = null;
    if (!this.refused) {
      this.dispatch();
      return;
    }
    // A refused body is fully dropped: continue once the answer has ended too.
    if (this.replyDone) this.afterExchange();
    else {
      this.phase = Phase.Busy;
      this.disarm();
    }
  }

  /** A whole request: to the listener. */
  private dispatch(): void {
    const parts = this.parts;
    this.parts = [];
    const body = parts.length === 0 ? EMPTY : parts.length === 1 ? parts[0] : Buffer.concat(parts, this.bodyBytes);
    this.phase = Phase.Busy;
    this.chunked = null;
    this.disarm();
    this.handOver(body, false);
  }

  /** The body is over the limit: the listener gets the request now, flagged, without a body. */
  private dispatchRefused(): void {
    this.refused = true;
    this.handOver(EMPTY, true);
  }

  private handOver(body: Buffer, refused: boolean): void {
    const h = this.head!;
    const req = new ServerRequest(h.method, h.url, h.version, h.headers, body, refused);
    const reply = new ServerReply(this, h.method === 'HEAD', h.keepAlive && !this.server.closing, h.version === '1.0');
    this.reply = reply;
    try {
      this.server.listener(req, reply);
    } catch (err) {
      this.server.emit('handlerError', err);
      if (!reply.headersSent) reply.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'internal error', type: 'internal_error', param: null, code: 'internal' } }));
      else reply.destroy();
    }
  }

  /** The handler ended its answer. */
  replyEnded(reply: ServerReply): void {
    if (reply !== this.reply) return;
    this.reply = null;
    // The answer said connection: close (closing server, HTTP/1.0 stream): keep to it.
    if (!reply.keepAlive && this.head) this.head.keepAlive = false;
    reply.markClosed();
    if (this.phase === Phase.Length || this.phase === Phase.Chunked) {
      // A refused body is still arriving: carry on dropping it.
      this.replyDone = true;
      return;
    }
    this.afterExchange();
  }

  /** Request and answer are both done: next pipelined request, idle wait, or close. */
  private afterExchange(): void {
    const keepAlive = this.head?.keepAlive === true && !this.server.closing;
    this.head = null;
    this.refused = false;
    this.replyDone = false;
    if (!keepAlive) {
      this.phase = Phase.Closed;
      this.disarm();
      this.socket.end();
      return;
    }
    this.phase = Phase.Head;
    this.socket.resume();
    const pending = this.pending;
    this.pending = null;
    if (pending) {
      this.arm('head');
      this.consume(pending, 0);
    } else this.arm('idle');
  }

  /** Answers a protocol error with a JSON body and closes the connection. */
  private refuse(err: ProtocolError): void {
    if (this.phase === Phase.Closed) return;
    this.phase = Phase.Closed;
    this.pending = null;
    this.disarm();
    if (this.reply) {
      // An answer is in progress: it cannot be followed by another; just close.
      this.socket.destroy();
      return;
    }
    const type = err.status === 413 ? 'request_too_large_error' : 'invalid_request_error';
    const body = JSON.stringify({ error: { message: err.message, type, param: null, code: 'bad_http_request' } });
    this.socket.end(
      `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ndate: ${httpDate()}\r\nconnection: close\r\n\r\n${body}`,
      'latin1',
    );
    this.server.emit('clientError', err);
  }

  private onClose(): void {
    this.phase = Phase.Closed;
    this.disarm();
    this.server.forget(this);
    const reply = this.reply;
    this.reply = null;
    reply?.markClosed();
  }
}

/** Request line and header fields (without the final CRLFCRLF). Throws ProtocolError. */
function parseRequestHead(text: string): RequestHead {
  const eol = text.indexOf('\r\n');
  const requestLine = eol < 0 ? text : text.slice(0, eol);
  const sp1 = requestLine.indexOf(' ');
  const sp2 = requestLine.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || requestLine.indexOf(' ', sp2 + 1) >= 0) throw new ProtocolError(400, 'malformed request line');
  const method = requestLine.slice(0, sp1);
  const url = requestLine.slice(sp1 + 1, sp2);
  const proto = requestLine.slice(sp2 + 1);
  if (!TOKEN.test(method)) throw new ProtocolError(400, 'malformed request method');
  if (url.length === 0 || BAD_TARGET.test(url)) throw new ProtocolError(400, 'malformed request target');
  let version: '1.0' | '1.1';
  if (proto === 'HTTP/1.1') version = '1.1';
  else if (proto === 'HTTP/1.0') version = '1.0';
  else if (/^HTTP\/\d\.\d$/.test(proto)) throw new ProtocolError(505, `HTTP version ${proto.slice(5)} not supported`);
  else throw new ProtocolError(400, 'malformed request line');

  const headers: Record<string, string> = {};
  let i = eol < 0 ? text.length : eol + 2;
  while (i < text.length) {
    let next = text.indexOf('\r\n', i);
    if (next < 0) next = text.length;
    const c0 = text.charCodeAt(i);
    if (c0 === 32 || c0 === 9) throw new ProtocolError(400, 'obsolete line folding in request headers');
    const colon = text.indexOf(':', i);
    if (colon < 0 || colon > next) throw new ProtocolError(400, 'malformed header line');
    const rawName = text.slice(i, colon);
    if (!TOKEN.test(rawName)) throw new ProtocolError(400, `malformed header name ${JSON.stringify(rawName.slice(0, 40))}`);
    const name = rawName.toLowerCase();
    const value = text.slice(colon + 1, next).trim();
    if (BAD_VALUE.test(value)) throw new ProtocolError(400, `invalid character in header ${name}`);
    const prev = headers[name];
    headers[name] = prev === undefined ? value : `${prev}${name === 'cookie' ? '; ' : ', '}${value}`;
    i = next + 2;
  }
  const connection = headers.connection?.toLowerCase() ?? '';
  const keepAlive = version === '1.1' ? !/(^|,)\s*close\s*(,|$)/.test(connection) : /(^|,)\s*keep-alive\s*(,|$)/.test(connection);
  return { method, url, version, headers, keepAlive };
}

const EMPTY = Buffer.alloc(0);

/** The listening side: accepts connections and keeps track of them for closing. */
export class Http1Server extends EventEmitter {
  readonly options: Required<Http1ServerOptions>;
  private readonly net: NetServer;
  private readonly conns = new Set<Connection>();
  closing = false;

  constructor(
    readonly listener: RequestListener,
    options: Http1ServerOptions = {},
  ) {
    super();
    this.options = withDefaults(DEFAULTS, options);
    this.net = netCreateServer({ noDelay: true }, (socket) => this.conns.add(new Connection(this, socket)));
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.net.once('error', reject);
      this.net.listen(port, host, () => {
        this.net.off('error', reject);
        resolve(this.net.address() as AddressInfo);
      });
    });
  }

  address(): AddressInfo | null {
    return this.net.address() as AddressInfo | null;
  }

  /** Open connections. */
  get connections(): number {
    return this.conns.size;
  }

  forget(conn: Connection): void {
    this.conns.delete(conn);
  }

  /** Stops accepting; resolves once every connection has closed. Answers in progress end with `connection: close`. */
  close(): Promise<void> {
    this.closing = true;
    return new Promise((resolve) => this.net.close(() => resolve()));
  }

  closeIdleConnections(): void {
    for (const c of this.conns) if (c.idle) c.socket.destroy();
  }

  closeAllConnections(): void {
    for (const c of this.conns) c.socket.destroy();
  }
}
