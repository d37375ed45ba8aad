// The incremental HTTP/1.1 response parser on its own: framing, splits at every byte, interim
// responses, keep-alive semantics and the malformed inputs it must refuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResponseParser, ResponseParseError, parseHead, type ResponseHead, type ResponseSink } from '../../src/http1/response-parser.js';
import { rng } from '../helpers/rng.js';

/** Records what the parser reports. */
class Recorder implements ResponseSink {
  heads: ResponseHead[] = [];
  chunks: Buffer[] = [];
  completions = 0;
  /** Events in order, to check nothing arrives after completion. */
  events: string[] = [];
  onHead(head: ResponseHead): void {
    this.heads.push(head);
    this.events.push('head');
  }
  onBody(chunk: Buffer): void {
    assert.ok(chunk.length > 0, 'no empty body pieces');
    this.chunks.push(Buffer.from(chunk));
    this.events.push('body');
  }
  onComplete(): void {
    this.completions++;
    this.events.push('complete');
  }
  get body(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }
}

interface Outcome {
  heads: ResponseHead[];
  body: string;
  completions: number;
  used: number;
  closedOk?: boolean;
  events: string[];
}

/** Feeds `pieces` in order (as the socket would), stopping when the parser stops consuming. */
function run(pieces: Buffer[], opts: { noBody?: boolean; close?: boolean; maxHeaderBytes?: number } = {}): Outcome {
  const rec = new Recorder();
  const p = new ResponseParser(rec, opts.maxHeaderBytes);
  p.expect(opts.noBody);
  let used = 0;
  for (const piece of pieces) {
    const n = p.execute(piece);
    assert.ok(n >= 0 && n <= piece.length);
    used += n;
    if (p.done) break;
    assert.equal(n, piece.length, 'a response in progress takes every byte it is given');
  }
  const closedOk = opts.close ? p.finishOnClose() : undefined;
  return { heads: rec.heads, body: rec.body, completions: rec.completions, used, events: rec.events, closedOk };
}

const b = (s: string) => Buffer.from(s, 'latin1');

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts].sort((x, y) => x - y)) {
    out.push(buf.subarray(from, c));
    from = c;
  }
  out.push(buf.subarray(from));
  return out.filter((x) => x.length > 0);
}

function bytewise(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) out.push(buf.subarray(i, i + 1));
  return out;
}

test('content-length body: head, body, completion, and the bytes used', () => {
  const raw = b('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world');
  const o = run([raw]);
  assert.equal(o.heads.length, 1);
  assert.equal(o.heads[0].status, 200);
  assert.equal(o.heads[0].headers['content-type'], 'text/plain', 'names are lower-cased, values kept');
  assert.equal(o.heads[0].headers['content-length'], '11');
  assert.equal(o.heads[0].keepAlive, true);
  assert.equal(o.body, 'hello world');
  assert.equal(o.completions, 1);
  assert.equal(o.used, raw.length);
  assert.deepEqual(o.events, ['head', 'body', 'complete']);
});

