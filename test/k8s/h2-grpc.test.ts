// The lean gRPC transport on node:http2, driven by a raw HTTP/2 client: message framing across
// arbitrary DATA boundaries, batching, trailers, and the refusals (compressed, oversized,
// unknown method, undecodable).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import pino from 'pino';
import { startH2GrpcServer, type DuplexCall, type H2GrpcServer } from '../../src/k8s/h2-grpc.js';

const PATH = '/test.Echo/Chat';

function frame(payload: Buffer, flag = 0): Buffer {
  const h = Buffer.alloc(5);
  h[0] = flag;
  h.writeUInt32BE(payload.length, 1);
  return Buffer.concat([h, payload]);
}

interface Result {
  messages: Buffer[];
  trailers: http2.IncomingHttpHeaders;
  headers: http2.IncomingHttpHeaders;
  dataEvents: number;
}

/** Writes `pieces` (raw bytes, any boundaries) on one stream, half-closes, collects everything. */
function call(session: http2.ClientHttp2Session, pieces: Buffer[], path = PATH): Promise<Result> {
  return new Promise((resolve, reject) => {
    const st = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    let dataEvents = 0;
    st.on('response', (h) => (headers = h));
    st.on('trailers', (t) => (trailers = t));
    st.on('data', (c: Buffer) => {
      dataEvents++;
      chunks.push(c);
    });
    st.on('error', reject);
    st.on('close', () => {
      const all = Buffer.concat(chunks);
      const messages: Buffer[] = [];
      for (let off = 0; off + 5 <= all.length; ) {
        const len = all.readUInt32BE(off + 1);
        messages.push(all.subarray(off + 5, off + 5 + len));
        off += 5 + len;
      }
      resolve({ messages, trailers, headers, dataEvents });
    });
    (async () => {
      for (const p of pieces) {
        st.write(p);
        await new Promise((r) => setImmediate(r));
      }
      st.end();
    })().catch(reject);
  });
}

describe('h2-grpc transport', () => {
  let server: H2GrpcServer;
  let session: http2.ClientHttp2Session;
  const seen: string[] = [];

  before(async () => {
    server = await startH2GrpcServer(
      '127.0.0.1',
      0,
      {
        path: PATH,
        decode: (b) => {
          if (b.toString() === 'bad') throw new Error('not decodable');
          return b.toString();
        },
        encode: (m: string) => Buffer.from(m),
        handler: (c: DuplexCall<string, string>) => {
          c.on('data', (m) => {
            seen.push(m);
            // Two answers per message, written in the same turn: they leave in one DATA write.
            c.write(`${m}:1`);
            c.write(`${m}:2`);
          });
          c.on('end', () => c.end());
        },
      },
      pino({ level: 'silent' }),
    );
    session = http2.connect(`http://127.0.0.1:${server.port}`);
  });
  after(async () => {
    session.close();
    await server.close();
  });

  it('reassembles messages split at every byte and batched several to a write', async () => {
    const bytes = Buffer.concat([frame(Buffer.from('alpha')), frame(Buffer.alloc(0)), frame(Buffer.from('x'.repeat(70_000)))]);
    // One byte per write for the first 20 bytes, then the rest in uneven pieces.
    const pieces: Buffer[] = [];
    for (let i = 0; i < 20; i++) pieces.push(bytes.subarray(i, i + 1));
    for (let off = 20; off < bytes.length; off += 9_999) pieces.push(bytes.subarray(off, Math.min(off + 9_999, bytes.length)));
    seen.length = 0;
    const r = await call(session, pieces);
    assert.deepEqual(seen, ['alpha', '', 'x'.repeat(70_000)]);
    assert.deepEqual(r.messages.map(String), ['alpha:1', 'alpha:2', ':1', ':2', `${'x'.repeat(70_000)}:1`, `${'x'.repeat(70_000)}:2`]);
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.headers['content-type'], 'application/grpc+proto');
    assert.equal(r.trailers['grpc-status'], '0');
  });

  it('sends the answers to one message together', async () => {
    const r = await call(session, [frame(Buffer.from('one'))]);
    assert.deepEqual(r.messages.map(String), ['one:1', 'one:2']);
    assert.equal(r.dataEvents, 1, 'both answers in one DATA frame');
  });

  it('refuses compressed, oversized and undecodable messages with a gRPC status', async () => {
    let r = await call(session, [frame(Buffer.from('zz'), 1)]);
    assert.equal(r.trailers['grpc-status'], '13');
    assert.match(decodeURIComponent(String(r.trailers['grpc-message'])), /compressed/);

    const huge = Buffer.alloc(5);
    huge.writeUInt32BE(64 * 1024 * 1024 + 1, 1);
    r = await call(session, [huge]);
    assert.equal(r.trailers['grpc-status'], '8');

    r = await call(session, [frame(Buffer.from('bad'))]);
    assert.equal(r.trailers['grpc-status'], '13');
    assert.match(decodeURIComponent(String(r.trailers['grpc-message'])), /not decodable/);
  });

  it('answers an unknown method with UNIMPLEMENTED', async () => {
    const r = await call(session, [frame(Buffer.from('x'))], '/test.Echo/Other');
    assert.equal(r.headers['grpc-status'], '12');
  });
});
