// The gateway's HTTP edge over raw loopback sockets: request smuggling shapes refused (llhttp)
// with an OpenAI-style JSON error and the connection closed, nothing of them reaching a pod; head
// and body limits; client timeouts; headers passed through as sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Router } from '../../src/gateway/router.js';
import { COMPLETION, Raw, startPod, startRouterFor, statuses, type FakePod } from './fake-pods.js';

let pod: FakePod;
let router: Router;
let port: number;

before(async () => {
  pod = await startPod();
  router = await startRouterFor([pod], { limits: { maxHeaderBytes: 2048, maxBodyBytes: 1024, headersTimeoutMs: 300, requestTimeoutMs: 600 } });
  port = Number(new URL(router.url).port);
});
after(async () => {
  await router?.close();
  await pod?.close();
});

const post = (extra: string, body = COMPLETION) => `POST /v1/completions HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\n${extra}\r\n${body}`;

/** Each shape a front and a back end could frame differently, or that smuggles bytes upstream. */
const SMUGGLING: [string, string][] = [
  ['content-length and transfer-encoding', post(`content-length: ${COMPLETION.length}\r\ntransfer-encoding: chunked\r\n`)],
  ['transfer-encoding and content-length', post(`transfer-encoding: chunked\r\ncontent-length: ${COMPLETION.length}\r\n`)],
  ['conflicting content-length fields', post(`content-length: ${COMPLETION.length}\r\ncontent-length: 5\r\n`)],
  ['conflicting content-length list', post(`content-length: ${COMPLETION.length}, 5\r\n`)],
  ['obs-fold', post(`content-length: ${COMPLETION.length}\r\nx-a: b\r\n c\r\n`)],
  ['vertical tab before a content-length value', post(`content-length:\v${COMPLETION.length}\r\n`)],
  ['vertical tab after a content-length value', post(`content-length: ${COMPLETION.length}\v\r\n`)],
  ['form feed around a content-length value', post(`content-length: \f${COMPLETION.length}\f\r\n`)],
  ['NBSP around a content-length value', post(`content-length: \xa0${COMPLETION.length}\r\n`)],
  ['NBSP after transfer-encoding chunked', post('transfer-encoding: chunked\xa0\r\n', `${COMPLETION.length.toString(16)}\r\n${COMPLETION}\r\n0\r\n\r\n`)],
  ['control character in a header value', post(`content-length: ${COMPLETION.length}\r\nx-a: b\x01c\r\n`)],
  ['NUL in a header value', post(`content-length: ${COMPLETION.length}\r\nx-a: b\x00c\r\n`)],
  ['bare CR in a header value', post(`content-length: ${COMPLETION.length}\r\nx-a: b\rc\r\n`)],
  ['space before a header colon', post(`content-length : ${COMPLETION.length}\r\n`)],
  ['whitespace after a chunk size', post('transfer-encoding: chunked\r\n', `${COMPLETION.length.toString(16)} \r\n${COMPLETION}\r\n0\r\n\r\n`)],
  ['NUL in a chunk extension', post('transfer-encoding: chunked\r\n', `${COMPLETION.length.toString(16)};a=\x00\r\n${COMPLETION}\r\n0\r\n\r\n`)],
  ['bad chunk size', post('transfer-encoding: chunked\r\n', `zz\r\n${COMPLETION}\r\n0\r\n\r\n`)],
];

test('request smuggling shapes get a 400 JSON error, the connection closes, and no pod sees them', async () => {
  const before = pod.received;
  for (const [what, bytes] of SMUGGLING) {
    const c = await Raw.open(port);
    c.write(bytes);
    const text = await c.closed();
    assert.match(text, /^HTTP\/1\.1 400 /, `${what}: ${JSON.stringify(text.slice(0, 60))}`);
    assert.match(text, /\r\ncontent-type: application\/json\r\n/, what);
    assert.match(text, /\r\nconnection: close\r\n/, what);
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: { message: string; type: string; code: string } };
    assert.equal(body.error.type, 'invalid_request_error', what);
    assert.ok(body.error.message.length > 0, what);
    assert.equal(statuses(text).length, 1, `${what}: exactly one answer`);
  }
  assert.equal(pod.received, before, 'nothing reached the pod');
});

