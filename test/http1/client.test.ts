// Http1Pool against real loopback servers: node:net servers that write exact bytes (framing,
// splits, misbehaviour) and node:http where a well-behaved server is enough.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createHttpServer, type RequestListener } from 'node:http';
import { once } from 'node:events';
import { networkInterfaces } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Http1Pool, UpstreamError, type ResponseHead, type UpstreamCall, type UpstreamRequest } from '../../src/http1/client.js';

// ---------------------------------------------------------------- servers

interface SeenRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  /** The request's exact bytes. */
  raw: Buffer;
  socket: Socket;
  /** Index of the socket (0 = the first accepted). */
  conn: number;
  /** Index of the request on its socket. */
  nth: number;
}

/** Splits a request byte stream into requests (content-length bodies only, as the pool sends). */
function readRequests(socket: Socket, conn: number, onRequest: (r: SeenRequest) => void): void {
  let buf = Buffer.alloc(0);
  let nth = 0;
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = buf.toString('latin1', 0, end).split('\r\n');
      const [method, path] = lines[0].split(' ');
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
      }
      const len = Number(headers['content-length'] ?? 0);
      if (buf.length < end + 4 + len) return;
      const raw = buf.subarray(0, end + 4 + len);
      buf = buf.subarray(end + 4 + len);
      onRequest({ method, path, headers, body: raw.subarray(end + 4), raw, socket, conn, nth: nth++ });
    }
  });
}

interface RawServer {
  server: NetServer;
  port: number;
  origin: string;
  sockets: Socket[];
  requests: SeenRequest[];
  /** Resolves when the server has seen `n` requests in all. */
  waitRequests(n: number): Promise<void>;
  /** Resolves when `socket` has been closed by the client (rejects after `ms`). */
  closed(socket: Socket, ms?: number): Promise<void>;
  close(): Promise<void>;
}

