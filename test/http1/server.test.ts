// Http1Server over real loopback sockets: raw node:net clients that write exact bytes and read
// exact answers (framing, splits, pipelining, misbehaviour), and node:http, undici and curl for
// interop.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { once } from 'node:events';
import { spawn, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent as UndiciAgent, fetch as undiciFetch } from 'undici';
import { Http1Server, type Http1ServerOptions, type RequestListener, type ServerReply, type ServerRequest } from '../../src/http1/server.js';

// ---------------------------------------------------------------- server under test

interface Running {
  server: Http1Server;
  port: number;
}

async function start(t: TestContext, listener: RequestListener, options: Http1ServerOptions = {}): Promise<Running> {
  const server = new Http1Server(listener, options);
  const { port } = await server.listen(0, '127.0.0.1');
  t.after(async () => {
    const closed = server.close();
    server.closeAllConnections();
    await closed;
  });
  return { server, port };
}

/** Answers with what it received, as JSON. */
const echo: RequestListener = (req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(describe(req)));
};

function describe(req: ServerRequest): Echoed {
  return {
    method: req.method,
    url: req.url,
    version: req.httpVersion,
    headers: req.headers,
    body: req.body.toString('base64'),
    bodyRefused: req.bodyRefused,
  };
}

interface Echoed {
  method: string;
  url: string;
  version: string;
  headers: Record<string, string>;
  /** base64 */
  body: string;
  bodyRefused: boolean;
}

/** `p`, or a failure after `ms` (so a missing event fails the test instead of hanging it). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A promise with its resolver, for handlers that wait on the test. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

// ---------------------------------------------------------------- raw client

interface Resp {
  status: number;
  head: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** Headers that must appear once. */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'date']);

/** One whole response at the start of `buf`, or null when more bytes are needed. */
function parseResponse(buf: Buffer, noBody: boolean, closed: boolean): { resp: Resp; used: number } | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.toString('latin1', 0, end);
  const lines = head.split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*$/.exec(lines[0]);
  assert.ok(m, `status line ${JSON.stringify(lines[0])}`);
  const status = Number(m[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':');
    assert.ok(c > 0, `header line ${JSON.stringify(l)}`);
    const name = l.slice(0, c).toLowerCase();
    const value = l.slice(c + 1).trim();
    if (FRAMING.has(name)) assert.equal(headers[name], undefined, `header ${name} sent once`);
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  let pos = end + 4;
  const empty = Buffer.alloc(0);
  if (noBody || status === 204 || status === 304 || status < 200) return { resp: { status, head, headers, body: empty }, used: pos };
  if (headers['transfer-encoding'] !== undefined) {
    assert.equal(headers['transfer-encoding'], 'chunked');
    assert.equal(headers['content-length'], undefined, 'not both framings');
    const parts: Buffer[] = [];
    for (;;) {
      const eol = buf.indexOf('\r\n', pos);
      if (eol < 0) return null;
      const size = parseInt(buf.toString('latin1', pos, eol), 16);
      assert.ok(Number.isFinite(size), 'chunk size');
      if (size === 0) {
        if (buf.length < eol + 4) return null;
        assert.equal(buf.toString('latin1', eol + 2, eol + 4), '\r\n', 'no trailers, final CRLF');
        return { resp: { status, head, headers, body: Buffer.concat(parts) }, used: eol + 4 };
      }
      if (buf.length < eol + 2 + size + 2) return null;
      parts.push(buf.subarray(eol + 2, eol + 2 + size));
      assert.equal(buf.toString('latin1', eol + 2 + size, eol + 4 + size), '\r\n');
      pos = eol + 4 + size;
    }
  }
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (buf.length < pos + n) return null;
    return { resp: { status, head, headers, body: buf.subarray(pos, pos + n) }, used: pos + n };
  }
  if (!closed) return null;
  return { resp: { status, head, headers, body: buf.subarray(pos) }, used: buf.length };
}

/** A raw loopback client: exact bytes out, every byte in kept. */
class Raw {
  buf: Buffer = Buffer.alloc(0);
  dataEvents = 0;
  /** The server ended or the socket closed. */
  ended = false;
  private wake: (() => void) | null = null;

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.dataEvents++;
      this.wake?.();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on('error', () => {});
  }

  static async open(port: number): Promise<Raw> {
    const s = connect(port, '127.0.0.1');
    await once(s, 'connect');
    return new Raw(s);
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  async until(pred: () => boolean, what: string, ms = 3000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`timed out waiting for ${what}; received ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** The next whole response (taken off the buffer). */
  async response(noBody = false, ms = 3000): Promise<Resp> {
    let r: { resp: Resp; used: number } | null = null;
    await this.until(() => (r = parseResponse(this.buf, noBody, this.ended)) !== null || this.ended, 'a response', ms);
    r ??= parseResponse(this.buf, noBody, true);
    if (!r) assert.fail(`connection closed before a whole response; received ${JSON.stringify(this.buf.toString('latin1'))}`);
    const { resp, used } = r;
    this.buf = this.buf.subarray(used);
    return resp;
  }

  async closed(ms = 3000): Promise<void> {
    await this.until(() => this.ended, 'the connection to close', ms);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function json<T = Echoed>(r: Resp): T {
  return JSON.parse(r.body.toString()) as T;
}

// ---------------------------------------------------------------- interop: node:http, undici, curl

function nodeRequest(
  port: number,
  agent: HttpAgent,
  method: string,
  path: string,
  body?: Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts), localPort: req.socket!.localPort! }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('node:http client: keep-alive reuse over one socket, bodies, HEAD', async (t) => {
  const remotePorts: number[] = [];
  const { server, port } = await start(t, (req, res) => {
    remotePorts.push(res.socket.remotePort!);
    if (req.url === '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('one,');
      setTimeout(() => {
        res.write('two,');
        res.end('three');
      }, 5);
      return;
    }
    echo(req, res);
  });
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const body = Buffer.from(JSON.stringify({ model: 'm', prompt: 'hello' }));
  const a = await nodeRequest(port, agent, 'POST', '/v1/completions?x=1', body, { 'content-type': 'application/json' });
  assert.equal(a.status, 200);
  const ea = JSON.parse(a.body.toString()) as Echoed;
  assert.equal(ea.method, 'POST');
  assert.equal(ea.url, '/v1/completions?x=1');
  assert.equal(ea.version, '1.1');
  assert.equal(Buffer.from(ea.body, 'base64').toString(), body.toString());
  assert.equal(ea.headers['content-type'], 'application/json');
  assert.equal(a.headers.connection, 'keep-alive');
  assert.equal(a.headers['content-length'], String(a.body.length));
  const b = await nodeRequest(port, agent, 'GET', '/stream');
  assert.equal(b.body.toString(), 'one,two,three');
  assert.equal(b.headers['transfer-encoding'], 'chunked');
  const d = await nodeRequest(port, agent, 'DELETE', '/d');
  assert.equal((JSON.parse(d.body.toString()) as Echoed).method, 'DELETE');
  assert.equal(new Set([a.localPort, b.localPort, d.localPort]).size, 1, 'one client socket');
  assert.equal(new Set(remotePorts).size, 1, 'one server connection');
  assert.equal(remotePorts.length, 3);
  assert.equal(server.connections, 1);
  // Last: a HEAD answer (with the length a GET would have).
  const c = await nodeRequest(port, agent, 'HEAD', '/h');
  assert.equal(c.status, 200);
  assert.equal(c.headers['content-type'], 'application/json');
  assert.equal(c.body.length, 0);
});

test('undici fetch: JSON POST, streamed answer, several requests on one connection', async (t) => {
  const remotePorts = new Set<number>();
  const { port } = await start(t, (req, res) => {
    remotePorts.add(res.socket.remotePort!);
    if (req.url === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      let n = 0;
      const tick = (): void => {
        if (++n > 3) {
          res.end('data: [DONE]\n\n');
          return;
        }
        res.write(`data: ${n}\n\n`);
        setTimeout(tick, 2);
      };
      tick();
      return;
    }
    echo(req, res);
  });
  const dispatcher = new UndiciAgent({ connections: 1 });
  t.after(() => dispatcher.close());
  for (let i = 0; i < 3; i++) {
    const r = await undiciFetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ i }),
      dispatcher,
    });
    assert.equal(r.status, 200);
    const e = (await r.json()) as Echoed;
    assert.deepEqual(JSON.parse(Buffer.from(e.body, 'base64').toString()), { i });
  }
  const s = await undiciFetch(`http://127.0.0.1:${port}/sse`, { dispatcher });
  assert.equal(s.headers.get('content-type'), 'text/event-stream');
  assert.equal(await s.text(), 'data: 1\n\ndata: 2\n\ndata: 3\n\ndata: [DONE]\n\n');
  assert.equal(remotePorts.size, 1, 'one connection for all four');
});