test('a header named constructor (or __proto__) is a plain header, passed to the pod as sent', async () => {
  const c = await Raw.open(port);
  c.write(post(`content-length: ${COMPLETION.length}\r\nconstructor: x1\r\n__proto__: x2\r\nhasOwnProperty: x3\r\n`));
  const text = await c.waitFor((t) => statuses(t).length === 1);
  assert.deepEqual(statuses(text), [200]);
  assert.equal(pod.lastHeaders['constructor'], 'x1');
  assert.equal(pod.lastHeaders['hasownproperty'], 'x3');
  c.destroy();
});

test('a head over maxHeaderBytes gets 431 and the router keeps serving', async () => {
  const c = await Raw.open(port);
  c.write(`GET /health HTTP/1.1\r\nhost: a\r\nx-big: ${'a'.repeat(4096)}\r\n\r\n`);
  const text = await c.closed();
  assert.match(text, /^HTTP\/1\.1 431 /);
  assert.equal((JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: { code: string } }).error.code, 'header_too_large');
  assert.equal((await fetch(`${router.url}/health`)).status, 200);
});

test('a declared body over maxBodyBytes: 413 at once, the body dropped, the connection still usable', async () => {
  const before = pod.received;
  const c = await Raw.open(port);
  c.write(post('content-length: 1500\r\n', 'x'.repeat(1500)) + 'GET /health HTTP/1.1\r\nhost: a\r\n\r\n');
  const text = await c.waitFor((t) => statuses(t).length === 2);
  assert.deepEqual(statuses(text), [413, 200]);
  assert.match(text, /"code":"body_too_large"/);
  assert.equal(pod.received, before);
  c.destroy();
});

test('a chunked body going over maxBodyBytes: 413, the rest dropped, the connection still usable', async () => {
  const c = await Raw.open(port);
  const chunk = 'y'.repeat(600);
  c.write(post('transfer-encoding: chunked\r\n', `258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`) + 'GET /health HTTP/1.1\r\nhost: a\r\n\r\n');
  const text = await c.waitFor((t) => statuses(t).length === 2);
  assert.deepEqual(statuses(text), [413, 200]);
  c.destroy();
});

test('a body far over the limit: 413, then the connection is closed rather than drained', async () => {
  const c = await Raw.open(port);
  c.write(post('content-length: 100000\r\n', 'z'.repeat(5000)));
  const text = await c.closed();
  assert.deepEqual(statuses(text), [413]);
  assert.match(text, /\r\nconnection: close\r\n/i);
});

test('Expect: 100-continue over the limit gets 413 without an interim 100', async () => {
  const c = await Raw.open(port);
  c.write('POST /v1/completions HTTP/1.1\r\nhost: a\r\ncontent-length: 5000\r\nexpect: 100-continue\r\n\r\n');
  const text = await c.closed();
  assert.match(text, /^HTTP\/1\.1 413 /);
  assert.doesNotMatch(text, /100 Continue/);
});

test('an unfinished head gets 408 after headersTimeout; an unfinished body after requestTimeout', async () => {
  const a = await Raw.open(port);
  a.write('GET /health HTTP/1.1\r\nhost: a\r\n');
  const b = await Raw.open(port);
  b.write(post('content-length: 100\r\n', '{"model":'));
  const [ta, tb] = await Promise.all([a.closed(), b.closed()]);
  assert.match(ta, /^HTTP\/1\.1 408 /);
  assert.match(tb, /^HTTP\/1\.1 408 /);
  assert.equal((await fetch(`${router.url}/health`)).status, 200);
});
