// The gateway's node:http server with the edge's limits applied: head size (431), whole-request
// and head timeouts (408), keep-alive timeout, a connection cap, bounded bodies (413), malformed
// requests answered with an OpenAI-style JSON error (llhttp refuses the smuggling shapes), a
// bound on what a pipelining client that never reads can make us buffer, and half-closed clients
// still answered.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { GatewayError } from './errors.js';
import { INLINE_JSON_BYTES } from './json-body.js';
import type { HttpEdgeLimits } from './limits.js';

/**
 * Pending response bytes on one client socket beyond which we stop reading its requests until it
 * drains. node:http pauses on its own past the socket's high-water mark, but only after parsing
 * everything already read; this keeps the bound explicit whatever node does.
 */
export const PIPELINE_WRITE_LIMIT = 1024 * 1024;

/**
 * Requests handled at once on one connection. llhttp hands node every request of a read chunk
 * (64 KiB: ~1,700 pipelined GETs) in one go; past this many unanswered ones, the rest wait
 * parsed but unhandled and the socket is not read, so one pipelining client costs a bounded
 * amount of work per answer it lets us write, and other connections are served in between.
 */
export const MAX_PIPELINED = 8;

/** Requests seen on a client socket. */
const SERVED = Symbol('kvrouter.requestsServed');
/** Per-connection pipelining state: requests being handled, and parsed ones waiting their turn. */
const PIPE = Symbol('kvrouter.pipeline');

interface Pipeline {
  active: number;
  waiting: [IncomingMessage, ServerResponse][];
}

// node:http's own read switch (node 20, lib/_http_server.js): `_paused` stops IncomingMessage
// reads and the parser from resuming the socket behind our back (every answered request
// otherwise resumes it), and the parser is paused with the socket.
type EdgeSocket = Socket & { [SERVED]?: number; [PIPE]?: Pipeline; _paused?: boolean; parser?: { pause(): void; resume(): void } | null };

function stopReading(socket: EdgeSocket): void {
  socket._paused = true;
  socket.pause();
}

function startReading(socket: EdgeSocket): void {
  socket._paused = false;
  socket.parser?.resume();
  socket.resume();
}

/** Requests handled; pipelined ones that had to wait for earlier answers, in all and now (diagnostics and tests). */
export const pipelineStats = { handled: 0, deferred: 0, waiting: 0 };

export type EdgeLimits = Pick<HttpEdgeLimits, 'maxHeaderBytes' | 'maxBodyBytes' | 'maxConnections' | 'maxRequestsPerConnection' | 'headersTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs'>;

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 413: 'Content Too Large', 431: 'Request Header Fields Too Large' };

/** The answer to a request llhttp refused (or that timed out), written on the raw socket. */
function refusal(err: Error & { code?: string }): GatewayError {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new GatewayError(431, 'request head too large', 'request_too_large_error', 'header_too_large');
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new GatewayError(413, 'chunk extensions too large', 'request_too_large_error', 'chunk_extensions_too_large');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new GatewayError(408, 'the request was not received in time', 'invalid_request_error', 'request_timeout');
    default:
      return new GatewayError(400, `malformed HTTP request (${err.code ?? 'parse error'})`, 'invalid_request_error', 'malformed_request');
  }
}

