// Request bodies' JSON without holding the event loop. JSON.parse costs ~50 ms per MB of token
// ids (measured; a 32 MiB body held every other request for 1-2 s), so a body over
// INLINE_JSON_BYTES is parsed in a worker thread, one at a time. What comes back costs the main
// thread little to receive: a token-id prompt as a transferred Uint32Array (no copy), strings
// as flat copies, and at most `maxValues` other JSON values (413 beyond: a structured clone of
// many small values costs about as much as parsing them).
//
// Packing also runs inline, so a request looks the same whichever way it was parsed: `prompt`
// is then a Uint32Array (int[]) or an array of them (int[][]) when every id is a valid token id.
import type { Transferable } from 'node:worker_threads';
import { SerialWorker, type JobError } from '../util/serial-worker.js';
import { badRequest, clientClosed, GatewayError, promptTooLarge, tooManyMessages } from './errors.js';
import { promptUnits } from './request-limits.js';

/** Bodies up to this size are parsed on the event loop (~2-3 ms at worst, a body of token ids). */
export const INLINE_JSON_BYTES = 64 * 1024;

export interface JsonBodyJob {
  /** The body (a string only inline: the thread gets bytes). */
  bytes: Uint8Array | string;
  maxValues: number;
  /**
   * Checked before the values, so a long chat or prompt gets its own error (request-limits.ts),
   * and before anything goes back to the main thread, whose copy of the strings costs too.
   */
  maxMessages: number;
  maxPromptChars: number;
  /** Pack a completions `prompt` of token ids into Uint32Arrays. */
  packPrompt: boolean;
}

export const tooManyValues = (max: number) =>
  new GatewayError(413, `the request body has more than ${max} JSON values; this router accepts at most ${max} (token ids not counted)`, 'request_too_large_error', 'too_many_values');

/** The token ids of `a` as a Uint32Array; 400 when an element is not a token id (as parse.ts's copy says). */
function packIds(a: unknown[]): Uint32Array {
  const out = new Uint32Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const t = a[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > 0xffffffff) {
      throw badRequest(`prompt token ${i} is not a token id (a non-negative integer)`, 'invalid_prompt', 'prompt');
    }
    out[i] = t;
  }
  return out;
}

/** `body.prompt` int[] / int[][] -> Uint32Array(s), in place; returns their buffers. Other shapes are left to parse.ts. */
function packPrompt(b: Record<string, unknown>): ArrayBuffer[] {
  const p = b.prompt;
  if (!Array.isArray(p) || p.length === 0) return [];
  if (typeof p[0] === 'number') {
    const ids = packIds(p);
    b.prompt = ids;
    return [ids.buffer as ArrayBuffer];
  }
  if (!p.every((x) => Array.isArray(x) && typeof x[0] === 'number')) return [];
  const packed = p.map((x: unknown[]) => packIds(x));
  b.prompt = packed;
  return packed.map((x) => x.buffer as ArrayBuffer);
}

/** Throws 413 when `v` holds more than `max` JSON values (a typed array counts one); stops at the cap. */
export function checkValueCount(v: unknown, max: number): void {
  let n = 0;
  const stack: unknown[] = [v];
  while (stack.length > 0) {
    const x = stack.pop();
    if (++n > max) throw tooManyValues(max);
    if (x === null || typeof x !== 'object' || ArrayBuffer.isView(x)) continue;
    if (Array.isArray(x)) {
      if (n + x.length > max) throw tooManyValues(max);
      for (let i = 0; i < x.length; i++) stack.push(x[i]);
    } else for (const k in x) stack.push((x as Record<string, unknown>)[k]);
  }
}

/** Parse, pack and count: what the worker thread runs, and the main thread for small bodies. */
export function decodeJsonBody(job: JsonBodyJob): { result: unknown; transfer: Transferable[] } {
  const b = job.bytes;
  let body: unknown;
  try {
    body = JSON.parse(typeof b === 'string' ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8'));
  } catch (err) {
    throw badRequest(`request body is not valid JSON: ${(err as Error).message}`, 'invalid_json');
  }
  let transfer: ArrayBuffer[] = [];
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const o = body as Record<string, unknown>;
    if (Array.isArray(o.messages)) {
      if (o.messages.length > job.maxMessages) throw tooManyMessages(o.messages.length, job.maxMessages);
      if (promptUnits([o.messages, o.tools, o.chat_template_kwargs], job.maxPromptChars) > job.maxPromptChars) throw promptTooLarge('messages', job.maxPromptChars);
    }
    if (job.packPrompt) transfer = packPrompt(o);
    // Token ids are held to the model's token cap on the main thread (400 context_length_exceeded).
    if (transfer.length === 0 && o.prompt !== undefined && promptUnits(o.prompt, job.maxPromptChars) > job.maxPromptChars) throw promptTooLarge('prompt', job.maxPromptChars);
  }
  // A body can hold more values than the cap only if it has two bytes per value ("0,").
  if (b.length > 2 * job.maxValues) checkValueCount(body, job.maxValues);
  return { result: body, transfer };
}

export function jobErrorOf(e: unknown): JobError {
  if (e instanceof GatewayError) return { message: e.message, status: e.status, code: e.code, param: e.param };
  return { message: (e as Error).message ?? String(e), status: 500 };
}

function errorOfJob(e: JobError): GatewayError {
  if (e.status === 413) return new GatewayError(413, e.message, 'request_too_large_error', e.code ?? 'request_too_large', e.param ?? null);
  if (e.status === 400) return badRequest(e.message, e.code, e.param ?? null);
  return new GatewayError(500, `could not parse the request body: ${e.message}`, 'internal_error', 'internal');
}

const TS = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(TS ? './json-body-worker.ts' : './json-body-worker.js', import.meta.url).href;
let worker: SerialWorker<JsonBodyJob, unknown> | undefined;

/** The shared parse thread (created on first use; unref'd). */
export function jsonBodyWorker(): SerialWorker<JsonBodyJob, unknown> {
  worker ??= new SerialWorker<JsonBodyJob, unknown>(WORKER_URL, errorOfJob, clientClosed);
  return worker;
}

/**
 * The JSON of a request body: inline up to INLINE_JSON_BYTES, else in the worker thread (bytes
 * in a SharedArrayBuffer are shared with it, others copied; `signal` abandons the parse). Throws GatewayError 400 (not JSON),
 * 413 (too many values) or 499 (aborted).
 */
export type BodyCaps = Pick<JsonBodyJob, 'maxValues' | 'maxMessages' | 'maxPromptChars'>;

export async function parseJsonBody(bytes: Uint8Array | string, caps: BodyCaps, packPrompt: boolean, signal?: AbortSignal): Promise<unknown> {
  if (bytes.length <= INLINE_JSON_BYTES) return decodeJsonBody({ bytes, ...caps, packPrompt }).result;
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  // Bytes in shared memory (readBody puts large bodies there) reach the thread without a copy;
  // others are copied to a buffer the thread owns (the caller still forwards the original upstream).
  if (b.buffer instanceof SharedArrayBuffer) return jsonBodyWorker().run({ bytes: b, ...caps, packPrompt }, [], signal);
  const copy = new Uint8Array(b);
  return jsonBodyWorker().run({ bytes: copy, ...caps, packPrompt }, [copy.buffer], signal);
}