const hasCurl = spawnSync('curl', ['--version']).status === 0;

test('curl: 100 Continue then the answer for a 4 KiB upload; keep-alive across two URLs', { skip: hasCurl ? false : 'curl not installed' }, async (t) => {
  const { port } = await start(t, echo);
  const upload = Buffer.alloc(4096, 'abcdefgh');
  const child = spawn('curl', ['-sv', '--http1.1', '-H', 'Expect: 100-continue', '-H', 'content-type: application/octet-stream', '--data-binary', '@-', `http://127.0.0.1:${port}/up`, '--next', `http://127.0.0.1:${port}/second`], { timeout: 10_000 });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  child.stdin.end(upload);
  const [code] = (await once(child, 'close')) as [number];
  const stderr = Buffer.concat(err).toString();
  assert.equal(code, 0, stderr);
  assert.match(stderr, /> Expect: 100-continue/);
  assert.match(stderr, /< HTTP\/1\.1 100 Continue[\s\S]*< HTTP\/1\.1 200 OK/, 'the interim answer, then the final one');
  assert.match(stderr, /Re-using existing connection/, 'the second URL reused the connection');
  // stdout holds both JSON answers back to back.
  const text = Buffer.concat(out).toString();
  const split = text.indexOf('}{') + 1;
  const first = JSON.parse(text.slice(0, split)) as Echoed;
  const second = JSON.parse(text.slice(split)) as Echoed;
  assert.equal(first.method, 'POST');
  assert.equal(first.headers.expect, '100-continue');
  assert.ok(Buffer.from(first.body, 'base64').equals(upload));
  assert.equal(second.method, 'GET');
  assert.equal(second.url, '/second');
});

test('curl: a 200 KB upload over maxBodyBytes gets its 413, and the next URL is answered', { skip: hasCurl ? false : 'curl not installed' }, async (t) => {
  const seen: string[] = [];
  const { port } = await start(
    t,
    (req, res) => {
      seen.push(`${req.url} ${req.bodyRefused}`);
      if (req.bodyRefused) res.writeHead(413, { 'content-type': 'application/json' }).end('{"error":{"message":"too large"}}');
      else echo(req, res);
    },
    { maxBodyBytes: 100 },
  );
  const child = spawn('curl', ['-sv', '--http1.1', '-H', 'Expect:', '--data-binary', '@-', `http://127.0.0.1:${port}/up`, '--next', `http://127.0.0.1:${port}/second`], { timeout: 10_000 });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  child.stdin.end(Buffer.alloc(200_000, 'u'));
  const [code] = (await once(child, 'close')) as [number];
  const stderr = Buffer.concat(err).toString();
  assert.equal(code, 0, stderr);
  assert.match(stderr, /< HTTP\/1\.1 413 Payload Too Large/);
  // curl reuses the connection when it had sent the whole body before reading the 413;
  // seeing the 413 mid-upload, it stops sending and closes the connection itself.
  assert.match(stderr, /Re-using existing connection|HTTP error before end of send, stop sending/);
  const text = Buffer.concat(out).toString();
  assert.ok(text.startsWith('{"error":{"message":"too large"}}'), text.slice(0, 80));
  assert.equal((JSON.parse(text.slice('{"error":{"message":"too large"}}'.length)) as Echoed).url, '/second');
  assert.deepEqual(seen, ['/up true', '/second false']);
});

test('raw Expect: 100-continue: the interim answer comes before the body is sent', async (t) => {
  const { port } = await start(t, echo);
  const c = await Raw.open(port);
  c.write('POST /e HTTP/1.1\r\nhost: a\r\nexpect: 100-Continue\r\ncontent-length: 5\r\n\r\n');
  await c.until(() => c.buf.length >= 25, '100 Continue');
  assert.equal(c.buf.toString('latin1'), 'HTTP/1.1 100 Continue\r\n\r\n');
  c.buf = c.buf.subarray(25);
  c.write('hello');
  const r = await c.response();
  assert.equal(r.status, 200);
  assert.equal(Buffer.from(json(r).body, 'base64').toString(), 'hello');
  // The body already sent with the head: no interim answer.
  c.write('POST /e HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\nhi');
  const r2 = await c.response();
  assert.equal(r2.status, 200);
  assert.equal(Buffer.from(json(r2).body, 'base64').toString(), 'hi');
  c.destroy();
});

test('HTTP/1.0 without keep-alive is closed after the answer; with keep-alive it stays', async (t) => {
  const { port } = await start(t, echo);
  const c = await Raw.open(port);
  c.write('GET /ten HTTP/1.0\r\n\r\n');
  const r = await c.response();
  assert.equal(r.status, 200);
  assert.equal(json(r).version, '1.0');
  assert.equal(r.headers.connection, 'close');
  await c.closed();

  const k = await Raw.open(port);
  k.write('GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n');
  const r1 = await k.response();
  assert.equal(r1.headers.connection, 'keep-alive');
  k.write('GET /b HTTP/1.0\r\nconnection: keep-alive\r\n\r\n');
  assert.equal(json(await k.response()).url, '/b');
  k.write('GET /c HTTP/1.0\r\n\r\n');
  const r3 = await k.response();
  assert.equal(r3.headers.connection, 'close');
  await k.closed();
});

