// Mooncake-style trace replay (FAST'25 traces; aiperf `mooncake_trace`): one JSON object per
// line with `timestamp` (ms), `input_length`, `output_length`, `hash_ids`. Each hash id stands for
// one block of `traceBlockSize` (512) tokens; two requests that share a hash id share those tokens.
// We synthesize each block's tokens deterministically from (seed, hash id), so shared hash ids
// become shared token prefixes the engine can actually cache.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { hashSeed, joinTokens, randomTokens } from '../rng.js';
import type { BenchRequest, Workload } from './types.js';

export interface TraceRecord {
  timestamp: number;
  input_length: number;
  output_length: number;
  hash_ids: number[];
}

export interface TraceParams {
  /** JSONL text or a path (one of them). */
  file?: string;
  text?: string;
  seed: number;
  /** Tokens per hash id (Mooncake: 512). */
  traceBlockSize?: number;
  /** Replay speed: 2 = twice as fast (timestamps halved). aiperf's "0.8x speed" is 0.8. */
  speed?: number;
  /** Use at most this many records. */
  maxRequests?: number;
  /** Clamp output lengths (long decodes dominate wall time on a small machine). */
  maxOutputLen?: number;
}

export function parseTrace(text: string, source = 'trace'): TraceRecord[] {
  const out: TraceRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (err) {
      throw new Error(`${source}:${i + 1}: not JSON (${(err as Error).message})`, { cause: err });
    }
    const r = rec as Partial<TraceRecord>;
    const bad = (what: string) => new Error(`${source}:${i + 1}: ${what}`);
    if (typeof r !== 'object' || r === null) throw bad('expected an object');
    if (typeof r.timestamp !== 'number' || !(r.timestamp >= 0)) throw bad('timestamp must be a number >= 0 (ms)');
    if (!Number.isInteger(r.input_length) || (r.input_length as number) < 1) throw bad('input_length must be a positive integer');
    if (!Number.isInteger(r.output_length) || (r.output_length as number) < 1) throw bad('output_length must be a positive integer');
    if (!Array.isArray(r.hash_ids) || !r.hash_ids.every((h) => Number.isInteger(h))) throw bad('hash_ids must be an array of integers');
    out.push({ timestamp: r.timestamp, input_length: r.input_length as number, output_length: r.output_length as number, hash_ids: r.hash_ids });
  }
  if (out.length === 0) throw new Error(`${source}: no records`);
  return out;
}

/** Upper bound on a decompressed trace: the bundled ones are 3 MB and 1 MB. */
const MAX_TRACE_BYTES = 256 * 1024 * 1024;

/** A trace file's text; `.gz` files are decompressed (bounded). */
export function readTraceFile(file: string): string {
  const raw = readFileSync(file);
  if (!file.endsWith('.gz')) return raw.toString('utf8');
  return gunzipSync(raw, { maxOutputLength: MAX_TRACE_BYTES }).toString('utf8');
}

export function traceWorkload(p: TraceParams): Workload {
  const text = p.text ?? (p.file ? readTraceFile(p.file) : undefined);
  if (text === undefined) throw new Error('trace: give --trace <file.jsonl>');
  let records = parseTrace(text, p.file ?? 'trace');
  records.sort((a, b) => a.timestamp - b.timestamp);
  if (p.maxRequests !== undefined) records = records.slice(0, p.maxRequests);
  const bs = p.traceBlockSize ?? 512;
  const speed = p.speed ?? 1;
  if (!(speed > 0)) throw new Error('trace: speed must be > 0');
  const t0 = records[0].timestamp;
  const blockCache = new Map<number, number[]>();
  const blockTokens = (h: number) => {
    let b = blockCache.get(h);
    if (!b) blockCache.set(h, (b = randomTokens(hashSeed(p.seed, 'hash_id', h), bs)));
    return b;
  };

  const take = (count: number): BenchRequest[] => {
    const n = Math.min(count, records.length);
    const out: BenchRequest[] = [];
    for (let id = 0; id < n; id++) {
      const r = records[id];
      let prompt: number[] = [];
      for (const h of r.hash_ids) {
        if (prompt.length >= r.input_length) break;
        prompt = prompt.concat(blockTokens(h));
      }
      if (prompt.length > r.input_length) prompt = prompt.slice(0, r.input_length);
      else if (prompt.length < r.input_length) {
        // More tokens than hash ids cover: a private, unshared tail.
        prompt = prompt.concat(randomTokens(hashSeed(p.seed, 'tail', id), r.input_length - prompt.length));
      }
      const maxTokens = p.maxOutputLen ? Math.min(r.output_length, p.maxOutputLen) : r.output_length;
      out.push({ id, prompt: joinTokens(prompt), maxTokens, group: `h${r.hash_ids[0] ?? 'none'}`, at: (r.timestamp - t0) / 1000 / speed });
    }
    return out;
  };
  return {
    kind: 'trace',
    params: { file: p.file, records: records.length, traceBlockSize: bs, speed, maxOutputLen: p.maxOutputLen, seed: p.seed },
    take,
    size: records.length,
  };
}
