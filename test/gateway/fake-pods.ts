// Minimal vLLM-shaped pods on loopback whose failure mode each test sets, a router in front of
// them, and a raw-socket client for exact bytes. Shared by the HTTP edge and abuse tests.
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import pino from 'pino';
import { startRouter, type Router, type RouterOptions } from '../../src/gateway/router.js';
import { until } from './helpers.js';

export type PodMode =
  | 'ok'
  /** 500 with a JSON error body. */
  | 'status500'
  | 'status503'
  /** Reads the request, then resets the connection without answering. */
  | 'reset'
  /** Reads the request and never answers. */
  | 'hang'
  /** Sends the head and one SSE chunk, then resets. */
  | 'partial-reset'
  /** Answers slowly (SSE, `chunks` chunks `gapMs` apart). */
  | 'stream';

export interface FakePod {
  server: Server;
  address: string;
  port: number;
  mode: PodMode;
  /** Inference requests received (any mode). */
  received: number;
  /** Inference requests answered 200 in full. */
  served: number;
  /** Headers of the last inference request. */
  lastHeaders: Record<string, string | string[] | undefined>;
  /** Called with each inference request's socket as it arrives (e.g. to kill the pod). */
  onRequest?: (socket: Socket) => void;
  close(): Promise<void>;
}

const METRICS = 'vllm:num_requests_waiting{engine="0"} 0\nvllm:num_requests_running{engine="0"} 0\nvllm:kv_cache_usage_perc{engine="0"} 0.1\n';

export async function startPod(port = 0, model = 'm'): Promise<FakePod> {
  const pod = { mode: 'ok' as PodMode, received: 0, served: 0, lastHeaders: {} } as FakePod;
  pod.server = createServer({ keepAlive: true }, (req, res) => {
    if (req.url === '/metrics') return void res.end(METRICS);
    if (req.url === '/v1/models') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ id: model }] }));
    pod.received++;
    pod.lastHeaders = req.headers;
    pod.onRequest?.(req.socket);
    req.resume();
    req.on('end', () => {
      switch (pod.mode) {
        case 'hang':
          return;
        case 'reset':
          req.socket.resetAndDestroy();
          return;
        case 'status500':
        case 'status503': {
          const status = pod.mode === 'status500' ? 500 : 503;
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `pod says ${status}`, type: 'InternalServerError', code: status } }));
          return;
        }
        case 'partial-reset':
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('data: {"i":0}\n\n', () => setTimeout(() => req.socket.resetAndDestroy(), 20));
          return;
        case 'stream': {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          let i = 0;
          const t = setInterval(() => {
            if (i === 3) {
              clearInterval(t);
              pod.served++;
              res.end('data: [DONE]\n\n');
              return;
            }
            res.write(`data: {"i":${i++}}\n\n`);
          }, 20);
          res.on('close', () => clearInterval(t));
          return;
        }
        default: {
          const body = JSON.stringify({ id: 'x', object: 'text_completion', choices: [{ index: 0, text: 'hi' }], usage: { prompt_tokens: 3, completion_tokens: 1 } });
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
          pod.served++;
        }
      }
    });
  });
  await new Promise<void>((r) => pod.server.listen(port, '127.0.0.1', r));
  pod.port = (pod.server.address() as AddressInfo).port;
  pod.address = `127.0.0.1:${pod.port}`;
  pod.close = () =>
    new Promise<void>((r) => {
      pod.server.closeAllConnections();
      pod.server.close(() => r());
    });
  return pod;
}

export async function startRouterFor(pods: FakePod[], o: Partial<RouterOptions> = {}): Promise<Router> {
  const r = await startRouter({
    endpoints: pods.map((p) => ({ address: p.address })),
    port: 0,
    logger: pino({ level: 'silent' }),
    processMetrics: false,
    config: { plugins: [{ type: 'queue-scorer' }] },
    ...o,
  });
  await r.pool.waitReady(pods.length);
  for (const p of pods) await until(() => !!r.pool.get(p.address)!.models, 10_000, 'models');
  return r;
}

export const COMPLETION = JSON.stringify({ model: 'm', prompt: 'hello', max_tokens: 1 });

/** A raw client socket: exact bytes out, everything received kept. */
export class Raw {
  buf = Buffer.alloc(0);
  ended = false;
  private waiters: (() => void)[] = [];
  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static open(port: number): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new Raw(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  write(s: string | Buffer): void {
    this.socket.write(s);
  }

  /** Waits until `pred(text so far)` or the connection closed. */
  async waitFor(pred: (text: string) => boolean): Promise<string> {
    while (!pred(this.buf.toString('latin1')) && !this.ended) await new Promise<void>((r) => this.waiters.push(r));
    return this.buf.toString('latin1');
  }

  /** Resolves when the server closed the connection. */
  closed(): Promise<string> {
    return this.waitFor(() => false);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Status codes of the complete HTTP/1.1 answers in `text` (content-length or chunked), skipping 1xx. */
export function statuses(text: string): number[] {
  const out: number[] = [];
  let at = 0;
  for (;;) {
    const head = text.indexOf('\r\n\r\n', at);
    if (head < 0) return out;
    const m = /^HTTP\/1\.1 (\d{3})/.exec(text.slice(at));
    if (!m) return out;
    const status = Number(m[1]);
    const headText = text.slice(at, head);
    const len = /\r\ncontent-length: (\d+)/i.exec(headText);
    let end = head + 4 + (len ? Number(len[1]) : 0);
    if (/\r\ntransfer-encoding: chunked/i.test(headText)) {
      // Our answers' chunk data never holds this terminator.
      const term = text.indexOf('\r\n0\r\n\r\n', head);
      if (term < 0) return out;
      end = term + 7;
    }
    if (end > text.length) return out;
    if (status >= 200) out.push(status);
    at = end;
  }
}
