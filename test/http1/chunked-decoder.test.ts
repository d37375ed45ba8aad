// ChunkedDecoder on exact byte strings: sizes, extensions, trailers, every split point, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkedDecoder, ChunkedError } from '../../src/http1/chunked-decoder.js';

interface Decoded {
  data: Buffer;
  /** Position after the last byte consumed in the last piece fed. */
  end: number;
  done: boolean;
  /** Data pieces handed out. */
  pieces: number;
}

/** Feeds `pieces` in order to one decoder and collects what it hands out. */
function decode(...pieces: Buffer[]): Decoded {
  const d = new ChunkedDecoder();
  const out: Buffer[] = [];
  let end = 0;
  for (const p of pieces) end = d.feed(p, 0, (piece) => out.push(Buffer.from(piece)));
  return { data: Buffer.concat(out), end, done: d.done, pieces: out.length };
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

test('hex sizes in upper and lower case, several chunks', () => {
  const body = 'a'.repeat(26) + 'b'.repeat(255) + 'c'.repeat(1);
  const coded = `1a\r\n${'a'.repeat(26)}\r\nFF\r\n${'b'.repeat(255)}\r\n01\r\nc\r\n0\r\n\r\n`;
  const r = decode(b(coded));
  assert.equal(r.data.toString('latin1'), body);
  assert.equal(r.done, true);
  assert.equal(r.end, coded.length);
  // Mixed case in one size.
  const r2 = decode(b(`aB\r\n${'x'.repeat(0xab)}\r\n0\r\n\r\n`));
  assert.equal(r2.data.length, 0xab);
  assert.equal(r2.done, true);
});

test('data pieces are views of the input, not copies', () => {
  const input = b('5\r\nhello\r\n0\r\n\r\n');
  const d = new ChunkedDecoder();
  const seen: Buffer[] = [];
  d.feed(input, 0, (p) => seen.push(p));
  assert.equal(seen.length, 1);
  assert.equal(seen[0].buffer, input.buffer);
  assert.equal(seen[0].byteOffset, input.byteOffset + 3);
});

test('chunk extensions are read and dropped', () => {
  const coded = '5;name=value\r\nhello\r\n6;a;b="q;x"\r\n world\r\n0;last\r\n\r\n';
  const r = decode(b(coded));
  assert.equal(r.data.toString(), 'hello world');
  assert.equal(r.done, true);
  assert.equal(r.end, coded.length);
});

test('trailer fields are read and dropped; the decoder stops at the end of the coding', () => {
  const coded = '3\r\nabc\r\n0\r\nx-checksum: 123\r\nx-other: y\r\n\r\n';
  const next = 'GET / HTTP/1.1\r\n\r\n';
  const input = b(coded + next);
  const r = decode(input);
  assert.equal(r.data.toString(), 'abc');
  assert.equal(r.done, true);
  assert.equal(r.end, coded.length, 'stops right after the final CRLF, leaving the next message');
  // Feeding after done consumes nothing.
  const d = new ChunkedDecoder();
  const end = d.feed(input, 0, () => {});
  assert.equal(d.feed(input, end, () => assert.fail('no data after done')), end);
});

test('feed honours a start position', () => {
  const prefix = 'JUNK';
  const input = b(prefix + '2\r\nok\r\n0\r\n\r\n');
  const d = new ChunkedDecoder();
  const out: Buffer[] = [];
  const end = d.feed(input, prefix.length, (p) => out.push(p));
  assert.equal(Buffer.concat(out).toString(), 'ok');
  assert.equal(end, input.length);
  assert.equal(d.done, true);
});

test('an empty body (only the last chunk) is done with no data', () => {
  const r = decode(b('0\r\n\r\n'));
  assert.equal(r.done, true);
  assert.equal(r.data.length, 0);
  assert.equal(r.pieces, 0);
});

test('not done until the final CRLF after the trailers', () => {
  for (const partial of ['5\r\nhello\r\n', '5\r\nhello\r\n0\r\n', '5\r\nhello\r\n0\r\nx: y\r\n', '5\r\nhello\r\n0\r\n\r']) {
    const r = decode(b(partial));
    assert.equal(r.done, false, JSON.stringify(partial));
    assert.equal(r.data.toString(), 'hello');
  }
});

// The third chunk's data holds a CRLF of its own.
const SAMPLE = '4;ext=1\r\nWiki\r\nA\r\npedia in c\r\n0f\r\nhunks.\r\nfinal!!\r\n0\r\ntrailer-a: 1\r\ntrailer-b: two\r\n\r\n';
const SAMPLE_BODY = 'Wikipedia in chunks.\r\nfinal!!';

test('the same body whatever the split point (two pieces)', () => {
  assert.equal(SAMPLE_BODY.length, 0x4 + 0xa + 0x0f);
  const whole = b(SAMPLE);
  for (let i = 1; i < whole.length; i++) {
    const r = decode(whole.subarray(0, i), whole.subarray(i));
    assert.equal(r.data.toString('latin1'), SAMPLE_BODY, `split at ${i}`);
    assert.equal(r.done, true, `split at ${i}`);
    assert.equal(r.end, whole.length - i, `split at ${i}`);
  }
});

test('the same body whatever two split points (three pieces)', () => {
  const whole = b(SAMPLE);
  for (let i = 1; i < whole.length - 1; i++) {
    for (let j = i + 1; j < whole.length; j++) {
      const r = decode(whole.subarray(0, i), whole.subarray(i, j), whole.subarray(j));
      assert.equal(r.data.toString('latin1'), SAMPLE_BODY, `split at ${i},${j}`);
      assert.equal(r.done, true);
    }
  }
});

test('one byte at a time', () => {
  const whole = b(SAMPLE);
  const pieces: Buffer[] = [];
  for (let i = 0; i < whole.length; i++) pieces.push(whole.subarray(i, i + 1));
  const r = decode(...pieces);
  assert.equal(r.data.toString('latin1'), SAMPLE_BODY);
  assert.equal(r.done, true);
});

function decodeError(coded: string, pieces = 1): Error {
  const whole = b(coded);
  const d = new ChunkedDecoder();
  const step = Math.ceil(whole.length / pieces);
  try {
    for (let i = 0; i < whole.length; i += step) d.feed(whole.subarray(i, i + step), 0, () => {});
  } catch (err) {
    assert.ok(err instanceof ChunkedError, `ChunkedError, got ${String(err)}`);
    return err;
  }
  assert.fail(`no error for ${JSON.stringify(coded)}`);
}

test('invalid chunk sizes are errors', () => {
  for (const bad of ['zz\r\n', 'g\r\nx\r\n0\r\n\r\n', '-1\r\n', '0x5\r\nhello\r\n', '\r\n', ' 5\r\nhello\r\n', '+5\r\nhello\r\n', '1234567890abc\r\n', ';ext\r\n']) {
    const err = decodeError(bad);
    assert.match(err.message, /invalid chunk size/, JSON.stringify(bad));
  }
  // Split just before the line's end: the same error.
  assert.match(decodeError('zz\r\n', 4).message, /invalid chunk size/);
});

test('a size line or trailer not ended by CRLF is an error', () => {
  assert.match(decodeError('5\nhello\r\n0\r\n\r\n').message, /CRLF/);
  assert.match(decodeError('5\r\nhello\r\n0\r\nx: y\n\r\n').message, /CRLF/);
  assert.match(decodeError('5\r\nhello\r\n0\n\r\n').message, /CRLF/);
});

test('chunk data not followed by CRLF is an error', () => {
  assert.match(decodeError('5\r\nhelloX\r\n0\r\n\r\n').message, /missing CRLF after chunk data/);
  assert.match(decodeError('5\r\nhello\rX0\r\n\r\n').message, /missing CRLF after chunk data/);
  assert.match(decodeError('5\r\nhello\n0\r\n\r\n').message, /missing CRLF after chunk data/);
  // The same when the data and the bad byte arrive separately.
  const d = new ChunkedDecoder();
  d.feed(b('5\r\nhel'), 0, () => {});
  d.feed(b('lo'), 0, () => {});
  assert.throws(() => d.feed(b('!'), 0, () => {}), ChunkedError);
});

test('a line longer than 8 KiB is refused, even arriving in pieces without a LF', () => {
  assert.match(decodeError(`5;${'x'.repeat(9000)}\r\nhello\r\n0\r\n\r\n`).message, /line too long/);
  assert.match(decodeError(`5\r\nhello\r\n0\r\nx: ${'y'.repeat(9000)}\r\n\r\n`).message, /line too long/);
  // Arriving 1 KiB at a time with no LF yet: refused once the line passes the limit.
  const d = new ChunkedDecoder();
  const piece = b('1'.repeat(1024));
  let threw = false;
  let fed = 0;
  try {
    for (; fed < 20; fed++) d.feed(piece, 0, () => {});
  } catch (err) {
    threw = err instanceof ChunkedError;
  }
  assert.ok(threw);
  assert.ok(fed >= 8 && fed <= 9, `refused after ${fed} KiB`);
  // A long but allowed extension passes.
  const r = decode(b(`5;${'x'.repeat(8000)}\r\nhello\r\n0\r\n\r\n`));
  assert.equal(r.data.toString(), 'hello');
});