test('content-length: 0 completes with the head', () => {
  const raw = b('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
  const o = run([raw]);
  assert.equal(o.completions, 1);
  assert.equal(o.body, '');
  assert.equal(o.used, raw.length);
});

test('chunked body with chunk extensions and trailers', () => {
  const raw = b(
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n' +
      '5;name=value\r\nhello\r\n' +
      '1 ; quoted="a;b"\r\n \r\n' +
      'A\r\n0123456789\r\n' +
      '0;last\r\nx-trailer: 1\r\nx-other: two\r\n\r\n',
  );
  const o = run([raw]);
  assert.equal(o.heads[0].headers['transfer-encoding'], 'chunked');
  assert.equal(o.body, 'hello 0123456789');
  assert.equal(o.completions, 1);
  assert.equal(o.used, raw.length, 'the trailers and final CRLF belong to the response');
});

test('chunked body with upper/lower-case hex sizes and no trailers', () => {
  const data = 'x'.repeat(0x1af);
  const raw = b(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1aF\r\n${data}\r\n0\r\n\r\n`);
  const o = run([raw]);
  assert.equal(o.body, data);
  assert.equal(o.used, raw.length);
});

// Responses whose every split must parse exactly as the one-shot feed does.
const SAMPLES: Record<string, { raw: Buffer; close?: boolean; noBody?: boolean }> = {
  'content-length': { raw: b('HTTP/1.1 201 Created\r\nlocation: /x\r\ncontent-length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz') },
  chunked: {
    raw: b(
      'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n' +
        '7;ext=1\r\ndata: a\r\n' +
        '10\r\n\ndata: bbbbbbbbb\r\n' +
        '2\r\n\n\n\r\n' +
        '0\r\nx-t: y\r\n\r\n',
    ),
  },
  'interim then chunked': {
    raw: b('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'),
  },
  'until close': { raw: b('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nthe body runs to the end of the connection'), close: true },
  '204': { raw: b('HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n') },
  HEAD: { raw: b('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n'), noBody: true },
};

for (const [name, s] of Object.entries(SAMPLES)) {
  test(`${name}: every split point, byte-by-byte and random pieces give the one-shot result`, () => {
    const opts = { close: s.close, noBody: s.noBody };
    const whole = run([s.raw], opts);
    assert.equal(whole.completions, 1);
    assert.equal(whole.used, s.raw.length);
    const same = (o: Outcome, how: string) => {
      assert.equal(o.body, whole.body, how);
      assert.equal(o.completions, 1, how);
      assert.equal(o.used, s.raw.length, how);
      assert.deepEqual(o.heads, whole.heads, how);
      if (s.close) assert.equal(o.closedOk, true, how);
    };
    for (let i = 1; i < s.raw.length; i++) same(run(splitAt(s.raw, [i]), opts), `split at ${i}`);
    same(run(bytewise(s.raw), opts), 'byte by byte');
    const r = rng(name.length * 7919);
    for (let k = 0; k < 200; k++) {
      const cuts = new Set<number>();
      const n = 1 + Math.floor(r() * 8);
      for (let j = 0; j < n; j++) cuts.add(1 + Math.floor(r() * (s.raw.length - 1)));
      same(run(splitAt(s.raw, [...cuts]), opts), `random cuts ${[...cuts].join(',')}`);
    }
  });
}

test('a head spanning reads, with CRLFCRLF split across them', () => {
  const raw = b('HTTP/1.1 200 OK\r\nx-long: ' + 'v'.repeat(5000) + '\r\ncontent-length: 3\r\n\r\nabc');
  const end = raw.indexOf('\r\n\r\n');
  for (const cut of [end + 1, end + 2, end + 3]) {
    const o = run([raw.subarray(0, 100), raw.subarray(100, cut), raw.subarray(cut)]);
    assert.equal(o.heads[0].headers['x-long'], 'v'.repeat(5000));
    assert.equal(o.body, 'abc');
    assert.equal(o.used, raw.length);
  }
});

test('1xx interim responses are skipped; the final response is the one reported', () => {
  const rec = new Recorder();
  const p = new ResponseParser(rec);
  p.expect();
  const interim = b('HTTP/1.1 100 Continue\r\n\r\n');
  assert.equal(p.execute(interim), interim.length);
  assert.equal(rec.heads.length, 0);
  assert.equal(p.done, false);
  const rest = b('HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  assert.equal(p.execute(rest), rest.length);
  assert.equal(rec.heads.length, 1);
  assert.equal(rec.heads[0].status, 200);
  assert.equal(rec.heads[0].headers['link'], undefined, 'the interim headers are not merged in');
  assert.equal(rec.body, 'ok');
});

test('204, 304 and HEAD answers have no body even with a content-length', () => {
  for (const [raw, noBody] of [
    ['HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n', false],
    ['HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\netag: "x"\r\n\r\n', false],
    ['HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n', true],
    ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n', true],
  ] as const) {
    const buf = b(raw + 'HTTP/1.1 200 OK\r\n'); // the next response's first bytes must not be taken
    const o = run([buf], { noBody });
    assert.equal(o.completions, 1, raw);
    assert.equal(o.body, '', raw);
    assert.equal(o.used, raw.length, raw);
    assert.equal(o.heads[0].keepAlive, true, raw);
  }
});

test('a body with no length runs until the connection closes (finishOnClose) and is not kept alive', () => {
  const rec = new Recorder();
  const p = new ResponseParser(rec);
  p.expect();
  p.execute(b('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npart one, '));
  p.execute(b('part two'));
  assert.equal(p.readsUntilClose, true);
  assert.equal(p.done, false);
  assert.equal(rec.heads[0].keepAlive, false, 'the connection ends the body, so it cannot be reused');
  assert.equal(rec.completions, 0);
  assert.equal(p.finishOnClose(), true);
  assert.equal(rec.completions, 1);
  assert.equal(rec.body, 'part one, part two');
  assert.equal(p.done, true);
});

test('finishOnClose reports a response cut short (content-length, chunked, head)', () => {
  for (const raw of [
    'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabcde',
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nabc',
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n',
    'HTTP/1.1 200 OK\r\ncontent-le',
  ]) {
    const rec = new Recorder();
    const p = new ResponseParser(rec);
    p.expect();
    p.execute(b(raw));
    assert.equal(p.finishOnClose(), false, raw);
    assert.equal(rec.completions, 0, raw);
  }
});

test('transfer-encoding wins over content-length, which is dropped', () => {
  const raw = b('HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
  const o = run([raw]);
  assert.equal(o.body, 'abc');
  assert.equal(o.used, raw.length);
  assert.equal(o.heads[0].headers['content-length'], undefined);
  assert.equal(o.heads[0].keepAlive, true);
});

test('a final coding other than chunked reads until close', () => {
  const rec = new Recorder();
  const p = new ResponseParser(rec);
  p.expect();
  p.execute(b('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\ncontent-length: 3\r\n\r\n3\r\nabc'));
  assert.equal(p.readsUntilClose, true);
  assert.equal(rec.heads[0].keepAlive, false);
  assert.equal(rec.heads[0].headers['content-length'], undefined);
  assert.equal(p.finishOnClose(), true);
  assert.equal(rec.body, '3\r\nabc', 'the bytes are passed on as they are');
});

test('duplicate identical content-length accepted, differing or invalid ones rejected', () => {
  for (const cl of ['content-length: 5\r\ncontent-length: 5', 'content-length: 5, 5', 'Content-Length:  5 ']) {
    const o = run([b(`HTTP/1.1 200 OK\r\n${cl}\r\n\r\nabcde`)]);
    assert.equal(o.body, 'abcde', cl);
    assert.equal(o.heads[0].headers['content-length'], '5', cl);
  }
  for (const cl of [
    'content-length: 5\r\ncontent-length: 6',
    'content-length: 5, 6',
    'content-length: -1',
    'content-length: 0x5',
    'content-length: 5a',
    'content-length: ',
    'content-length: 1234567890123456',
  ]) {
    assert.throws(() => run([b(`HTTP/1.1 200 OK\r\n${cl}\r\n\r\nabcde`)]), ResponseParseError, cl);
  }
});

test('malformed input is refused with ResponseParseError (code KVR_UPSTREAM_PARSE)', () => {
  const bad: Record<string, string> = {
    'not http': 'HTTX/1.1 200 OK\r\n\r\n',
    'http/2 line': 'HTTP/2 200 OK\r\n\r\n',
    'short status line': 'HTTP/1.1 20\r\n\r\n',
    'no space after version': 'HTTP/1.1_200 OK\r\n\r\n',
    'status not 3 digits': 'HTTP/1.1 2000 OK\r\n\r\n',
    'status letters': 'HTTP/1.1 abc OK\r\n\r\n',
    'status below 100': 'HTTP/1.1 099 OK\r\n\r\n',
    'status in exponent form': 'HTTP/1.1 2e2 OK\r\ncontent-length: 0\r\n\r\n',
    'header without colon': 'HTTP/1.1 200 OK\r\nx-broken\r\ncontent-length: 0\r\n\r\n',
    'header with empty name': 'HTTP/1.1 200 OK\r\n: x\r\ncontent-length: 0\r\n\r\n',
    'obs-fold': 'HTTP/1.1 200 OK\r\nx-a: one\r\n two\r\ncontent-length: 0\r\n\r\n',
    'obs-fold with tab': 'HTTP/1.1 200 OK\r\nx-a: one\r\n\ttwo\r\ncontent-length: 0\r\n\r\n',
    'whitespace before colon': 'HTTP/1.1 200 OK\r\ncontent-length : 0\r\n\r\n',
    'tab before colon': 'HTTP/1.1 200 OK\r\ntransfer-encoding\t: chunked\r\n\r\n',
    'bare LF inside a header name': 'HTTP/1.1 200 OK\r\nx-a\nx-b: 1\r\ncontent-length: 0\r\n\r\n',
    'bare LF inside a header value': 'HTTP/1.1 200 OK\r\nx-a: one\nx-b: two\r\ncontent-length: 0\r\n\r\n',
    'bare CR inside a header value': 'HTTP/1.1 200 OK\r\nx-a: one\rtwo\r\ncontent-length: 0\r\n\r\n',
    'NUL inside a header value': 'HTTP/1.1 200 OK\r\nx-a: one\u0000two\r\ncontent-length: 0\r\n\r\n',
    'non-token header name': 'HTTP/1.1 200 OK\r\nx(a): 1\r\ncontent-length: 0\r\n\r\n',
    'bad chunk size': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n',
    'negative chunk size': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n-2\r\nab\r\n0\r\n\r\n',
    'empty chunk size': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\r\nab\r\n0\r\n\r\n',
    'huge chunk size': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1234567890abc\r\nab\r\n0\r\n\r\n',
    'chunk data longer than its size': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n',
    'missing CR after chunk data': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\n0\r\n\r\n',
    'missing LF after chunk data': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\rX0\r\n\r\n',
  };
  for (const [name, raw] of Object.entries(bad)) {
    const buf = b(raw);
    // One shot and byte by byte: the error must not depend on how the bytes arrive.
    for (const pieces of [[buf], bytewise(buf)]) {
      assert.throws(
        () => run(pieces),
        (err: unknown) => err instanceof ResponseParseError && err.code === 'KVR_UPSTREAM_PARSE',
        name,
      );
    }
  }
});

test('an oversize head is refused, whether it arrives at once or in pieces', () => {
  const big = b('HTTP/1.1 200 OK\r\nx-big: ' + 'a'.repeat(2000) + '\r\ncontent-length: 0\r\n\r\n');
  assert.throws(() => run([big], { maxHeaderBytes: 1024 }), /exceeds 1024 bytes/);
  assert.throws(() => run(splitAt(big, [300, 700, 1100, 1500]), { maxHeaderBytes: 1024 }), /exceeds 1024 bytes/);
  // Never terminated: refused once the limit passes, not buffered forever.
  const rec = new Recorder();
  const p = new ResponseParser(rec, 1024);
  p.expect();
  assert.throws(() => {
    for (let i = 0; i < 100; i++) p.execute(b(i === 0 ? 'HTTP/1.1 200 OK\r\nx: ' : 'a'.repeat(100)));
  }, ResponseParseError);
  // Just under the limit is fine.
  assert.equal(run([big], { maxHeaderBytes: 4096 }).completions, 1);
});

test('an oversize chunk-size or trailer line is refused', () => {
  const long = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1;' + 'e'.repeat(9000) + '\r\na\r\n0\r\n\r\n';
  assert.throws(() => run([b(long)]), /line too long/);
  const trailer = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx: ' + 't'.repeat(9000) + '\r\n\r\n';
  assert.throws(() => run([b(trailer)]), /line too long/);
});

test('connection semantics: HTTP/1.1 persistent unless close, HTTP/1.0 only with keep-alive', () => {
  const cases: [string, boolean][] = [
    ['HTTP/1.1 200 OK\r\n', true],
    ['HTTP/1.1 200 OK\r\nconnection: close\r\n', false],
    ['HTTP/1.1 200 OK\r\nConnection: Close\r\n', false],
    ['HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\n', false],
    ['HTTP/1.1 200 OK\r\nconnection: upgrade\r\nconnection: close\r\n', false],
    ['HTTP/1.1 200 OK\r\nconnection: closed\r\n', true],
    ['HTTP/1.1 200 OK\r\nconnection: keep-alive\r\n', true],
    ['HTTP/1.0 200 OK\r\n', false],
    ['HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n', true],
    ['HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n', true],
    ['HTTP/1.0 200 OK\r\nconnection: close\r\n', false],
  ];
  for (const [head, keepAlive] of cases) {
    const o = run([b(head + 'content-length: 1\r\n\r\nx')]);
    assert.equal(o.heads[0].keepAlive, keepAlive, head);
    assert.equal(o.body, 'x');
  }
});

test('keep-alive: timeout=N is parsed', () => {
  assert.equal(parseHead('HTTP/1.1 200 OK\r\nkeep-alive: timeout=5').keepAliveTimeoutS, 5);
  assert.equal(parseHead('HTTP/1.1 200 OK\r\nKeep-Alive: max=100, Timeout = 30').keepAliveTimeoutS, 30);
  assert.equal(parseHead('HTTP/1.1 200 OK\r\nkeep-alive: max=100').keepAliveTimeoutS, undefined);
  assert.equal(parseHead('HTTP/1.1 200 OK').keepAliveTimeoutS, undefined);
});

test('set-cookie stays a list; other repeated headers are joined with ", "', () => {
  const h = parseHead('HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nx-v: one\r\nset-cookie: b=2, c\r\nX-V: two\r\nx-v:three\r\nx-empty:').headers;
  assert.deepEqual(h['set-cookie'], ['a=1; Path=/', 'b=2, c']);
  assert.equal(h['x-v'], 'one, two, three');
  assert.equal(h['x-empty'], '');
  const single = parseHead('HTTP/1.1 200 OK\r\nset-cookie: only=1').headers;
  assert.deepEqual(single['set-cookie'], ['only=1']);
});

test('the status line: reason phrase optional, any 3-digit status, HTTP/1.0 recognised', () => {
  assert.equal(parseHead('HTTP/1.1 200').status, 200);
  assert.equal(parseHead('HTTP/1.1 404 Not Found Here').status, 404);
  assert.equal(parseHead('HTTP/1.1 599 ').status, 599);
  const h10 = parseHead('HTTP/1.0 200 OK');
  assert.equal(h10.keepAlive, false);
});

test('the parser stops at the end of a message: bytes after it are not consumed', () => {
  const first = 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\none';
  const second = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n';
  const third = 'HTTP/1.1 204 No Content\r\n\r\n';
  const buf = b(first + second + third + 'garbage');
  const rec = new Recorder();
  const p = new ResponseParser(rec);
  let pos = 0;
  const lengths: number[] = [];
  for (let i = 0; i < 3; i++) {
    p.expect();
    const n = p.execute(buf.subarray(pos));
    assert.equal(p.done, true);
    lengths.push(n);
    pos += n;
  }
  assert.deepEqual(lengths, [first.length, second.length, third.length]);
  assert.equal(buf.subarray(pos).toString(), 'garbage');
  assert.equal(rec.completions, 3);
  assert.equal(rec.body, 'onetwo');
  assert.deepEqual(
    rec.heads.map((h) => h.status),
    [200, 200, 204],
  );
  // A finished parser takes nothing until told to expect another response.
  assert.equal(p.execute(b('HTTP/1.1 200 OK\r\n')), 0);
});

test('started and done track the response; expect() resets them', () => {
  const rec = new Recorder();
  const p = new ResponseParser(rec);
  assert.equal(p.done, true, 'idle before the first expect()');
  p.expect();
  assert.equal(p.done, false);
  assert.equal(p.started, false);
  p.execute(b('HTTP/1.1 2'));
  assert.equal(p.started, true, 'a partial head counts as started');
  p.execute(b('00 OK\r\ncontent-length: 2\r\n\r\nh'));
  assert.equal(p.started, true);
  p.execute(b('i'));
  assert.equal(p.done, true);
  p.expect();
  assert.equal(p.started, false);
  assert.equal(p.done, false);
  // An interim response is part of the answer too: the server has read the request.
  p.execute(b('HTTP/1.1 100 Continue\r\n\r\n'));
  assert.equal(p.started, true, 'started after an interim response');
  assert.equal(p.done, false);
  p.expect();
  assert.equal(p.started, false);
});

test('body pieces handed on are views of the input (no copy for a whole-buffer body read)', () => {
  const pieces: Buffer[] = [];
  const p = new ResponseParser({ onHead() {}, onBody: (c) => pieces.push(c), onComplete() {} });
  p.expect();
  p.execute(b('HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n'));
  const body = b('12345678');
  p.execute(body);
  assert.equal(pieces.length, 1);
  assert.equal(pieces[0].buffer, body.buffer);
  assert.equal(pieces[0].toString(), '12345678');
});
