// HTTP attacks for `npm run bench:abuse` (see types.ts). Each runs on loopback against the
// router's HTTP port until its time is up or the bench aborts it, bounded in connections and
// bytes, and closes everything it opened. Pod faults (500s, resets, kills, hangs) need control
// of the pods and are covered by test/gateway/abuse-http.test.ts.
import { connect, type Socket } from 'node:net';
import type { AbuseTarget, Attack } from './types.js';

function portOf(target: AbuseTarget): { host: string; port: number } {
  const u = new URL(target.routerUrl);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) };
}

function open(target: AbuseTarget): Promise<Socket | null> {
  const { host, port } = portOf(target);
  return new Promise((resolve) => {
    const s = connect(port, host, () => resolve(s));
    s.on('error', () => resolve(null));
  });
}

/** Resolves after `ms` or when `signal` aborts, whichever comes first. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

const until = (durationMs: number) => {
  const end = Date.now() + durationMs;
  return (signal: AbortSignal) => !signal.aborted && Date.now() < end;
};

function completion(model: string, prompt: string): string {
  const body = JSON.stringify({ model, prompt, max_tokens: 4 });
  return `POST /v1/completions HTTP/1.1\r\nhost: router\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

const pipeliner: Attack = {
  name: 'pipeline-no-read',
  description: '8 connections pipeline GET /health as fast as the router takes them and never read an answer',
  async run(target, signal, durationMs) {
    const live = until(durationMs);
    const batch = Buffer.from('GET /health HTTP/1.1\r\nhost: router\r\n\r\n'.repeat(4000));
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        const s = await open(target);
        if (!s) continue;
        s.pause();
        sockets.push(s);
      }
      // Write while the router reads; at most 1 GiB in all.
      let sent = 0;
      while (live(signal) && sent < 1 << 30) {
        let wrote = false;
        for (const s of sockets) {
          if (s.destroyed || s.writableNeedDrain) continue;
          s.write(batch);
          sent += batch.length;
          wrote = true;
        }
        await sleep(wrote ? 1 : 50, signal);
      }
    } finally {
      for (const s of sockets) s.destroy();
    }
  },
};

const halfClose: Attack = {
  name: 'half-close',
  description: '4 clients in a loop: a completion request, then FIN, then read the answer',
  async run(target, signal, durationMs) {
    const live = until(durationMs);
    const one = async () => {
      const s = await open(target);
      if (!s) return;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => s.destroy(), 10_000);
        s.on('close', () => {
          clearTimeout(t);
          resolve();
        });
        s.on('data', () => {});
        s.end(completion(target.model, 'half-closed client asks a question'));
      });
    };
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (live(signal)) await one();
      }),
    );
  },
};

const connectionFlood: Attack = {
  name: 'connection-flood',
  description: 'opens up to 4,000 idle connections (beyond a small cap they are closed at accept) and holds them',
  async run(target, signal, durationMs) {
    const live = until(durationMs);
    const sockets: Socket[] = [];
    try {
      while (live(signal) && sockets.length < 4000) {
        const batch = await Promise.all(Array.from({ length: 100 }, () => open(target)));
        for (const s of batch) if (s) sockets.push(s);
        await sleep(20, signal);
      }
      while (live(signal)) await sleep(100, signal);
    } finally {
      for (const s of sockets) s.destroy();
    }
  },
};

const slowloris: Attack = {
  name: 'slowloris',
  description: '500 connections each sending one header byte every 200 ms, never finishing the head',
  async run(target, signal, durationMs) {
    const live = until(durationMs);
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 500 && live(signal); i++) {
        const s = await open(target);
        if (s) {
          s.on('data', () => {});
          s.write('POST /v1/completions HTTP/1.1\r\nhost: router\r\nx-a: ');
          sockets.push(s);
        }
      }
      while (live(signal)) {
        for (const s of sockets) if (!s.destroyed) s.write('a');
        await sleep(200, signal);
      }
    } finally {
      for (const s of sockets) s.destroy();
    }
  },
};

/** Request shapes llhttp refuses: each should cost the router one 400 and a closed connection. */
const MALFORMED = [
  'POST /v1/completions HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
  'POST /v1/completions HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!',
  'POST /v1/completions HTTP/1.1\r\ncontent-length:\v5\r\n\r\nhello',
  'GET /health HTTP/1.1\r\nx-a: b\r\n c\r\n\r\n',
  'GET /health HTTP/1.1\r\nx-a: b\x01c\r\n\r\n',
  'POST /v1/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n',
  'POST /v1/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5;a=\x00\r\nhello\r\n0\r\n\r\n',
  `GET /health HTTP/1.1\r\nx-big: ${'a'.repeat(64 * 1024)}\r\n\r\n`,
];

const malformed: Attack = {
  name: 'malformed-requests',
  description: '4 clients sending smuggling shapes and oversized heads in a loop (each refused, connection closed)',
  async run(target, signal, durationMs) {
    const live = until(durationMs);
    let i = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (live(signal)) {
          const s = await open(target);
          if (!s) {
            await sleep(10, signal);
            continue;
          }
          await new Promise<void>((resolve) => {
            const t = setTimeout(() => s.destroy(), 5_000);
            s.on('close', () => {
              clearTimeout(t);
              resolve();
            });
            s.on('data', () => {});
            s.write(MALFORMED[i++ % MALFORMED.length]);
          });
        }
      }),
    );
  },
};

const oversizedBodies: Attack = {
  name: 'oversized-bodies',
  description: '2 clients posting 1 GiB declared bodies and streaming 1 MiB chunks until the router cuts them',
  async run(target, signal, durationMs) {
    const live = until(durationMs);
    const chunk = Buffer.alloc(1 << 20, 0x61);
    await Promise.all(
      Array.from({ length: 2 }, async () => {
        while (live(signal)) {
          const s = await open(target);
          if (!s) {
            await sleep(10, signal);
            continue;
          }
          s.on('data', () => {});
          s.write(`POST /v1/completions HTTP/1.1\r\nhost: router\r\ncontent-type: application/json\r\ncontent-length: ${1 << 30}\r\n\r\n`);
          // At most 256 MiB per connection; the router answers 413 and closes long before.
          for (let n = 0; n < 256 && !s.destroyed && live(signal); n++) {
            if (!s.write(chunk)) await Promise.race([new Promise((r) => s.once('drain', r)), new Promise((r) => s.once('close', r)), sleep(1000, signal)]);
          }
          s.destroy();
        }
      }),
    );
  },
};

export const httpAttacks: Attack[] = [pipeliner, halfClose, connectionFlood, slowloris, malformed, oversizedBodies];