test('connection: close is honoured; a request pipelined after it is not answered', async (t) => {
  let calls = 0;
  const { port } = await start(t, (req, res) => {
    calls++;
    echo(req, res);
  });
  const c = await Raw.open(port);
  c.write('GET /one HTTP/1.1\r\nhost: a\r\nconnection: Close\r\n\r\nGET /two HTTP/1.1\r\nhost: a\r\n\r\n');
  const r = await c.response();
  assert.equal(json(r).url, '/one');
  assert.equal(r.headers.connection, 'close');
  await c.closed();
  assert.equal(c.buf.length, 0, 'nothing after the answer');
  assert.equal(calls, 1);
  // A token list holding close.
  const d = await Raw.open(port);
  d.write('GET / HTTP/1.1\r\nconnection: te, close\r\n\r\n');
  assert.equal((await d.response()).headers.connection, 'close');
  await d.closed();
});

test('HEAD: the head without a body, and the next request on the socket parses', async (t) => {
  const { port } = await start(t, (req, res) => {
    if (req.url === '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('ignored');
      res.end('also');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('hello');
  });
  const c = await Raw.open(port);
  c.write('HEAD /x HTTP/1.1\r\nhost: a\r\n\r\n');
  const h = await c.response(true);
  assert.equal(h.status, 200);
  assert.equal(h.headers['content-type'], 'text/plain');
  assert.equal(h.headers['content-length'], '5', 'the length a GET would have');
  c.write('HEAD /stream HTTP/1.1\r\nhost: a\r\n\r\n');
  const h2 = await c.response(true);
  assert.equal(h2.headers['transfer-encoding'], undefined, 'no chunked framing for HEAD');
  c.write('GET /x HTTP/1.1\r\nhost: a\r\n\r\n');
  const g = await c.response();
  assert.equal(g.body.toString(), 'hello', 'no stray body bytes came before this answer');
  assert.equal(c.buf.length, 0);
  c.destroy();
});

// ---------------------------------------------------------------- request parsing

/** Writes `a`, lets the server read it, then writes `b`. */
async function writeSplit(c: Raw, whole: Buffer, at: number): Promise<void> {
  c.write(whole.subarray(0, at));
  await sleep(1);
  c.write(whole.subarray(at));
}

test('a content-length body split at every byte position gives the same body', async (t) => {
  const { port } = await start(t, echo);
  // The body holds what would be a request head and non-UTF-8 bytes.
  const body = Buffer.concat([Buffer.from('x\r\n\r\nGET /evil HTTP/1.1\r\n\r\n', 'latin1'), Buffer.from([0, 255, 128, 13, 10])]);
  const req = Buffer.concat([Buffer.from(`POST /cl HTTP/1.1\r\nhost: a\r\ncontent-length: ${body.length}\r\n\r\n`, 'latin1'), body]);
  const c = await Raw.open(port);
  for (let i = 1; i < req.length; i++) {
    await writeSplit(c, req, i);
    const r = await c.response();
    const e = json(r);
    assert.equal(e.url, '/cl', `split at ${i}`);
    assert.ok(Buffer.from(e.body, 'base64').equals(body), `split at ${i}`);
  }
  // One byte at a time.
  for (let i = 0; i < req.length; i++) {
    c.write(req.subarray(i, i + 1));
    if (i % 8 === 0) await sleep(0);
  }
  assert.ok(Buffer.from(json(await c.response()).body, 'base64').equals(body));
  assert.equal(c.buf.length, 0);
  c.destroy();
});

test('a chunked body with extensions and trailers split at every byte position gives the same body', async (t) => {
  const { port } = await start(t, echo);
  const coded = '5;ext=1\r\nhello\r\nA;a="b;c"\r\n, chunked!\r\n3\r\n\r\nx\r\n0\r\nx-trailer: t\r\n\r\n';
  const req = Buffer.from(`POST /ch HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n${coded}`, 'latin1');
  const expected = 'hello, chunked!\r\nx';
  const c = await Raw.open(port);
  for (let i = 1; i < req.length; i++) {
    await writeSplit(c, req, i);
    const e = json(await c.response());
    assert.equal(Buffer.from(e.body, 'base64').toString('latin1'), expected, `split at ${i}`);
    assert.equal(e.headers['transfer-encoding'], 'chunked');
  }
  // Upper-case coding name and hex digits; an empty chunked body.
  c.write(`POST /u HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\nPOST /empty HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`);
  assert.equal(Buffer.from(json(await c.response()).body, 'base64').toString(), '0123456789');
  const empty = json(await c.response());
  assert.equal(empty.url, '/empty');
  assert.equal(empty.body, '');
  c.destroy();
});

test('pipelined requests in one write are answered in order, whatever the handler delays', async (t) => {
  const delays: Record<string, number> = { '/1': 60, '/2': 5, '/3': 30, '/4': 0, '/5': 10 };
  const handled: string[] = [];
  const { port } = await start(t, (req, res) => {
    handled.push(req.url);
    setTimeout(() => echo(req, res), delays[req.url]);
  });
  const c = await Raw.open(port);
  c.write(
    'GET /1 HTTP/1.1\r\nhost: a\r\n\r\n' +
      'POST /2 HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc' +
      'POST /3 HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n' +
      'GET /4 HTTP/1.1\r\nhost: a\r\n\r\n' +
      'DELETE /5 HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n',
  );
  const urls: string[] = [];
  const bodies: string[] = [];
  for (let i = 0; i < 5; i++) {
    const e = json(await c.response());
    urls.push(e.url);
    bodies.push(Buffer.from(e.body, 'base64').toString());
  }
  assert.deepEqual(urls, ['/1', '/2', '/3', '/4', '/5']);
  assert.deepEqual(bodies, ['', 'abc', 'de', '', '']);
  assert.deepEqual(handled, urls);
  assert.equal(c.buf.length, 0);
  c.destroy();
});

test('a long pipeline (more than the buffered-ahead limit) is answered whole and in order', async (t) => {
  const first = gate();
  const { port } = await start(
    t,
    (req, res) => {
      const answer = (): void => void res.writeHead(200, { 'content-type': 'text/plain' }).end(req.url);
      // The first answer waits until the rest has arrived (the server stops reading past
      // 4 x maxHeaderBytes buffered); some later ones wait a little too.
      if (req.url === '/r0') void first.promise.then(answer);
      else if (req.url.endsWith('5')) setTimeout(answer, 1);
      else answer();
    },
    { maxHeaderBytes: 1024 },
  );
  const c = await Raw.open(port);
  const n = 300;
  const reqs: string[] = [];
  for (let i = 0; i < n; i++) reqs.push(`GET /r${i} HTTP/1.1\r\nhost: a\r\nx-pad: ${'p'.repeat(40)}\r\n\r\n`);
  c.write(reqs[0]);
  await sleep(5);
  // The rest in pieces while /r0 is in progress.
  for (let i = 1; i < n; i += 50) {
    c.write(reqs.slice(i, i + 50).join(''));
    await sleep(2);
  }
  assert.ok(reqs.join('').length > 4 * 1024 * 4, 'over the 4 x maxHeaderBytes read-ahead');
  first.open();
  for (let i = 0; i < n; i++) assert.equal((await c.response()).body.toString(), `/r${i}`);
  assert.equal(c.buf.length, 0);
  c.destroy();
});

test('Expect: 100-continue with a chunked body', async (t) => {
  const { port } = await start(t, echo);
  const c = await Raw.open(port);
  c.write('POST /c HTTP/1.1\r\nexpect: 100-continue\r\ntransfer-encoding: chunked\r\n\r\n');
  const interim = await c.response();
  assert.equal(interim.status, 100);
  c.write('3\r\nabc\r\n0\r\n\r\n');
  const r = await c.response();
  assert.equal(Buffer.from(json(r).body, 'base64').toString(), 'abc');
  c.destroy();
});

test('leading CRLFs before a request line are ignored (also after a body)', async (t) => {
  const { port } = await start(t, echo);
  const c = await Raw.open(port);
  c.write('\r\n\r\nGET /a HTTP/1.1\r\nhost: a\r\n\r\n');
  assert.equal(json(await c.response()).url, '/a');
  c.write('POST /b HTTP/1.1\r\ncontent-length: 2\r\n\r\nok\r\n');
  await sleep(5);
  c.write('\r\nGET /c HTTP/1.1\r\n\r\n');
  assert.equal(json(await c.response()).url, '/b');
  assert.equal(json(await c.response()).url, '/c');
  c.destroy();
});

test('header names lower-cased, repeats joined with ", " (cookie "; "), values trimmed', async (t) => {
  const { port } = await start(t, echo);
  const c = await Raw.open(port);
  c.write(
    'GET /h HTTP/1.1\r\nHost: example\r\nX-Multi: one\r\nx-MULTI:  two \r\nCookie: a=1\r\ncookie: b=2\r\n' +
      'X-Empty:\r\nX-Tab:\tv w\t\r\nAccept:*/*\r\n\r\n',
  );
  const e = json(await c.response());
  assert.deepEqual(e.headers, { host: 'example', 'x-multi': 'one, two', cookie: 'a=1; b=2', 'x-empty': '', 'x-tab': 'v w', accept: '*/*' });
  c.destroy();
});

test('a repeated content-length with equal values is one length', async (t) => {
  const { port } = await start(t, echo);
  const c = await Raw.open(port);
  c.write('POST / HTTP/1.1\r\ncontent-length: 3, 3\r\n\r\nabcPOST / HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nde');
  const a = json(await c.response());
  assert.equal(Buffer.from(a.body, 'base64').toString(), 'abc');
  assert.equal(a.headers['content-length'], '3');
  assert.equal(Buffer.from(json(await c.response()).body, 'base64').toString(), 'de');
  c.destroy();
});

// ---------------------------------------------------------------- refusals

const REFUSALS: [string, string, number][] = [
  ['request line without a version', 'GET /x\r\nhost: a\r\n\r\n', 400],
  ['request line with a space in the target', 'GET /a b HTTP/1.1\r\nhost: a\r\n\r\n', 400],
  ['empty target', 'GET  HTTP/1.1\r\nhost: a\r\n\r\n', 400],
  ['bad method token', 'G(T / HTTP/1.1\r\nhost: a\r\n\r\n', 400],
  ['control char in target', 'GET /a\x01b HTTP/1.1\r\nhost: a\r\n\r\n', 400],
  ['tab in target', 'GET /a\tb HTTP/1.1\r\nhost: a\r\n\r\n', 400],
  ['DEL in target', 'GET /a\x7fb HTTP/1.1\r\nhost: a\r\n\r\n', 400],
  ['HTTP/2.0 version', 'GET / HTTP/2.0\r\nhost: a\r\n\r\n', 505],
  ['not HTTP', 'GET / FTP/1.1\r\nhost: a\r\n\r\n', 400],
  ['lower-case protocol name', 'GET / http/1.1\r\nhost: a\r\n\r\n', 400],
  ['header without colon', 'GET / HTTP/1.1\r\nhost a\r\n\r\n', 400],
  ['space before colon', 'GET / HTTP/1.1\r\nhost : a\r\n\r\n', 400],
  ['tab before colon', 'GET / HTTP/1.1\r\nhost\t: a\r\n\r\n', 400],
  ['empty header name', 'GET / HTTP/1.1\r\n: a\r\n\r\n', 400],
  ['obs-fold (space)', 'GET / HTTP/1.1\r\nx-a: b\r\n c\r\n\r\n', 400],
  ['obs-fold (tab)', 'GET / HTTP/1.1\r\nx-a: b\r\n\tc\r\n\r\n', 400],
  ['CR in a value', 'GET / HTTP/1.1\r\nx-a: b\rc\r\n\r\n', 400],
  ['bare LF in a value', 'GET / HTTP/1.1\r\nx-a: b\nx-b: c\r\n\r\n', 400],
  ['NUL in a value', 'GET / HTTP/1.1\r\nx-a: b\0c\r\n\r\n', 400],
  ['transfer-encoding and content-length', 'POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n', 400],
  ['content-length and transfer-encoding', 'POST / HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ['transfer-encoding gzip', 'POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n', 501],
  ['transfer-encoding gzip, chunked', 'POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 501],
  ['transfer-encoding in HTTP/1.0', 'POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ['content-length not a number', 'POST / HTTP/1.1\r\ncontent-length: abc\r\n\r\n', 400],
  ['negative content-length', 'POST / HTTP/1.1\r\ncontent-length: -1\r\n\r\n', 400],
  ['signed content-length', 'POST / HTTP/1.1\r\ncontent-length: +5\r\n\r\nhello', 400],
  ['empty content-length', 'POST / HTTP/1.1\r\ncontent-length: \r\n\r\n', 400],
  ['content-length with inner space', 'POST / HTTP/1.1\r\ncontent-length: 1 5\r\n\r\nhello', 400],
  ['content-length of 16 digits', 'POST / HTTP/1.1\r\ncontent-length: 1000000000000000\r\n\r\n', 400],
  ['conflicting content-length list', 'POST / HTTP/1.1\r\ncontent-length: 5, 6\r\n\r\nhello!', 400],
  ['conflicting content-length fields', 'POST / HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!', 400],
  ['expectation other than 100-continue', 'POST / HTTP/1.1\r\nexpect: 200-ok\r\ncontent-length: 5\r\n\r\n', 417],
  ['bad chunk size', 'POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n', 400],
  ['chunk data without CRLF', 'POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n', 400],
  ['head over maxHeaderBytes', `GET / HTTP/1.1\r\nx-big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, 431],
  ['head over maxHeaderBytes, unterminated', `GET / HTTP/1.1\r\nx-big: ${'a'.repeat(17 * 1024)}`, 431],
];

/** The refusal shape: status, JSON error body, connection: close, and the connection closed. */
async function assertRefused(c: Raw, status: number, what: string): Promise<Resp> {
  const r = await c.response();
  assert.equal(r.status, status, what);
  assert.equal(r.headers['content-type'], 'application/json', what);
  assert.equal(r.headers.connection, 'close', what);
  assert.ok(r.headers.date, what);
  const e = json<{ error: { message: string; type: string } }>(r);
  assert.equal(typeof e.error.message, 'string', what);
  assert.ok(e.error.message.length > 0, what);
  await c.closed();
  assert.equal(c.buf.length, 0, `${what}: nothing after the refusal`);
  return r;
}

test('malformed requests are refused with a JSON error and the connection closed', async (t) => {
  let calls = 0;
  const clientErrors: Error[] = [];
  const { server, port } = await start(t, (req, res) => {
    calls++;
    echo(req, res);
  });
  server.on('clientError', (err: Error) => clientErrors.push(err));
  for (const [what, bytes, status] of REFUSALS) {
    const c = await Raw.open(port);
    // A valid request pipelined behind the bad one must not be answered.
    c.write(bytes);
    // (Not behind a head that declares a body: those bytes would be the body.)
    if (!/content-length: \d|chunked|x-big/.test(bytes)) c.write('GET /after HTTP/1.1\r\nhost: a\r\n\r\n');
    await assertRefused(c, status, what);
  }
  assert.equal(calls, 0, 'no malformed request reached the handler');
  assert.equal(clientErrors.length, REFUSALS.length);
});

test('a malformed request after a good one on the same connection: answer, then refusal', async (t) => {
  const { port } = await start(t, echo);
  const c = await Raw.open(port);
  c.write('GET /ok HTTP/1.1\r\nhost: a\r\n\r\nGET /bad HTTP/1.1\r\nhost : a\r\n\r\n');
  assert.equal(json(await c.response()).url, '/ok');
  await assertRefused(c, 400, 'second request');
});

test('maxHeaderBytes option: a head just under passes, over gets 431', async (t) => {
  const { port } = await start(t, echo, { maxHeaderBytes: 256 });
  const ok = await Raw.open(port);
  const line = 'GET / HTTP/1.1\r\nx-pad: ';
  ok.write(line + 'p'.repeat(200 - line.length) + '\r\n\r\n');
  assert.equal((await ok.response()).status, 200);
  ok.destroy();
  const big = await Raw.open(port);
  big.write(line + 'p'.repeat(300) + '\r\n\r\n');
  await assertRefused(big, 431, 'over 256');
  // Arriving in small pieces without an end: refused once past the limit.
  const slow = await Raw.open(port);
  for (let i = 0; i < 12 && !slow.ended; i++) {
    slow.write(i === 0 ? line : 'p'.repeat(40));
    await sleep(1);
  }
  await assertRefused(slow, 431, 'trickled');
});

test('headersTimeoutMs: an unfinished head gets 408; bodyTimeoutMs: an unfinished body gets 408', async (t) => {
  const { port } = await start(t, echo, { headersTimeoutMs: 250, bodyTimeoutMs: 250 });
  const h = await Raw.open(port);
  const t0 = Date.now();
  h.write('GET / HTTP/1.1\r\nhost:');
  const r = await assertRefused(h, 408, 'head');
  assert.match(json<{ error: { message: string } }>(r).error.message, /head/);
  assert.ok(Date.now() - t0 >= 220, 'not before the timeout');
  const b = await Raw.open(port);
  b.write('POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\nabc');
  const rb = await assertRefused(b, 408, 'body');
  assert.match(json<{ error: { message: string } }>(rb).error.message, /body/);
  // Steady progress within the head timeout is fine.
  const ok = await Raw.open(port);
  ok.write('GET /slow HTTP/1.1\r\n');
  await sleep(60);
  ok.write('host: a\r\n\r\n');
  assert.equal((await ok.response()).status, 200);
  ok.destroy();
});

test('headersTimeoutMs also bounds a partial head that came behind a request answered at once', async (t) => {
  const { port } = await start(t, (_req, res) => void res.end('ok'), { headersTimeoutMs: 200, keepAliveTimeoutMs: 10_000 });
  const c = await Raw.open(port);
  c.write('GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nhost:');
  assert.equal((await c.response()).body.toString(), 'ok');
  await assertRefused(c, 408, 'the partial second head');
});

// ---------------------------------------------------------------- body limit

test('a declared content-length over maxBodyBytes: 413 at once, body dropped, connection usable', async (t) => {
  const seen: { refused: boolean; bodyLength: number; url: string }[] = [];
  const { port } = await start(
    t,
    (req, res) => {
      seen.push({ refused: req.bodyRefused, bodyLength: req.body.length, url: req.url });
      if (req.bodyRefused) {
        res.writeHead(413, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'too large' } }));
        return;
      }
      echo(req, res);
    },
    { maxBodyBytes: 1000 },
  );
  const c = await Raw.open(port);
  const big = Buffer.alloc(1024 * 1024, 'GET / HTTP/1.1\r\n\r\n');
  // The whole large body written first, then a pipelined request behind it.
  c.write(Buffer.concat([Buffer.from(`POST /big HTTP/1.1\r\nhost: a\r\ncontent-length: ${big.length}\r\n\r\n`), big, Buffer.from('POST /next HTTP/1.1\r\ncontent-length: 4\r\n\r\nnext')]));
  const r = await c.response();
  assert.equal(r.status, 413);
  assert.deepEqual(json(r), { error: { message: 'too large' } });
  assert.equal(r.headers.connection, 'keep-alive');
  const n = json(await c.response());
  assert.equal(n.url, '/next');
  assert.equal(Buffer.from(n.body, 'base64').toString(), 'next');
  assert.deepEqual(seen, [
    { refused: true, bodyLength: 0, url: '/big' },
    { refused: false, bodyLength: 4, url: '/next' },
  ]);
  // Exactly at the limit passes.
  c.write(`POST /limit HTTP/1.1\r\ncontent-length: 1000\r\n\r\n${'z'.repeat(1000)}`);
  assert.equal(Buffer.from(json(await c.response()).body, 'base64').length, 1000);
  assert.equal(c.ended, false);
  c.destroy();
});

test('over the limit with Expect: 100-continue: 413 without an interim answer', async (t) => {
  const { port } = await start(t, (req, res) => (req.bodyRefused ? res.writeHead(413).end('{}') : echo(req, res)), { maxBodyBytes: 100 });
  const c = await Raw.open(port);
  c.write('POST / HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 5000\r\n\r\n');
  const r = await c.response();
  assert.equal(r.status, 413, 'the final answer, not 100 Continue');
  // The body may never come (the client waited for 100 Continue): the connection closes
  // after the answer instead of waiting for it.
  assert.equal(r.headers.connection, 'close');
  await c.closed();
  c.destroy();
});

test('a chunked body going over maxBodyBytes: 413, the rest dropped, connection usable', async (t) => {
  const seen: boolean[] = [];
  let answered = 0;
  const { port } = await start(
    t,
    (req, res) => {
      seen.push(req.bodyRefused);
      if (req.bodyRefused) {
        assert.equal(req.body.length, 0);
        // Answered later, while the body may still be arriving.
        setTimeout(() => {
          answered++;
          res.writeHead(413, { 'content-type': 'application/json' }).end('{"error":{"message":"too large"}}');
        }, 5);
        return;
      }
      echo(req, res);
    },
    { maxBodyBytes: 1000 },
  );
  const c = await Raw.open(port);
  let coded = '';
  for (let i = 0; i < 40; i++) coded += `12c\r\n${'q'.repeat(300)}\r\n`;
  coded += '0\r\nx-t: 1\r\n\r\n';
  c.write(`POST /chunky HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n${coded}GET /after HTTP/1.1\r\n\r\n`);
  const r = await c.response();
  assert.equal(r.status, 413);
  assert.equal(r.body.toString(), '{"error":{"message":"too large"}}');
  assert.equal(json(await c.response()).url, '/after');
  assert.deepEqual(seen, [true, false]);
  assert.equal(answered, 1);
  // Same with the 413 answered at once and the body trickling in afterwards.
  const d = await Raw.open(port);
  d.write(`POST /c2 HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n${'3e8\r\n' + 'w'.repeat(1000) + '\r\n'}1\r\nw\r\n`);
  const r2 = await d.response();
  assert.equal(r2.status, 413);
  d.write('5\r\nwwwww\r\n');
  await sleep(5);
  d.write('0\r\n\r\nGET /after2 HTTP/1.1\r\n\r\n');
  assert.equal(json(await d.response()).url, '/after2');
  c.destroy();
  d.destroy();
});

// ---------------------------------------------------------------- replies

test('writeHead + end(body) leaves as one write with content-length, date and connection', async (t) => {
  let socketWrites = 0;
  const { port } = await start(t, (req, res) => {
    if (req.url === '/utf8') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('héllo €');
      return;
    }
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(Buffer.alloc(40 * 1024, 'L'));
      return;
    }
    // Count the reply's calls on its socket.
    const sock = res.socket;
    const write = sock.write as (...args: unknown[]) => boolean;
    sock.write = ((...args: unknown[]) => {
      socketWrites++;
      return write.apply(sock, args);
    }) as typeof sock.write;
    res.writeHead(201, { 'content-type': 'text/plain', 'x-list': ['a', 'b'], 'x-num': 7 }).end('x'.repeat(1000));
    sock.write = write as typeof sock.write;
  });
  const c = await Raw.open(port);
  c.write('GET / HTTP/1.1\r\nhost: a\r\n\r\n');
  const r = await c.response();
  assert.equal(socketWrites, 1, 'one socket write for head and body');
  assert.equal(c.dataEvents, 1, 'head and body arrived together');
  assert.equal(r.status, 201);
  assert.match(r.head, /^HTTP\/1\.1 201 Created\r\n/);
  assert.equal(r.headers['content-length'], '1000');
  assert.equal(r.body.toString(), 'x'.repeat(1000));
  assert.equal(r.headers.connection, 'keep-alive');
  assert.equal(r.headers['x-num'], '7');
  assert.match(r.head, /\r\nx-list: a\r\nx-list: b\r\n/);
  assert.ok(Math.abs(Date.parse(r.headers.date) - Date.now()) < 5000, `date ${r.headers.date}`);
  assert.match(r.headers.date, /^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/);
  c.write('GET /utf8 HTTP/1.1\r\nhost: a\r\n\r\n');
  const u = await c.response();
  assert.equal(u.headers['content-length'], String(Buffer.byteLength('héllo €')), 'a length in bytes, not characters');
  assert.equal(u.body.toString(), 'héllo €');
  c.write('GET /big HTTP/1.1\r\nhost: a\r\n\r\n');
  const big = await c.response();
  assert.equal(big.headers['content-length'], String(40 * 1024));
  assert.ok(big.body.equals(Buffer.alloc(40 * 1024, 'L')));
  c.destroy();
});

test('write() without content-length streams chunked: each chunk arrives before end()', async (t) => {
  const step1 = gate();
  const step2 = gate();
  const { port } = await start(t, (req, res) => {
    void (async () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (req.url === '/flush') {
        res.flushHeaders();
        await step1.promise;
        res.end();
        return;
      }
      res.write('first');
      await step1.promise;
      res.write(Buffer.from('second!'));
      res.write(''); // no premature terminator
      await step2.promise;
      res.end('tail');
    })();
  });
  const c = await Raw.open(port);
  c.write('GET /s HTTP/1.1\r\nhost: a\r\n\r\n');
  await c.until(() => c.buf.includes('5\r\nfirst\r\n'), 'the first chunk');
  const headEnd = c.buf.indexOf('\r\n\r\n');
  const head = c.buf.toString('latin1', 0, headEnd);
  assert.match(head, /\r\ntransfer-encoding: chunked\r\n/);
  assert.doesNotMatch(head, /content-length/);
  assert.equal(c.buf.toString('latin1', headEnd + 4), '5\r\nfirst\r\n');
  step1.open();
  await c.until(() => c.buf.includes('7\r\nsecond!\r\n'), 'the second chunk');
  await sleep(10);
  assert.equal(c.buf.toString('latin1', headEnd + 4), '5\r\nfirst\r\n7\r\nsecond!\r\n', 'nothing more before end()');
  step2.open();
  await c.until(() => c.buf.toString('latin1').endsWith('0\r\n\r\n'), 'the terminator');
  assert.equal(c.buf.toString('latin1', headEnd + 4), '5\r\nfirst\r\n7\r\nsecond!\r\n4\r\ntail\r\n0\r\n\r\n');
  const r = await c.response();
  assert.equal(r.body.toString(), 'first' + 'second!' + 'tail');

  // flushHeaders: the head alone, then end() sends only the terminator.
  const f = await Raw.open(port);
  const g = gate();
  step1.promise = g.promise;
  f.write('GET /flush HTTP/1.1\r\nhost: a\r\n\r\n');
  await f.until(() => f.buf.includes('\r\n\r\n'), 'the head');
  await sleep(10);
  assert.ok(f.buf.toString('latin1').endsWith('\r\n\r\n'));
  assert.match(f.buf.toString('latin1'), /transfer-encoding: chunked/);
  g.open();
  await f.until(() => f.buf.toString('latin1').endsWith('\r\n\r\n0\r\n\r\n'), 'the terminator alone');
  assert.equal((await f.response()).body.length, 0);
  c.destroy();
  f.destroy();
});

test('a handler-supplied content-length is used as is, without chunking', async (t) => {
  const { port } = await start(t, (_req, res) => {
    res.writeHead(200, { 'Content-Length': '10', connection: 'upgrade', 'transfer-encoding': 'gzip' });
    res.write('01234');
    setTimeout(() => res.end('56789'), 5);
  });
  const c = await Raw.open(port);
  c.write('GET / HTTP/1.1\r\n\r\n');
  const r = await c.response();
  assert.equal(r.body.toString(), '0123456789');
  assert.equal(r.headers['transfer-encoding'], undefined, 'framing headers are the server\'s');
  assert.equal(r.headers.connection, 'keep-alive');
  c.write('GET / HTTP/1.1\r\n\r\n');
  assert.equal((await c.response()).body.toString(), '0123456789');
  c.destroy();
});

test('204 and 304 have no body and no length; body bytes given to them are not sent', async (t) => {
  const { port } = await start(t, (req, res) => {
    if (req.url === '/204') res.writeHead(204, { 'x-a': '1' }).end();
    else if (req.url === '/304') res.writeHead(304, { etag: '"e"' }).end();
    else if (req.url === '/204body') res.writeHead(204).end('must not be sent');
    else if (req.url === '/304write') {
      res.writeHead(304);
      res.write('nor this');
      res.end('nor that');
    } else echo(req, res);
  });
  const c = await Raw.open(port);
  c.write('GET /204 HTTP/1.1\r\n\r\nGET /304 HTTP/1.1\r\n\r\nGET /204body HTTP/1.1\r\n\r\nGET /304write HTTP/1.1\r\n\r\nGET /last HTTP/1.1\r\n\r\n');
  for (const status of [204, 304, 204, 304]) {
    const r = await c.response();
    assert.equal(r.status, status);
    assert.equal(r.headers['content-length'], undefined);
    assert.equal(r.headers['transfer-encoding'], undefined);
  }
  const last = await c.response();
  assert.equal(last.status, 200, 'the next answer starts right after the bodyless ones');
  assert.equal(json(last).url, '/last');
  assert.equal(c.buf.length, 0);
  c.destroy();
});

test('HTTP/1.0: a streamed answer is not chunked; it ends with the connection', async (t) => {
  const { port } = await start(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('ab');
    setTimeout(() => res.end('cd'), 5);
  });
  const c = await Raw.open(port);
  c.write('GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n');
  await c.closed();
  const r = await c.response();
  assert.equal(r.headers['transfer-encoding'], undefined, 'no transfer-encoding to an HTTP/1.0 client');
  assert.equal(r.headers.connection, 'close');
  assert.equal(r.body.toString(), 'abcd');
});

test('invalid header values and names from the handler throw TypeError before anything is sent', async (t) => {
  const errors: unknown[] = [];
  const { port } = await start(t, (req, res) => {
    const bad: [string, string | string[]][] = [
      ['x-inject', 'a\r\nx-injected: 1'],
      ['x-lf', 'a\nb'],
      ['x-nul', 'a\0b'],
      ['x-list', ['fine', 'bad\r']],
      ['x-name\r\nx-injected', '1'],
      ['x-name\nx-injected', '1'],
      ['bad name', '1'],
      ['', '1'],
    ];
    for (const [name, value] of bad) {
      res.writeHead(200, { 'x-good': 'g', [name]: value });
      try {
        if (req.url === '/write') res.write('body');
        else if (req.url === '/flush') res.flushHeaders();
        else res.end('body');
      } catch (err) {
        errors.push(err);
      }
    }
    assert.equal(res.headersSent, false);
    res.writeHead(200, { 'x-ok': '1' }).end('fine');
  });
  const c = await Raw.open(port);
  for (const path of ['/end', '/write', '/flush']) {
    c.write(`GET ${path} HTTP/1.1\r\n\r\n`);
    const r = await c.response();
    assert.equal(r.body.toString(), 'fine');
    assert.equal(r.headers['x-ok'], '1');
    assert.equal(r.headers['x-good'], undefined);
    assert.equal(r.headers['x-injected'], undefined);
    assert.equal(c.dataEvents, 1, `${path}: one answer, nothing before it`);
    c.dataEvents = 0;
  }
  assert.equal(errors.length, 24);
  for (const e of errors) assert.ok(e instanceof TypeError);
  c.destroy();
});

test("'finish' and 'close' once after a normal end; 'close' when the client disconnects mid-answer", async (t) => {
  const events: string[] = [];
  let midReply: ServerReply | null = null;
  const closedMid = gate();
  const { port } = await start(t, (req, res) => {
    res.on('finish', () => events.push(`${req.url} finish`));
    res.on('close', () => events.push(`${req.url} close`));
    if (req.url === '/mid') {
      midReply = res;
      res.writeHead(200);
      res.write('partial');
      res.on('close', () => closedMid.open());
      return;
    }
    res.end('done');
  });
  const c = await Raw.open(port);
  c.write('GET /normal HTTP/1.1\r\n\r\n');
  await c.response();
  assert.deepEqual(events, ['/normal finish', '/normal close']);
  c.write('GET /mid HTTP/1.1\r\n\r\n');
  await c.until(() => c.buf.includes('partial'), 'the first chunk');
  c.destroy();
  await within(closedMid.promise, 3000, "'close' on the reply");
  assert.deepEqual(events, ['/normal finish', '/normal close', '/mid close']);
  const mid = midReply as ServerReply | null;
  assert.ok(mid);
  assert.equal(mid.write('more'), false, 'write after the client left');
  mid.end('x'); // no throw, no 'finish'
  await sleep(5);
  assert.deepEqual(events, ['/normal finish', '/normal close', '/mid close']);
});

test("write() returns false under a slow reader and 'drain' follows", async (t) => {
  const piece = Buffer.alloc(64 * 1024, 'd');
  let sent = 0;
  let falses = 0;
  let stalledForReal = false;
  let drainedAfterStall = false;
  const stalled = gate();
  const { port } = await start(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    void (async () => {
      // Until the buffers between us and the paused reader are full (bounded: 400 x 64 KiB).
      for (let i = 0; i < 400; i++) {
        sent += piece.length;
        if (res.write(piece)) continue;
        falses++;
        const drained = await Promise.race([once(res, 'drain').then(() => true), sleep(100).then(() => false)]);
        if (drained) continue;
        stalledForReal = true;
        stalled.open();
        await once(res, 'drain');
        drainedAfterStall = true;
        break;
      }
      stalled.open();
      res.end();
    })();
  });
  const s = connect(port, '127.0.0.1');
  await once(s, 'connect');
  let received = 0;
  let tail = '';
  const done = new Promise<void>((resolve) => {
    s.on('data', (d: Buffer) => {
      received += d.length;
      tail = (tail + d.toString('latin1', Math.max(0, d.length - 16))).slice(-16);
      if (tail.endsWith('\r\n0\r\n\r\n')) resolve();
    });
  });
  s.pause();
  s.write('GET /fat HTTP/1.1\r\n\r\n');
  await within(stalled.promise, 5000, 'the writer to stall');
  assert.ok(stalledForReal, `the writer stalled within ${sent} bytes`);
  assert.ok(falses >= 1);
  assert.equal(drainedAfterStall, false);
  s.resume();
  await within(done, 5000, 'the whole answer');
  assert.ok(drainedAfterStall, "'drain' once the reader caught up");
  assert.ok(received > sent, `every byte arrived (${received} > ${sent})`);
  s.destroy();
});

test('destroy() drops the connection without an answer', async (t) => {
  let closed = false;
  const { port } = await start(t, (_req, res) => {
    res.on('close', () => (closed = true));
    res.destroy();
  });
  const c = await Raw.open(port);
  c.write('GET / HTTP/1.1\r\n\r\n');
  await c.closed();
  assert.equal(c.buf.length, 0);
  await sleep(5);
  assert.ok(closed);
});

test('a handler that throws synchronously yields a 500 and the connection goes on', async (t) => {
  const handlerErrors: unknown[] = [];
  const { server, port } = await start(t, (req, res) => {
    if (req.url === '/throw') throw new Error('boom');
    if (req.url === '/throw-late') {
      res.writeHead(200);
      res.write('started');
      throw new Error('late boom');
    }
    echo(req, res);
  });
  server.on('handlerError', (err: unknown) => handlerErrors.push(err));
  const c = await Raw.open(port);
  c.write('GET /throw HTTP/1.1\r\n\r\n');
  const r = await c.response();
  assert.equal(r.status, 500);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(json<{ error: { message: string } }>(r).error.message, 'internal error');
  c.write('GET /fine HTTP/1.1\r\n\r\n');
  assert.equal(json(await c.response()).url, '/fine');
  // Thrown after the head went out: the connection is dropped.
  c.write('GET /throw-late HTTP/1.1\r\n\r\n');
  await c.closed();
  assert.equal(handlerErrors.length, 2);
  assert.equal((handlerErrors[0] as Error).message, 'boom');
});

test('a client FIN is taken as the client gone: the answer in progress gets close, like node:http by default', async (t) => {
  const closed = gate();
  let wrote: boolean | null = null;
  const { server, port } = await start(t, (req, res) => {
    res.on('close', () => {
      wrote = res.write('x');
      closed.open();
    });
  });
  const c = await Raw.open(port);
  c.socket.end('GET /a HTTP/1.1\r\nhost: a\r\n\r\n');
  await within(closed.promise, 3000, "'close' on the reply");
  assert.equal(wrote, false);
  await c.closed();
  assert.equal(c.buf.length, 0);
  await sleep(5);
  assert.equal(server.connections, 0);
});

// ---------------------------------------------------------------- connection management

test('keepAliveTimeoutMs closes an idle connection; activity keeps it open', async (t) => {
  const { server, port } = await start(t, echo, { keepAliveTimeoutMs: 300 });
  const c = await Raw.open(port);
  // Requests 60 ms apart for ~300 ms: the idle timer restarts after each answer.
  for (let i = 0; i < 5; i++) {
    c.write(`GET /${i} HTTP/1.1\r\n\r\n`);
    assert.equal(json(await c.response()).url, `/${i}`);
    await sleep(60);
  }
  assert.equal(c.ended, false);
  const t0 = Date.now();
  await c.closed(2000);
  const idle = Date.now() - t0;
  assert.ok(idle >= 150 && idle < 2000, `closed after ${idle} ms more`);
  await sleep(5);
  assert.equal(server.connections, 0);
});

test('closeIdleConnections closes only idle ones; closeAllConnections closes the rest', async (t) => {
  const hold = gate();
  const { server, port } = await start(t, (req, res) => {
    if (req.url === '/hold') void hold.promise.then(() => echo(req, res));
    else echo(req, res);
  });
  const idle = await Raw.open(port);
  idle.write('GET / HTTP/1.1\r\n\r\n');
  await idle.response();
  const busy = await Raw.open(port);
  busy.write('GET /hold HTTP/1.1\r\n\r\n');
  await sleep(10);
  assert.equal(server.connections, 2);
  // A stray CRLF after an answer (allowed before a request line) leaves it idle.
  idle.write('\r\n');
  await sleep(10);
  server.closeIdleConnections();
  await idle.closed();
  await sleep(10);
  assert.equal(busy.ended, false);
  hold.open();
  const r = await busy.response();
  assert.equal(json(r).url, '/hold');
  assert.equal(r.headers.connection, 'keep-alive');
  assert.equal(server.connections, 1);
  server.closeAllConnections();
  await busy.closed();
  await sleep(5);
  assert.equal(server.connections, 0);
});

test('close(): stops accepting; answers while closing carry connection: close; resolves when all closed', async (t) => {
  const hold = gate();
  let entered = false;
  const { server, port } = await start(t, (req, res) => {
    if (req.url === '/hold') {
      entered = true;
      void hold.promise.then(() => echo(req, res));
    } else echo(req, res);
  });
  const idle = await Raw.open(port);
  idle.write('GET /first HTTP/1.1\r\n\r\n');
  assert.equal((await idle.response()).headers.connection, 'keep-alive');
  const busy = await Raw.open(port);
  busy.write('GET /hold HTTP/1.1\r\n\r\n');
  await busy.until(() => entered, 'the handler to start');
  let resolved = false;
  const closing = server.close().then(() => (resolved = true));
  // New connections are refused.
  const refused = connect(port, '127.0.0.1');
  const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNREFUSED');
  // A request on a kept-alive connection is answered, with connection: close, then closed.
  idle.write('GET /late HTTP/1.1\r\n\r\n');
  const late = await idle.response();
  assert.equal(json(late).url, '/late');
  assert.equal(late.headers.connection, 'close');
  await idle.closed();
  assert.equal(resolved, false, 'one connection still open');
  // The answer in progress when close() was called also says connection: close.
  hold.open();
  const r = await busy.response();
  assert.equal(json(r).url, '/hold');
  assert.equal(r.headers.connection, 'close');
  await busy.closed();
  await within(closing, 3000, 'close() to resolve');
  await sleep(5);
  assert.equal(server.connections, 0);
});
