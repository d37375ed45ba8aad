// Test helpers: the embedded stack (router + simulated pods on loopback, free ports) with the
// router's log lines captured, and a JSON POST helper.
import pino from 'pino';
import { Writable } from 'node:stream';
import { startEmbedded, type Embedded, type EmbeddedOptions } from '../../src/gateway/embedded.js';

export const MODEL = 'Qwen/Qwen3-0.6B';

export interface Stack extends Embedded {
  logs: Record<string, unknown>[];
}

export async function startStack(o: Partial<EmbeddedOptions> = {}): Promise<Stack> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const emb = await startEmbedded({ port: 0, zmqPort: 0, timeScale: 0.02, processMetrics: false, logger, metricsBeatMs: 200, ...o });
  return Object.assign(emb, { logs });
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `fn` returns true (polling), or fails after `ms`. */
export async function until(fn: () => boolean | Promise<boolean>, ms = 3000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export const LONG_PROMPT =
  'You are a careful assistant. Summarise the following report about the migration of a large ' +
  'e-commerce platform from a monolith to services, listing the three biggest risks, the order in ' +
  'which the teams should move, and the metrics they should watch during the first month. ';
