// Decodes a vLLM KVEventBatch payload of any version: batch as [ts, events(, rank)] or as a
// map; events as tag-first arrays of any length (6..12 for BlockStored, missing trailing
// fields = nil, extra ones ignored) or maps keyed by "type"; hashes as uint, negative int
// or bytes. A bad event is skipped and reported; only a bad batch envelope throws.
// The subscriber reads only the envelope on arrival (peekEventBatch) and decodes the rest when
// the batch's turn comes (decodeCheckedBatch), so queued batches stay bytes.
import { Decoder } from '@msgpack/msgpack';
import type { AllBlocksCleared, BlockRemoved, BlockStored, DecodedBatch, KvEvent } from './types.js';
import { checkMsgpack, GuardError, type GuardLimits } from './msgpack-guard.js';
import { fastDecodeBatch } from './fast-decode.js';

/** Why a payload was rejected: a guard kind (msgpack-guard.ts), 'msgpack' or 'envelope'. */
export type DecodeErrorKind = GuardError['kind'] | 'msgpack' | 'envelope' | 'field';

export class DecodeError extends Error {
  override name = 'DecodeError';
  constructor(
    message: string,
    readonly kind: DecodeErrorKind = 'field',
  ) {
    super(message);
  }
}

// checkMsgpack has already bounded every container by the bytes that fill it; these limits
// are a second line.
const decoder = new Decoder({ useBigInt64: true, maxStrLength: 1 << 20, maxBinLength: 1 << 20, maxArrayLength: 1 << 24, maxMapLength: 1 << 16, maxExtLength: 0 });

const U64 = 0xffffffffffffffffn;

/** A block hash as uint64: ints (two's complement for negatives) or the last 8 bytes of a digest, big-endian. */
export function normalizeHash(v: unknown): bigint {
  if (typeof v === 'bigint') return v & U64;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new DecodeError(`block hash is not an integer: ${v}`);
    return BigInt(v) & U64;
  }
  if (v instanceof Uint8Array) {
    if (v.length === 0) throw new DecodeError('block hash is empty bytes');
    let h = 0n;
    for (let i = Math.max(0, v.length - 8); i < v.length; i++) h = (h << 8n) | BigInt(v[i]);
    return h;
  }
  throw new DecodeError(`block hash has type ${describe(v)}`);
}

function describe(v: unknown): string {
  if (v === null) return 'nil';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Uint8Array) return 'bytes';
  return typeof v;
}

function hashes(v: unknown, field: string): bigint[] {
  if (!Array.isArray(v)) throw new DecodeError(`${field} is ${describe(v)}, expected an array`);
  return v.map(normalizeHash);
}

function optHash(v: unknown): bigint | null {
  return v === null || v === undefined ? null : normalizeHash(v);
}

function tokens(v: unknown): number[] {
  if (!Array.isArray(v)) throw new DecodeError(`token_ids is ${describe(v)}, expected an array`);
  for (let i = 0; i < v.length; i++) {
    const t = v[i];
    if (typeof t !== 'number' || t >>> 0 !== t) throw new DecodeError(`token_ids[${i}] is not a uint32: ${String(t)}`);
  }
  return v as number[];
}

function optInt(v: unknown, field: string): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  throw new DecodeError(`${field} is ${describe(v)}, expected an int`);
}

function optStr(v: unknown, field: string): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  throw new DecodeError(`${field} is ${describe(v)}, expected a string`);
}

function extraKeys(v: unknown): (unknown[] | null)[] | null {
  if (v === null || v === undefined) return null;
  if (!Array.isArray(v)) throw new DecodeError(`extra_keys is ${describe(v)}, expected an array`);
  return v.map((x) => (x === null || x === undefined ? null : Array.isArray(x) ? x : [x]));
}

interface Fields {
  get(name: string, pos: number): unknown;
}