/** A net server calling `respond` for each request read; it writes whatever bytes it likes. */
async function rawServer(respond: (r: SeenRequest) => void, host = '127.0.0.1'): Promise<RawServer> {
  const sockets: Socket[] = [];
  const requests: SeenRequest[] = [];
  const closedSockets = new Set<Socket>();
  let waiters: (() => void)[] = [];
  const server = createNetServer((socket) => {
    const conn = sockets.length;
    sockets.push(socket);
    socket.on('error', () => {});
    socket.on('close', () => {
      closedSockets.add(socket);
      for (const w of waiters.splice(0)) w();
    });
    readRequests(socket, conn, (r) => {
      requests.push(r);
      for (const w of waiters.splice(0)) w();
      respond(r);
    });
  });
  server.listen(0, host);
  await once(server, 'listening');
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  const until = async (ok: () => boolean, what: string, ms = 5000) => {
    const deadline = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    }
  };
  return {
    server,
    port: addr.port,
    origin: `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`,
    sockets,
    requests,
    waitRequests: (n) => until(() => requests.length >= n, `${n} requests`),
    closed: (socket, ms) => until(() => closedSockets.has(socket), 'the socket to close', ms),
    async close() {
      waiters = [];
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

async function httpServer(listener: RequestListener): Promise<{ origin: string; close(): Promise<void> }> {
  const server = createHttpServer(listener);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  return {
    origin: `http://127.0.0.1:${addr.port}`,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** One chunk of a chunked body. */
const chunk = (s: string) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;

const ok = (body: string, extra = '') => `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

// ---------------------------------------------------------------- client side

interface Result {
  head?: ResponseHead;
  chunks: Buffer[];
  body: string;
  error?: UpstreamError;
  /** Callback names in order. */
  events: string[];
}

/** Runs one request; resolves on onComplete or onError. */
function send(pool: Http1Pool, req: Partial<UpstreamRequest> = {}): { call: UpstreamCall; done: Promise<Result>; result: Result } {
  const result: Result = { chunks: [], body: '', events: [] };
  let call!: UpstreamCall;
  const done = new Promise<Result>((resolve) => {
    call = pool.request(
      { method: 'GET', path: '/', headers: {}, ...req },
      {
        onResponseStart(head) {
          result.events.push('start');
          result.head = head;
        },
        onData(chunk) {
          result.events.push('data');
          result.chunks.push(chunk);
        },
        onComplete() {
          result.events.push('complete');
          result.body = Buffer.concat(result.chunks).toString();
          resolve(result);
        },
        onError(err) {
          result.events.push('error');
          result.error = err;
          resolve(result);
        },
      },
    );
  });
  return { call, done, result };
}

const get = async (pool: Http1Pool, path = '/', req: Partial<UpstreamRequest> = {}) => send(pool, { path, ...req }).done;

/** Waits until `cond` holds (polling), failing after `ms`. */
async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// ---------------------------------------------------------------- tests

/** A hang fails its own test, not the whole file. */
const T = { timeout: 10_000 };

test('sequential requests reuse one connection', T, async () => {
  const srv = await rawServer((r) => r.socket.write(ok(`answer ${r.nth}`)));
  const pool = new Http1Pool(srv.origin);
  try {
    for (let i = 0; i < 4; i++) {
      const res = await get(pool, `/r${i}`);
      assert.equal(res.error, undefined);
      assert.equal(res.head?.status, 200);
      assert.equal(res.body, `answer ${i}`);
      assert.deepEqual(res.events.slice(0, 1), ['start']);
      assert.equal(res.events.at(-1), 'complete');
    }
    assert.equal(srv.sockets.length, 1, 'one socket for all four');
    assert.deepEqual(
      srv.requests.map((r) => r.path),
      ['/r0', '/r1', '/r2', '/r3'],
    );
    assert.equal(pool.size, 1);
    assert.equal(pool.idleCount, 1);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('concurrent requests open up to `connections`, the rest wait in FIFO order', T, async () => {
  const held: SeenRequest[] = [];
  const srv = await rawServer((r) => held.push(r));
  const pool = new Http1Pool(srv.origin, { connections: 2 });
  try {
    const calls = [0, 1, 2, 3, 4].map((i) => send(pool, { path: `/q${i}` }));
    await srv.waitRequests(2);
    await sleep(50);
    assert.equal(srv.sockets.length, 2, 'never more than 2 connections');
    assert.equal(srv.requests.length, 2, 'the others wait');
    assert.equal(pool.size, 2);
    const answered: string[] = [];
    for (let k = 0; k < 5; k++) {
      // Answer the oldest request the server holds; the next queued one takes its connection.
      await srv.waitRequests(Math.min(k + 2, 5));
      const r = held.shift();
      assert.ok(r);
      answered.push(r.path);
      r.socket.write(ok(r.path));
      const res = await calls[Number(r.path.slice(2))].done;
      assert.equal(res.body, r.path);
    }
    assert.deepEqual(answered, ['/q0', '/q1', '/q2', '/q3', '/q4'], 'queued requests leave in arrival order');
    assert.deepEqual(
      srv.requests.map((r) => r.path),
      ['/q0', '/q1', '/q2', '/q3', '/q4'],
    );
    assert.equal(srv.sockets.length, 2, 'queued requests reuse the two connections');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('the request leaves as exactly the expected bytes: line, host, headers, body', T, async () => {
  const srv = await rawServer((r) => r.socket.write(ok('ok')));
  const pool = new Http1Pool(srv.origin);
  try {
    const body = Buffer.from(JSON.stringify({ model: 'm', prompt: 'héllo' }));
    const res = await get(pool, '/v1/completions?x=1', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': String(body.length), 'x-request-id': 'abc' },
      body,
    });
    assert.equal(res.body, 'ok');
    const expected = Buffer.concat([
      Buffer.from(
        `POST /v1/completions?x=1 HTTP/1.1\r\nhost: 127.0.0.1:${srv.port}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nx-request-id: abc\r\n\r\n`,
      ),
      body,
    ]);
    assert.deepEqual(srv.requests[0].raw, expected);
    await get(pool, '/metrics');
    assert.equal(srv.requests[1].raw.toString(), `GET /metrics HTTP/1.1\r\nhost: 127.0.0.1:${srv.port}\r\n\r\n`);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('a chunked (SSE) answer is delivered chunk by chunk while the server still holds the rest', T, async () => {
  let sock: Socket | undefined;
  const srv = await rawServer((r) => {
    sock = r.socket;
    r.socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n');
    r.socket.write(chunk('data: first\n\n'));
  });
  const pool = new Http1Pool(srv.origin);
  try {
    const got: string[] = [];
    let firstSeen!: () => void;
    const first = new Promise<void>((r) => (firstSeen = r));
    let completed = false;
    const done = new Promise<void>((resolve, reject) => {
      pool.request(
        { method: 'POST', path: '/v1/chat/completions', headers: {}, body: Buffer.from('{}') },
        {
          onResponseStart: (head) => assert.equal(head.headers['content-type'], 'text/event-stream'),
          onData: (c) => {
            got.push(c.toString());
            firstSeen();
          },
          onComplete: () => {
            completed = true;
            resolve();
          },
          onError: reject,
        },
      );
    });
    await first;
    assert.deepEqual(got, ['data: first\n\n']);
    assert.equal(completed, false, 'the answer is still open');
    assert.ok(sock);
    await sleep(30);
    assert.deepEqual(got, ['data: first\n\n'], 'nothing else arrives before the server sends it');
    sock.write(chunk('data: second\n\n'));
    await until(() => got.length === 2, 'the second chunk');
    assert.equal(got[1], 'data: second\n\n');
    assert.equal(completed, false);
    sock.write(chunk('data: [DONE]\n') + '0\r\n\r\n');
    await done;
    assert.equal(got.join(''), 'data: first\n\ndata: second\n\ndata: [DONE]\n');
    assert.equal(pool.idleCount, 1, 'the connection is kept after a complete chunked answer');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('backpressure: onData returning false pauses the socket; resume() continues; nothing lost', T, async () => {
  const size = 16 * 1024 * 1024;
  const payload = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) payload.writeUInt32LE(i, i);
  let serverFlushed = false;
  const srv = await rawServer((r) => {
    r.socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`);
    r.socket.write(payload, () => (serverFlushed = true));
  });
  const pool = new Http1Pool(srv.origin, { bodyTimeoutMs: 300 });
  try {
    const chunks: Buffer[] = [];
    let pausedAt = -1;
    let completed = false;
    let error: UpstreamError | undefined;
    const call = pool.request(
      { method: 'GET', path: '/big', headers: {} },
      {
        onResponseStart() {},
        onData(c) {
          chunks.push(c);
          if (pausedAt < 0) {
            pausedAt = chunks.length;
            return false;
          }
          return true;
        },
        onComplete: () => (completed = true),
        onError: (e) => (error = e),
      },
    );
    await until(() => pausedAt > 0, 'the first chunk');
    // Longer than the body timeout: a paused reader is not a silent upstream.
    await sleep(700);
    assert.equal(chunks.length, pausedAt, 'no data while paused');
    assert.equal(serverFlushed, false, 'the server is held back by TCP flow control');
    assert.equal(error, undefined, 'no body timeout while paused');
    call.resume();
    await until(() => completed || error !== undefined, 'the rest of the body', 10_000);
    assert.equal(error, undefined);
    assert.ok(Buffer.concat(chunks).equals(payload), 'every byte arrives, in order');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('backpressure on every chunk with resume() on the next turn delivers the body intact', T, async () => {
  const size = 2 * 1024 * 1024;
  const payload = Buffer.alloc(size, 'abcdefghijklmnopqrstuvwxyz');
  const srv = await rawServer((r) => {
    // Chunked, in many small writes.
    r.socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
    for (let i = 0; i < size; i += 7000) {
      const piece = payload.subarray(i, i + 7000);
      r.socket.write(`${piece.length.toString(16)}\r\n`);
      r.socket.write(piece);
      r.socket.write('\r\n');
    }
    r.socket.write('0\r\n\r\n');
  });
  const pool = new Http1Pool(srv.origin);
  try {
    const chunks: Buffer[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const call = pool.request(
        { method: 'GET', path: '/', headers: {} },
        {
          onResponseStart() {},
          onData(c) {
            chunks.push(c);
            setImmediate(() => call.resume());
            return false;
          },
          onComplete: resolve,
          onError: reject,
        },
      );
    });
    await done;
    assert.ok(Buffer.concat(chunks).equals(payload));
    // The connection is reusable afterwards.
    const again = await get(pool, '/again');
    assert.equal(again.error, undefined);
    assert.equal(srv.sockets.length, 1);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('a connection paused on the last chunk of an answer still carries the next request', T, async () => {
  const srv = await rawServer((r) => r.socket.write(ok(`body ${r.nth}`)));
  const pool = new Http1Pool(srv.origin, { headersTimeoutMs: 1000 });
  try {
    // The consumer pauses on the only (and last) chunk and never needs to resume: the answer is whole.
    const first = await new Promise<string>((resolve, reject) => {
      pool.request(
        { method: 'GET', path: '/a', headers: {} },
        { onResponseStart() {}, onData: () => false, onComplete: () => resolve('complete'), onError: reject },
      );
    });
    assert.equal(first, 'complete');
    const second = await get(pool, '/b');
    assert.equal(second.error, undefined, `the next request on the connection must not hang: ${second.error?.message}`);
    assert.equal(second.body, 'body 1');
    assert.equal(srv.sockets.length, 1);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('abort() mid-body destroys the connection and no callback follows', T, async () => {
  let sock: Socket | undefined;
  const srv = await rawServer((r) => {
    if (r.path !== '/stream') return void r.socket.write(ok('next'));
    sock = r.socket;
    r.socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n');
  });
  const pool = new Http1Pool(srv.origin);
  try {
    const s = send(pool, { path: '/stream' });
    await until(() => s.result.chunks.length === 1, 'the first chunk');
    s.call.abort();
    assert.ok(sock);
    await srv.closed(sock);
    // Whatever the server still sends goes nowhere.
    sock.write('6\r\nsecond\r\n0\r\n\r\n');
    await sleep(50);
    assert.deepEqual(s.result.events, ['start', 'data'], 'no data, complete or error after abort');
    await until(() => pool.size === 0, 'the pool to let the connection go');
    s.call.abort(); // twice is harmless
    // The pool still works.
    const next = await get(pool, '/next');
    assert.equal(next.body, 'next');
    assert.equal(srv.sockets.length, 2);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('abort() of a queued call: it is never sent and gets no callback', T, async () => {
  const held: SeenRequest[] = [];
  const srv = await rawServer((r) => held.push(r));
  const pool = new Http1Pool(srv.origin, { connections: 1 });
  try {
    const a = send(pool, { path: '/a' });
    const b = send(pool, { path: '/b' });
    const c = send(pool, { path: '/c' });
    await srv.waitRequests(1);
    b.call.abort();
    held[0].socket.write(ok('a'));
    assert.equal((await a.done).body, 'a');
    await srv.waitRequests(2);
    assert.equal(srv.requests[1].path, '/c', 'the aborted call was skipped');
    held[1].socket.write(ok('c'));
    assert.equal((await c.done).body, 'c');
    await sleep(30);
    assert.deepEqual(b.result.events, []);
    assert.equal(srv.requests.length, 2);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('abort() while connecting: nothing is sent and no callback follows', T, async () => {
  const srv = await rawServer((r) => r.socket.write(ok('x')));
  const pool = new Http1Pool(srv.origin);
  try {
    const s = send(pool);
    s.call.abort();
    await sleep(50);
    assert.deepEqual(s.result.events, []);
    assert.equal(srv.requests.length, 0);
    assert.equal(pool.size, 0);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('connection refused -> UpstreamError ECONNREFUSED in phase connect', T, async () => {
  const srv = await rawServer(() => {});
  const origin = srv.origin;
  await srv.close(); // the port is free now: nothing listens
  const pool = new Http1Pool(origin);
  try {
    const res = await get(pool);
    assert.ok(res.error instanceof UpstreamError);
    assert.equal(res.error.code, 'ECONNREFUSED');
    assert.equal(res.error.phase, 'connect');
    assert.deepEqual(res.events, ['error']);
    assert.equal(pool.size, 0);
  } finally {
    pool.destroy();
  }
});

test('connect timeout -> KVR_CONNECT_TIMEOUT (a TLS handshake the server never answers)', T, async () => {
  // A TCP connect to loopback never hangs (a closed port refuses at once), but the connect phase
  // of an https origin lasts until the TLS handshake ends: a server that accepts and stays silent
  // holds it open, which exercises the same timer.
  const srv = await rawServer(() => {});
  const pool = new Http1Pool(`https://127.0.0.1:${srv.port}`, { connectTimeoutMs: 150 });
  try {
    const t0 = Date.now();
    const res = await get(pool);
    assert.ok(res.error instanceof UpstreamError);
    assert.equal(res.error.code, 'KVR_CONNECT_TIMEOUT');
    assert.equal(res.error.phase, 'connect');
    assert.ok(Date.now() - t0 >= 140);
    await srv.closed(srv.sockets[0]);
    await until(() => pool.size === 0, 'the pool to let the connection go');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('headers timeout -> KVR_HEADERS_TIMEOUT in phase headers; the connection is closed', T, async () => {
  const srv = await rawServer(() => {}); // reads the request, never answers
  const pool = new Http1Pool(srv.origin, { headersTimeoutMs: 150 });
  try {
    const t0 = Date.now();
    const res = await get(pool);
    assert.ok(res.error instanceof UpstreamError);
    assert.equal(res.error.code, 'KVR_HEADERS_TIMEOUT');
    assert.equal(res.error.phase, 'headers');
    assert.ok(Date.now() - t0 >= 140);
    assert.equal(srv.requests.length, 1, 'not retried');
    await srv.closed(srv.sockets[0]);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('body timeout -> KVR_BODY_TIMEOUT after the head; steady data keeps it from firing', T, async () => {
  const srv = await rawServer((r) => {
    if (r.path === '/stall') {
      r.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
      return;
    }
    // A byte every 40 ms for ~320 ms, with a 300 ms body timeout: never silent long enough.
    r.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n');
    let i = 0;
    const t = setInterval(() => {
      if (r.socket.destroyed) return clearInterval(t);
      r.socket.write('x');
      if (++i === 8) clearInterval(t);
    }, 40);
  });
  const pool = new Http1Pool(srv.origin, { bodyTimeoutMs: 300 });
  try {
    const slow = await get(pool, '/slow');
    assert.equal(slow.error, undefined, slow.error?.message);
    assert.equal(slow.body, 'xxxxxxxx');
    const res = await get(pool, '/stall');
    assert.ok(res.error instanceof UpstreamError);
    assert.equal(res.error.code, 'KVR_BODY_TIMEOUT');
    assert.equal(res.error.phase, 'body');
    assert.deepEqual(res.events, ['start', 'data', 'error']);
    await srv.closed(srv.sockets[0]);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('the server closing mid-body -> an error in phase body, after the head and the data so far', T, async () => {
  const srv = await rawServer((r) => {
    r.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabcde');
    setTimeout(() => r.socket.end(), 20);
  });
  const pool = new Http1Pool(srv.origin);
  try {
    const res = await get(pool);
    assert.ok(res.error instanceof UpstreamError);
    assert.equal(res.error.phase, 'body');
    assert.equal(res.error.code, 'KVR_UPSTREAM_CLOSED');
    assert.equal(Buffer.concat(res.chunks).toString(), 'abcde');
    assert.deepEqual(res.events, ['start', 'data', 'error']);
    assert.equal(srv.requests.length, 1, 'an answer in progress is never retried');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('the server closing before answering a fresh connection -> an error in phase headers, no retry', T, async () => {
  const srv = await rawServer((r) => r.socket.end());
  const pool = new Http1Pool(srv.origin);
  try {
    const res = await get(pool);
    assert.ok(res.error instanceof UpstreamError);
    assert.equal(res.error.phase, 'headers');
    assert.equal(srv.requests.length, 1, 'only a reused connection is retried');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

for (const how of ['FIN', 'RST'] as const) {
  test(`a kept-alive connection closed (${how}) as the next request is written: retried once on a fresh connection`, T, async () => {
    const srv = await rawServer((r) => {
      if (r.conn === 0 && r.nth === 1) {
        // The idle close racing the request: the server drops it unanswered.
        if (how === 'FIN') r.socket.end();
        else r.socket.resetAndDestroy();
        return;
      }
      r.socket.write(ok(`${r.path} on ${r.conn}`));
    });
    const pool = new Http1Pool(srv.origin);
    try {
      assert.equal((await get(pool, '/first')).body, '/first on 0');
      const res = await get(pool, '/second', { method: 'POST', body: Buffer.from('payload'), headers: { 'content-length': '7' } });
      assert.equal(res.error, undefined, res.error?.message);
      assert.equal(res.body, '/second on 1');
      assert.deepEqual(res.events, ['start', 'data', 'complete']);
      assert.equal(srv.sockets.length, 2);
      const answered = srv.requests.filter((r) => r.path === '/second' && r.conn === 1);
      assert.equal(answered.length, 1, 'the retry reached the server once');
      assert.equal(answered[0].body.toString(), 'payload');
    } finally {
      pool.destroy();
      await srv.close();
    }
  });
}

test('a retry never opens more than `connections` sockets; it waits its turn when the pool is full', T, async () => {
  const srv = await rawServer((r) => {
    if (r.conn === 0 && r.nth === 1) return void r.socket.end(); // the stale close
    r.socket.write(ok(`${r.path} on ${r.conn}`));
  });
  const pool = new Http1Pool(srv.origin, { connections: 1 });
  try {
    await get(pool, '/first');
    let maxSize = 0;
    const timer = setInterval(() => (maxSize = Math.max(maxSize, pool.size)), 1);
    const second = send(pool, { path: '/second' }); // on the kept-alive socket, dropped unanswered
    const third = send(pool, { path: '/third' }); // queued behind it
    const [a, b] = await Promise.all([second.done, third.done]);
    clearInterval(timer);
    assert.equal(a.error, undefined, a.error?.message);
    assert.equal(b.error, undefined, b.error?.message);
    // The freed slot went to the queued call; the retry took the connection after it.
    assert.equal(b.body, '/third on 1');
    assert.equal(a.body, '/second on 1');
    assert.equal(srv.sockets.length, 2, 'no extra connection for the retry');
    assert.ok(maxSize <= 1, `pool.size reached ${maxSize}`);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('the retry happens once only: a second failure is reported', T, async () => {
  const srv = await rawServer((r) => {
    if (r.conn === 0 && r.nth === 0) r.socket.write(ok('first'));
    else r.socket.end(); // every later request is dropped unanswered
  });
  const pool = new Http1Pool(srv.origin);
  try {
    await get(pool, '/first');
    const res = await get(pool, '/second');
    assert.ok(res.error instanceof UpstreamError);
    assert.equal(res.error.phase, 'headers');
    assert.equal(srv.sockets.length, 2);
    assert.equal(srv.requests.filter((r) => r.path === '/second').length, 2, 'the first try and one retry');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('a reused connection closed after response bytes started is not retried', T, async () => {
  for (const partial of ['HTTP/1.1 200 OK\r\n', 'HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab']) {
    const srv = await rawServer((r) => {
      if (r.nth === 0) r.socket.write(ok('first'));
      else {
        r.socket.write(partial);
        setTimeout(() => r.socket.end(), 20);
      }
    });
    const pool = new Http1Pool(srv.origin);
    try {
      await get(pool, '/first');
      const res = await get(pool, '/second');
      assert.ok(res.error instanceof UpstreamError, partial);
      const headSeen = partial.includes('\r\n\r\n') && !partial.includes(' 100 ');
      assert.equal(res.error.phase, headSeen ? 'body' : 'headers', `phase for ${JSON.stringify(partial)}`);
      assert.equal(srv.sockets.length, 1, 'no fresh connection: the answer had begun');
      assert.equal(srv.requests.filter((r) => r.path === '/second').length, 1);
    } finally {
      pool.destroy();
      await srv.close();
    }
  }
});

test('`connection: close` in the answer: the socket is closed, the next request opens another', T, async () => {
  const srv = await rawServer((r) => r.socket.write(ok('bye', 'connection: close\r\n')));
  const pool = new Http1Pool(srv.origin);
  try {
    assert.equal((await get(pool, '/a')).body, 'bye');
    await srv.closed(srv.sockets[0]);
    await until(() => pool.size === 0, 'the pool to let the connection go');
    assert.equal((await get(pool, '/b')).body, 'bye');
    assert.equal(srv.sockets.length, 2);
    assert.deepEqual(
      srv.requests.map((r) => r.conn),
      [0, 1],
    );
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('an HTTP/1.0 answer without keep-alive is not reused; with keep-alive it is', T, async () => {
  const srv = await rawServer((r) => {
    const ka = r.path === '/ka' ? 'connection: keep-alive\r\n' : '';
    r.socket.write(`HTTP/1.0 200 OK\r\n${ka}content-length: 2\r\n\r\nok`);
  });
  const pool = new Http1Pool(srv.origin);
  try {
    await get(pool, '/plain');
    await srv.closed(srv.sockets[0]);
    await get(pool, '/ka');
    await get(pool, '/ka');
    assert.equal(srv.sockets.length, 2);
    assert.equal(pool.idleCount, 1);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('extra bytes after an answer: the connection is dropped and the next request uses a new socket', T, async () => {
  const srv = await rawServer((r) => {
    if (r.conn === 0) r.socket.write(ok('first') + 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstray');
    else r.socket.write(ok(`fresh ${r.conn}`));
  });
  const pool = new Http1Pool(srv.origin);
  try {
    assert.equal((await get(pool, '/a')).body, 'first');
    await srv.closed(srv.sockets[0]);
    const next = await get(pool, '/b');
    assert.equal(next.body, 'fresh 1', 'the stray answer is never taken for this one');
    assert.equal(srv.sockets.length, 2);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('bytes arriving on an idle connection: it is dropped', T, async () => {
  const srv = await rawServer((r) => {
    r.socket.write(ok('first'));
    if (r.conn === 0) setTimeout(() => r.socket.write('HTTP/1.1 200 OK\r\n'), 30);
  });
  const pool = new Http1Pool(srv.origin);
  try {
    await get(pool, '/a');
    assert.equal(pool.idleCount, 1);
    await srv.closed(srv.sockets[0]);
    await until(() => pool.size === 0, 'the pool to let the connection go');
    assert.equal((await get(pool, '/b')).error, undefined);
    assert.equal(srv.sockets.length, 2);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('a malformed answer -> KVR_UPSTREAM_PARSE and the connection is dropped', T, async () => {
  const srv = await rawServer((r) => {
    if (r.path === '/bad-head') r.socket.write('HTTP/1.1 200 OK\r\nno colon here\r\n\r\n');
    else r.socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nXYZ\r\n');
  });
  const pool = new Http1Pool(srv.origin);
  try {
    const head = await get(pool, '/bad-head');
    assert.equal(head.error?.code, 'KVR_UPSTREAM_PARSE');
    assert.equal(head.error?.phase, 'headers');
    const body = await get(pool, '/bad-body');
    assert.equal(body.error?.code, 'KVR_UPSTREAM_PARSE');
    assert.equal(body.error?.phase, 'body');
    assert.deepEqual(body.events, ['start', 'data', 'error']);
    await srv.closed(srv.sockets[1]);
    await until(() => pool.size === 0, 'the pool to let the connection go');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('an answer running until close completes when the server closes', T, async () => {
  const srv = await rawServer((r) => {
    r.socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of ');
    setTimeout(() => r.socket.end('it'), 20);
  });
  const pool = new Http1Pool(srv.origin);
  try {
    const res = await get(pool);
    assert.equal(res.error, undefined);
    assert.equal(res.body, 'all of it');
    assert.equal(res.head?.keepAlive, false);
    assert.equal(pool.size, 0);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('HEAD: a content-length without a body, and the connection is reused', T, async () => {
  const srv = await rawServer((r) => r.socket.write(r.method === 'HEAD' ? 'HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n' : ok('after')));
  const pool = new Http1Pool(srv.origin);
  try {
    const head = await get(pool, '/', { method: 'HEAD' });
    assert.equal(head.head?.headers['content-length'], '1234');
    assert.deepEqual(head.events, ['start', 'complete']);
    assert.equal((await get(pool, '/')).body, 'after');
    assert.equal(srv.sockets.length, 1);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('1xx interim answers are skipped by the client', T, async () => {
  const srv = await rawServer((r) => r.socket.write('HTTP/1.1 100 Continue\r\n\r\n' + ok('final')));
  const pool = new Http1Pool(srv.origin);
  try {
    const res = await get(pool);
    assert.equal(res.head?.status, 200);
    assert.equal(res.body, 'final');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('keepAliveTimeoutMs closes idle sockets; a server keep-alive timeout=1 closes at once', T, async () => {
  const srv = await rawServer((r) => r.socket.write(ok('x', r.path === '/short' ? 'keep-alive: timeout=1\r\n' : '')));
  const pool = new Http1Pool(srv.origin, { keepAliveTimeoutMs: 150 });
  try {
    await get(pool, '/a');
    assert.equal(pool.idleCount, 1);
    await sleep(30);
    assert.equal(srv.sockets[0].destroyed, false, 'still open well before the idle timeout');
    await srv.closed(srv.sockets[0]);
    await until(() => pool.size === 0, 'the pool to let the connection go');
    // timeout=1 leaves no margin (a second's margin is kept): the socket is not kept at all.
    await get(pool, '/short');
    assert.equal(pool.idleCount, 0);
    await srv.closed(srv.sockets[1]);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('a server keep-alive timeout=2 caps the idle time at a second (its margin kept)', T, async () => {
  const srv = await rawServer((r) => r.socket.write(ok('x', 'keep-alive: timeout=2\r\n')));
  const pool = new Http1Pool(srv.origin, { keepAliveTimeoutMs: 60_000 });
  try {
    const t0 = Date.now();
    await get(pool);
    assert.equal(pool.idleCount, 1);
    await srv.closed(srv.sockets[0], 3000);
    const idle = Date.now() - t0;
    assert.ok(idle >= 900 && idle < 1900, `closed after ${idle} ms`);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('an answer written a few bytes at a time (head spanning many reads) arrives whole', T, async () => {
  const raw = Buffer.from('HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n' + chunk('hello ') + chunk('world') + '0\r\n\r\n');
  const srv = await rawServer(async (r) => {
    r.socket.setNoDelay(true);
    for (let i = 0; i < raw.length; i += 3) {
      r.socket.write(raw.subarray(i, i + 3));
      await sleep(1);
    }
  });
  const pool = new Http1Pool(srv.origin);
  try {
    for (let k = 0; k < 2; k++) {
      const res = await get(pool);
      assert.equal(res.error, undefined);
      assert.equal(res.head?.headers['x-a'], '1');
      assert.equal(res.body, 'hello world');
    }
    assert.equal(srv.sockets.length, 1);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('a server that closes after every answer (no connection: close): each request still succeeds once', T, async () => {
  // The realistic race: the next request is issued from onComplete, while the server's FIN is on
  // its way, so it goes out on the closing connection (then retried) or on a fresh one.
  const srv = await rawServer((r) => r.socket.end(ok(r.path)));
  const pool = new Http1Pool(srv.origin);
  try {
    const n = 20;
    const bodies: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const next = (i: number) => {
        pool.request(
          { method: 'GET', path: `/n${i}`, headers: {} },
          {
            onResponseStart() {},
            onData: (c) => void bodies.push(c.toString()),
            onComplete: () => (i + 1 < n ? next(i + 1) : resolve()),
            onError: reject,
          },
        );
      };
      next(0);
    });
    assert.deepEqual(
      bodies,
      Array.from({ length: n }, (_, i) => `/n${i}`),
    );
    const answered = new Map<string, number>();
    for (const r of srv.requests) if (r.nth === 0) answered.set(r.path, (answered.get(r.path) ?? 0) + 1);
    for (let i = 0; i < n; i++) assert.equal(answered.get(`/n${i}`), 1, `/n${i} answered once`);
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('text(): status and body from a node:http server (chunked with trailers, content-length)', T, async () => {
  const srv = await httpServer((req, res) => {
    if (req.url === '/metrics') {
      res.setHeader('trailer', 'x-check');
      res.write('# HELP a\n');
      res.write('a 1\n');
      res.addTrailers({ 'x-check': 'ok' });
      res.end();
    } else {
      res.statusCode = 404;
      res.end('{"error":"none"}');
    }
  });
  const pool = new Http1Pool(srv.origin);
  try {
    assert.deepEqual(await pool.text({ method: 'GET', path: '/metrics', headers: {} }, 2000), { status: 200, text: '# HELP a\na 1\n' });
    assert.deepEqual(await pool.text({ method: 'GET', path: '/v1/models', headers: {} }, 2000), { status: 404, text: '{"error":"none"}' });
    assert.equal(pool.size, 1, 'one kept-alive connection served both');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('text(): an answer over maxBytes is refused and its connection dropped', T, async () => {
  const srv = await rawServer((r) => r.socket.write(ok('x'.repeat(5000))));
  const pool = new Http1Pool(srv.origin);
  try {
    await assert.rejects(pool.text({ method: 'GET', path: '/big', headers: {} }, 2000, 1000), (err: unknown) => {
      assert.ok(err instanceof UpstreamError);
      assert.equal(err.code, 'KVR_BODY_TOO_LARGE');
      assert.equal(err.phase, 'body');
      return true;
    });
    await srv.closed(srv.sockets[0]);
    await until(() => pool.size === 0, 'the pool to let the connection go');
    assert.equal((await pool.text({ method: 'GET', path: '/big', headers: {} }, 2000, 5000)).text.length, 5000, 'exactly maxBytes is fine');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('text(): the whole exchange is bounded by timeoutMs (KVR_TIMEOUT), the call aborted', T, async () => {
  const srv = await rawServer((r) => {
    if (r.path === '/slow-body') r.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab');
  });
  const pool = new Http1Pool(srv.origin);
  try {
    for (const [path, phase] of [
      ['/silent', 'headers'],
      ['/slow-body', 'body'],
    ] as const) {
      const t0 = Date.now();
      await assert.rejects(pool.text({ method: 'GET', path, headers: {} }, 150), (err: unknown) => {
        assert.ok(err instanceof UpstreamError);
        assert.equal(err.code, 'KVR_TIMEOUT');
        assert.equal(err.phase, phase);
        return true;
      });
      assert.ok(Date.now() - t0 >= 140);
    }
    await srv.closed(srv.sockets[0]);
    await srv.closed(srv.sockets[1]);
    await until(() => pool.size === 0, 'the pool to let the connection go');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('text(): a failure rejects with the UpstreamError', T, async () => {
  const srv = await rawServer(() => {});
  await srv.close();
  const pool = new Http1Pool(srv.origin);
  await assert.rejects(pool.text({ method: 'GET', path: '/', headers: {} }, 2000), { code: 'ECONNREFUSED', phase: 'connect' });
  pool.destroy();
});

test('close(): idle sockets close now, queued calls fail, calls in flight finish and then close', T, async () => {
  const held: SeenRequest[] = [];
  const srv = await rawServer((r) => {
    if (r.path === '/idle') r.socket.write(ok('idle'));
    else held.push(r);
  });
  // A long idle timeout: only close() can end these sockets within the test's bounds.
  const pool = new Http1Pool(srv.origin, { connections: 2, keepAliveTimeoutMs: 60_000 });
  try {
    await get(pool, '/idle');
    const inflight = send(pool, { path: '/inflight' }); // takes the idle connection
    const second = send(pool, { path: '/second' }); // opens the second
    const queued = send(pool, { path: '/queued' });
    await srv.waitRequests(3);
    assert.equal(pool.size, 2);
    pool.close();
    const q = await queued.done;
    assert.equal(q.error?.code, 'KVR_POOL_CLOSED');
    const after = await get(pool, '/after');
    assert.equal(after.error?.code, 'KVR_POOL_CLOSED');
    for (const r of held) r.socket.write(ok(r.path));
    assert.equal((await inflight.done).body, '/inflight');
    assert.equal((await second.done).body, '/second');
    // Their connections close as their calls end instead of idling in a closed pool.
    await srv.closed(srv.sockets[0], 1000);
    await srv.closed(srv.sockets[1], 1000);
    await until(() => pool.size === 0, 'the pool to let the connection go');
    assert.deepEqual(
      srv.requests.map((r) => r.path),
      ['/idle', '/inflight', '/second'],
    );
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('destroy(): calls in flight are aborted without callbacks and every socket closes', T, async () => {
  const srv = await rawServer((r) => {
    if (r.path === '/idle') r.socket.write(ok('idle'));
    else r.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial');
  });
  const pool = new Http1Pool(srv.origin, { connections: 3 });
  try {
    const a = send(pool, { path: '/a' });
    const b = send(pool, { path: '/b' });
    const idle = send(pool, { path: '/idle' });
    await idle.done;
    await until(() => a.result.chunks.length > 0 && b.result.chunks.length > 0, 'partial bodies');
    pool.destroy();
    for (const s of srv.sockets) await srv.closed(s);
    await sleep(30);
    assert.deepEqual(a.result.events, ['start', 'data']);
    assert.deepEqual(b.result.events, ['start', 'data']);
    assert.equal(pool.size, 0);
    const after = await get(pool);
    assert.equal(after.error?.code, 'KVR_POOL_CLOSED');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

const hasIPv6Loopback = Object.values(networkInterfaces()).some((list) => list?.some((i) => i.family === 'IPv6' && i.address === '::1'));

test('an IPv6 origin [::1]: connects, sends host [::1]:port and reuses the connection', { ...T, skip: !hasIPv6Loopback && 'no ::1 on this machine' }, async () => {
  const srv = await rawServer((r) => r.socket.write(ok(r.headers['host'])), '::1');
  const pool = new Http1Pool(srv.origin);
  try {
    assert.equal(srv.origin, `http://[::1]:${srv.port}`);
    const a = await get(pool);
    assert.equal(a.error, undefined, a.error?.message);
    assert.equal(a.body, `[::1]:${srv.port}`);
    await get(pool);
    assert.equal(srv.sockets.length, 1);
    assert.equal(srv.sockets[0].remoteAddress, '::1');
  } finally {
    pool.destroy();
    await srv.close();
  }
});

test('an unsupported origin protocol is refused', T, () => {
  assert.throws(() => new Http1Pool('ftp://127.0.0.1:21'), /unsupported upstream protocol/);
});

test('a handler that throws in any callback gets onError (KVR_HANDLER); nothing escapes the socket', T, async () => {
  const srv = await rawServer((r) => r.socket.write(ok(`answer ${r.nth}`)));
  const pool = new Http1Pool(srv.origin);
  try {
    for (const where of ['start', 'data', 'complete'] as const) {
      const err = await new Promise<UpstreamError>((resolve, reject) => {
        pool.request(
          { method: 'GET', path: '/', headers: {} },
          {
            onResponseStart() {
              if (where === 'start') throw new Error('boom in start');
            },
            onData() {
              if (where === 'data') throw new Error('boom in data');
            },
            onComplete() {
              if (where === 'complete') throw new Error('boom in complete');
              reject(new Error('completed without the handler throwing'));
            },
            onError: resolve,
          },
        );
      });
      assert.equal(err.code, 'KVR_HANDLER', where);
      assert.match(err.message, new RegExp(`boom in ${where}`));
    }
    // The pool still serves.
    assert.equal((await get(pool)).body.startsWith('answer'), true);
  } finally {
    pool.destroy();
    await srv.close();
  }
});