export function writeRefusal(socket: Socket, ge: GatewayError): void {
  const body = JSON.stringify(ge.body());
  socket.end(
    `HTTP/1.1 ${ge.status} ${STATUS_TEXT[ge.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `connection: close\r\ndate: ${new Date().toUTCString()}\r\n\r\n${body}`,
  );
}

export function createEdgeServer(limits: EdgeLimits, handler: (req: IncomingMessage, res: ServerResponse) => void, onClientError?: (err: Error) => void): Server {
  const server = createServer(
    {
      keepAlive: true,
      noDelay: true,
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // How often node checks the head/request timeouts (default 30 s, coarser than the timeouts).
      connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(Math.min(limits.headersTimeoutMs || 1000, limits.requestTimeoutMs || 1000) / 4))),
      // Expect: 100-continue is answered in 'checkContinue' below (no 100 for a body we would refuse).
    },
    (req, res) => {
      const socket = req.socket as EdgeSocket;
      // Requests per connection: the last one is answered with `connection: close` (node closes
      // the socket once it is written); what a client pipelines past it is never answered and
      // the socket is no longer read (node:http's maxRequestsPerSocket answers each with a 503,
      // which a pipeliner turns into unbounded work).
      if (limits.maxRequestsPerConnection > 0) {
        const n = (socket[SERVED] = (socket[SERVED] ?? 0) + 1);
        if (n > limits.maxRequestsPerConnection) {
          stopReading(socket);
          return;
        }
        if (n === limits.maxRequestsPerConnection) res.shouldKeepAlive = false;
      }
      const mayRead = () => limits.maxRequestsPerConnection <= 0 || (socket[SERVED] ?? 0) < limits.maxRequestsPerConnection;
      // Never-reading pipeliner: stop reading this socket until its answers drain.
      if (socket.writableLength > PIPELINE_WRITE_LIMIT && !socket.isPaused()) {
        stopReading(socket);
        socket.once('drain', () => {
          if (mayRead() && !socket[PIPE]?.waiting.length) startReading(socket);
        });
      }
      let pipe = socket[PIPE];
      if (!pipe) {
        const p: Pipeline = (pipe = socket[PIPE] = { active: 0, waiting: [] });
        socket.once('close', () => {
          pipelineStats.waiting -= p.waiting.length;
          p.waiting.length = 0;
        });
        // node:http's own drain handler resumes a socket it did not pause: not while requests wait
        socket.on('drain', () => {
          if (p.waiting.length) stopReading(socket);
        });
      }
      if (pipe.active >= MAX_PIPELINED) {
        // Wait for an earlier answer on this connection; read no more of it meanwhile.
        pipe.waiting.push([req, res]);
        pipelineStats.deferred++;
        pipelineStats.waiting++;
        stopReading(socket);
        return;
      }
      handlePiped(socket, pipe, req, res, mayRead);
    },
  );
  // Paused pipelining sockets are read again one per loop turn: each read hands node a whole
  // chunk of requests to parse at once (~1,700 GETs in 64 KiB), so resuming several in one turn
  // would hold the loop for all their chunks.
  const resumeQueue: EdgeSocket[] = [];
  const resumeNext = (): void => {
    const socket = resumeQueue.shift();
    if (socket && !socket.destroyed && socket.isPaused()) startReading(socket);
    if (resumeQueue.length) setImmediate(resumeNext);
  };
  const resumeLater = (socket: EdgeSocket): void => {
    if (resumeQueue.push(socket) === 1) setImmediate(resumeNext);
  };
  /** Runs one request; its answer (or the connection's end) lets the next waiting one run. */
  const handlePiped = (socket: EdgeSocket, pipe: Pipeline, req: IncomingMessage, res: ServerResponse, mayRead: () => boolean): void => {
    pipe.active++;
    pipelineStats.handled++;
    let done = false;
    const onDone = () => {
      if (done) return;
      done = true;
      pipe.active--;
      if (socket.destroyed) return;
      const next = pipe.waiting.shift();
      if (next) pipelineStats.waiting--;
      // The next pipelined request runs in the next loop turn, not in this answer's callbacks:
      // answers that complete at once would otherwise run the whole backlog in one turn.
      // node:http resumes a paused socket as queued answers flush: keep it paused meanwhile.
      if (next) {
        stopReading(socket);
        setImmediate(() => (socket.destroyed ? undefined : handlePiped(socket, pipe, next[0], next[1], mayRead)));
      } else if (socket.isPaused() && socket.writableLength <= PIPELINE_WRITE_LIMIT && mayRead()) resumeLater(socket);
    };
    res.once('finish', onDone);
    res.once('close', onDone);
    handler(req, res);
    if (pipe.waiting.length && !socket.destroyed) stopReading(socket);
  };
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  if (limits.maxConnections > 0) server.maxConnections = limits.maxConnections;
  // A client that sends its request then FIN (half-close) still gets its answer: node:http's
  // default (httpAllowHalfOpen false) aborts requests in progress and ends the socket at FIN.
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const declared = Number(req.headers['content-length']);
    if (declared > limits.maxBodyBytes) {
      // Refused before the body is sent: the client never gets its 100, so close after the answer.
      const ge = tooLarge(limits.maxBodyBytes, declared);
      const text = JSON.stringify(ge.body());
      res.writeHead(413, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' }).end(text);
      return;
    }
    res.writeContinue();
    server.emit('request', req, res);
  });
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    onClientError?.(err);
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const inProgress = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    if (inProgress?.headersSent) {
      socket.destroy();
      return;
    }
    writeRefusal(socket, refusal(err));
  });
  return server;
}

export function tooLarge(limit: number, declared?: number): GatewayError {
  return new GatewayError(
    413,
    declared !== undefined ? `request body of ${declared} bytes exceeds the ${limit}-byte limit` : `request body exceeds the ${limit}-byte limit`,
    'request_too_large_error',
    'body_too_large',
  );
}

/**
 * Reads the body up to `limit` bytes; rejects with 413 beyond (checked on content-length first).
 * A refused body is read and dropped up to `limit` more bytes so the 413 reaches the client and the
 * connection stays usable; past that the connection is closed after the answer.
 */
export function readBody(req: IncomingMessage, res: ServerResponse, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) {
    refuseBody(req, res, limit, declared);
    return Promise.reject(tooLarge(limit, declared));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // A large body goes to the parse thread (json-body.ts): in shared memory it needs no copy, and
    // filled as it arrives (a declared length) its pages are touched read by read, not all at once.
    const shared = declared > INLINE_JSON_BYTES ? Buffer.from(new SharedArrayBuffer(declared)) : undefined;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.off('data', onData);
        req.off('end', onEnd);
        refuseBody(req, res, limit, undefined, size);
        chunks.length = 0;
        reject(tooLarge(limit));
        return;
      }
      // (llhttp delivers exactly the declared length.)
      if (shared) c.copy(shared, size - c.length);
      else chunks.push(c);
    };
    const onEnd = () => {
      if (shared) resolve(size === shared.length ? shared : shared.subarray(0, size));
      else if (size > INLINE_JSON_BYTES) resolve(concatShared(chunks, size));
      else resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', reject);
  });
}

/** `chunks` in one Buffer over a SharedArrayBuffer (a chunked body over the inline parse size). */
function concatShared(chunks: Buffer[], size: number): Buffer {
  const out = Buffer.from(new SharedArrayBuffer(size));
  let at = 0;
  for (const c of chunks) at += c.copy(out, at);
  return out;
}

/** Drops the rest of a refused body while the whole stays under twice `limit`; closes the connection past that. */
function refuseBody(req: IncomingMessage, res: ServerResponse, limit: number, declared: number | undefined, seen = 0): void {
  if (declared !== undefined && declared > 2 * limit) {
    // Too much to drain: answer, then close (node ends the socket after a `connection: close` answer).
    res.setHeader('connection', 'close');
    req.resume();
    return;
  }
  let total = seen;
  req.on('data', (c: Buffer) => {
    total += c.length;
    if (total <= 2 * limit || req.socket.destroyed) return;
    if (!res.headersSent) res.setHeader('connection', 'close');
    else if (res.writableFinished) req.socket.destroy();
  });
  req.resume();
}