function blockStored(f: Fields): BlockStored {
  const blockSize = optInt(f.get('block_size', 4), 'block_size');
  if (blockSize === null || blockSize <= 0) throw new DecodeError(`block_size must be a positive int, got ${String(blockSize)}`);
  return {
    type: 'BlockStored',
    blockHashes: hashes(f.get('block_hashes', 1), 'block_hashes'),
    parentBlockHash: optHash(f.get('parent_block_hash', 2)),
    tokenIds: tokens(f.get('token_ids', 3) ?? []),
    blockSize,
    loraId: optInt(f.get('lora_id', 5), 'lora_id'),
    medium: optStr(f.get('medium', 6), 'medium'),
    loraName: optStr(f.get('lora_name', 7), 'lora_name'),
    extraKeys: extraKeys(f.get('extra_keys', 8)),
    groupIdx: optInt(f.get('group_idx', 9), 'group_idx'),
    kvCacheSpecKind: optStr(f.get('kv_cache_spec_kind', 10), 'kv_cache_spec_kind'),
    kvCacheSpecSlidingWindow: optInt(f.get('kv_cache_spec_sliding_window', 11), 'kv_cache_spec_sliding_window'),
  };
}

function blockRemoved(f: Fields): BlockRemoved {
  return {
    type: 'BlockRemoved',
    blockHashes: hashes(f.get('block_hashes', 1), 'block_hashes'),
    medium: optStr(f.get('medium', 2), 'medium'),
    groupIdx: optInt(f.get('group_idx', 3), 'group_idx'),
  };
}

const CLEARED: AllBlocksCleared = Object.freeze({ type: 'AllBlocksCleared' as const });

/** Decodes one event (array or map form). Throws DecodeError on anything it cannot use. */
export function decodeEvent(raw: unknown): KvEvent {
  let tag: unknown;
  let f: Fields;
  if (Array.isArray(raw)) {
    tag = raw[0];
    f = { get: (_n, pos) => raw[pos] };
  } else if (raw instanceof Map) {
    tag = raw.get('type');
    f = { get: (n) => raw.get(n) };
  } else if (raw !== null && typeof raw === 'object' && !(raw instanceof Uint8Array)) {
    const o = raw as Record<string, unknown>;
    tag = o.type;
    f = { get: (n) => (Object.prototype.hasOwnProperty.call(o, n) ? o[n] : undefined) };
  } else throw new DecodeError(`event is ${describe(raw)}, expected an array or a map`);
  switch (tag) {
    case 'BlockStored':
      return blockStored(f);
    case 'BlockRemoved':
      return blockRemoved(f);
    case 'AllBlocksCleared':
      return CLEARED;
    default:
      throw new DecodeError(`unknown event tag ${typeof tag === 'string' ? JSON.stringify(tag.slice(0, 64)) : describe(tag)}`);
  }
}

/**
 * Decodes a KVEventBatch payload. Throws DecodeError (with its kind) if the payload breaks the
 * structural limits (checked before anything is allocated) or the envelope is unusable.
 */
export function decodeEventBatch(payload: Uint8Array, limits?: GuardLimits): DecodedBatch {
  guard(payload, limits);
  return decodeCheckedBatch(payload);
}

/** What the subscriber needs of a batch on arrival: its stream (data-parallel rank). */
export interface PeekedBatch {
  dataParallelRank: number | null;
  /** The whole batch, when its envelope could not be read without decoding it (a batch sent as a map). */
  decoded?: DecodedBatch;
}

/**
 * Checks a payload (msgpack-guard.ts) and reads its envelope without decoding the events, so a
 * queued batch is held as bytes, not as objects, until decodeCheckedBatch() at its turn. Throws
 * the DecodeError decodeEventBatch() would for a bad envelope; a payload it accepts can still
 * be refused then (an undecodable value inside an event: kind 'msgpack').
 */
export function peekEventBatch(payload: Uint8Array, limits?: GuardLimits): PeekedBatch {
  const starts: number[] = [];
  guard(payload, limits, starts);
  const count = arrayLength(payload, 0);
  // vLLM sends [ts, events, rank] (msgspec array_like); anything else is read the slow way
  if (count === null || count < 2 || arrayLength(payload, starts[1]) === null) {
    const decoded = decodeCheckedBatch(payload);
    return { dataParallelRank: decoded.dataParallelRank, decoded };
  }
  if (count < 3) return { dataParallelRank: null };
  // vLLM's rank is a positive fixint (or nil): read it in place, not through a decoder call
  const r = payload[starts[2]];
  if (r <= 0x7f && (starts[3] ?? payload.length) === starts[2] + 1) return { dataParallelRank: r };
  return { dataParallelRank: rankOf(decodeValue(payload.subarray(starts[2], starts[3] ?? payload.length))) };
}

/** Decodes a payload that already passed checkMsgpack (decodeEventBatch, peekEventBatch): vLLM's shapes by fast-decode.ts, the rest through @msgpack/msgpack. */
export function decodeCheckedBatch(payload: Uint8Array): DecodedBatch {
  return fastDecodeBatch(payload) ?? decodeCheckedBatchWithLibrary(payload);
}

/** decodeCheckedBatch through @msgpack/msgpack only: the reference fast-decode.ts is tested against. */
export function decodeCheckedBatchWithLibrary(payload: Uint8Array): DecodedBatch {
  const raw = decodeValue(payload);
  let ts: unknown;
  let events: unknown;
  let rank: unknown;
  if (Array.isArray(raw)) {
    [ts, events, rank] = raw;
    if (raw.length < 2) throw new DecodeError(`batch array has ${raw.length} elements, expected 2 or 3`, 'envelope');
  } else if (raw !== null && typeof raw === 'object' && !(raw instanceof Uint8Array)) {
    const o = raw as Record<string, unknown>;
    ts = o.ts;
    events = o.events;
    rank = o.data_parallel_rank;
  } else throw new DecodeError(`batch is ${describe(raw)}, expected an array or a map`, 'envelope');
  if (!Array.isArray(events)) throw new DecodeError(`batch events is ${describe(events)}, expected an array`, 'envelope');
  const tsNum = typeof ts === 'number' ? ts : typeof ts === 'bigint' ? Number(ts) : NaN;
  const out: DecodedBatch = { ts: tsNum, events: [], dataParallelRank: rankOf(rank), skipped: [] };
  for (let i = 0; i < events.length; i++) {
    try {
      out.events.push(decodeEvent(events[i]));
    } catch (err) {
      out.skipped.push({ index: i, reason: (err as Error).message });
    }
  }
  return out;
}

function guard(payload: Uint8Array, limits?: GuardLimits, rootStarts?: number[]): void {
  try {
    checkMsgpack(payload, limits, rootStarts);
  } catch (err) {
    if (err instanceof GuardError) throw new DecodeError(err.message, err.kind);
    throw err;
  }
}

function decodeValue(bytes: Uint8Array): unknown {
  try {
    return decoder.decode(bytes);
  } catch (err) {
    throw new DecodeError(`invalid msgpack: ${(err as Error).message}`, 'msgpack');
  }
}

function rankOf(rank: unknown): number | null {
  if (typeof rank === 'number' && Number.isInteger(rank) && rank >= 0 && rank < 1 << 16) return rank;
  if (typeof rank === 'bigint' && rank >= 0n && rank < 1n << 16n) return Number(rank);
  if (rank !== null && rank !== undefined) throw new DecodeError(`data_parallel_rank is ${describe(rank)}, expected a non-negative int or nil`, 'envelope');
  return null;
}

/** Element count of the msgpack array starting at `p`, or null when the value there is not an array. */
function arrayLength(buf: Uint8Array, p: number): number | null {
  const b = buf[p];
  if (b >= 0x90 && b <= 0x9f) return b & 0x0f;
  if (b === 0xdc) return (buf[p + 1] << 8) | buf[p + 2];
  if (b === 0xdd) return buf[p + 1] * 0x1000000 + ((buf[p + 2] << 16) | (buf[p + 3] << 8) | buf[p + 4]);
  return null;
}
