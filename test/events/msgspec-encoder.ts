// Writes KV-event batches byte-for-byte as vLLM's msgspec encoder does, for every schema
// version (vllm-kv-events.md §5-6): floats always float64, ints in their shortest form
// (uint64 >= 2^32 as cf), fixstr/str8/str16, bin8+, arrays up to fixarray then array16.
// A test oracle written independently of the simulator's encoder (src/sim/msgpack.ts,
// src/sim/events.ts): both are checked against the reference bytes, and this one feeds the
// decoder and subscriber tests every schema version.
import type { KvEvent } from '../../src/events/types.js';

/** Marks a number that must be encoded as float64 even when integral (msgspec floats). */
export class F64 {
  constructor(readonly value: number) {}
}

type MsgValue = null | undefined | boolean | number | bigint | string | Uint8Array | F64 | MsgValue[] | MapEntries;
/** An ordered map: entries are written in this order (msgspec writes struct fields in declaration order). */
export class MapEntries {
  constructor(readonly entries: [string, MsgValue][]) {}
}

const utf8 = new TextEncoder();

export class MsgWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  private u8(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }
  private u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.len, v);
    this.len += 2;
  }
  private u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.len, v);
    this.len += 4;
  }

  private tagged(tag: number, v: number, bits: 8 | 16 | 32): void {
    this.u8(tag);
    if (bits === 8) this.u8(v);
    else if (bits === 16) this.u16(v);
    else this.u32(v);
  }

  int(v: number | bigint): void {
    if (typeof v === 'number' && v >= 0 && v < 0x100000000) {
      // fast path for token ids
      if (v < 128) return this.u8(v);
      if (v < 0x100) return this.tagged(0xcc, v, 8);
      if (v < 0x10000) return this.tagged(0xcd, v, 16);
      return this.tagged(0xce, v, 32);
    }
    const b = BigInt(v);
    if (b >= 0n) {
      if (b < 128n) return this.u8(Number(b));
      if (b < 0x100n) return this.tagged(0xcc, Number(b), 8);
      if (b < 0x10000n) return this.tagged(0xcd, Number(b), 16);
      if (b < 0x100000000n) return this.tagged(0xce, Number(b), 32);
      if (b > 0xffffffffffffffffn) throw new RangeError(`int out of msgpack range: ${b}`);
      this.u8(0xcf);
      this.ensure(8);
      this.view.setBigUint64(this.len, b);
      this.len += 8;
      return;
    }
    if (b >= -32n) return this.u8(Number(b) & 0xff);
    if (b >= -128n) return this.tagged(0xd0, Number(b) & 0xff, 8);
    if (b >= -32768n) return this.tagged(0xd1, Number(b) & 0xffff, 16);
    if (b >= -2147483648n) return this.tagged(0xd2, Number(b) >>> 0, 32);
    if (b < -(1n << 63n)) throw new RangeError(`int out of msgpack range: ${b}`);
    this.u8(0xd3);
    this.ensure(8);
    this.view.setBigInt64(this.len, b);
    this.len += 8;
  }

  value(v: MsgValue): void {
    if (v === null || v === undefined) return this.u8(0xc0);
    if (v === true) return this.u8(0xc3);
    if (v === false) return this.u8(0xc2);
    if (typeof v === 'bigint') return this.int(v);
    if (typeof v === 'number') {
      if (Number.isInteger(v)) return this.int(v);
      return this.value(new F64(v));
    }
    if (v instanceof F64) {
      this.u8(0xcb);
      this.ensure(8);
      this.view.setFloat64(this.len, v.value);
      this.len += 8;
      return;
    }
    if (typeof v === 'string') {
      const b = utf8.encode(v);
      if (b.length < 32) this.u8(0xa0 | b.length);
      else if (b.length < 0x100) this.tagged(0xd9, b.length, 8);
      else if (b.length < 0x10000) this.tagged(0xda, b.length, 16);
      else this.tagged(0xdb, b.length, 32);
      return this.raw(b);
    }
    if (v instanceof Uint8Array) {
      if (v.length < 0x100) this.tagged(0xc4, v.length, 8);
      else if (v.length < 0x10000) this.tagged(0xc5, v.length, 16);
      else this.tagged(0xc6, v.length, 32);
      return this.raw(v);
    }
    if (Array.isArray(v)) {
      this.arrayHead(v.length);
      for (const x of v) this.value(x);
      return;
    }
    if (v instanceof MapEntries) {
      const n = v.entries.length;
      if (n < 16) this.u8(0x80 | n);
      else if (n < 0x10000) this.tagged(0xde, n, 16);
      else this.tagged(0xdf, n, 32);
      for (const [k, x] of v.entries) {
        this.value(k);
        this.value(x);
      }
      return;
    }
    throw new TypeError(`cannot msgpack-encode ${typeof v}`);
  }

  arrayHead(n: number): void {
    if (n < 16) this.u8(0x90 | n);
    else if (n < 0x10000) this.tagged(0xdc, n, 16);
    else this.tagged(0xdd, n, 32);
  }

  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  bytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/**
 * Event schema: legacy positional arrays (BlockStored length 6, 7, 8, 9, 10 or 12; the
 * BlockRemoved length follows: 2, 3, 3, 3, 4, 4) or v0.24+ maps.
 */
export type EventSchema = { form: 'array'; storedLength: 6 | 7 | 8 | 9 | 10 | 12 } | { form: 'map' };

export interface EncodeOptions {
  schema?: EventSchema;
  /** 'array' = [ts, events, rank]; 'array2' = v0.9.0 [ts, events]; 'map' = {ts, events, data_parallel_rank}. */
  batch?: 'array' | 'array2' | 'map';
  /** 'int' (default, uint64), 'bytes' (8-byte big-endian bin, as with VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0), 'signed' (v0.9 int64). */
  hashes?: 'int' | 'bytes' | 'signed';
}

function hashValue(h: bigint, mode: EncodeOptions['hashes']): MsgValue {
  if (mode === 'bytes') {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, h);
    return b;
  }
  if (mode === 'signed') return BigInt.asIntN(64, h);
  return h;
}

function extraValue(x: (unknown[] | null)[] | null): MsgValue {
  return x === null ? null : (x as MsgValue[]);
}

export function eventValue(ev: KvEvent, schema: EventSchema = { form: 'map' }, hashes: EncodeOptions['hashes'] = 'int'): MsgValue {
  if (ev.type === 'AllBlocksCleared') return schema.form === 'map' ? new MapEntries([['type', 'AllBlocksCleared']]) : ['AllBlocksCleared'];
  const hs = ev.blockHashes.map((h) => hashValue(h, hashes));
  if (ev.type === 'BlockRemoved') {
    if (schema.form === 'map') {
      const e: [string, MsgValue][] = [['type', 'BlockRemoved'], ['block_hashes', hs], ['medium', ev.medium]];
      if (ev.groupIdx !== null) e.push(['group_idx', ev.groupIdx]);
      return new MapEntries(e);
    }
    const len = { 6: 2, 7: 3, 8: 3, 9: 3, 10: 4, 12: 4 }[schema.storedLength];
    return ['BlockRemoved', hs, ev.medium, ev.groupIdx].slice(0, len) as MsgValue[];
  }
  const parent = ev.parentBlockHash === null ? null : hashValue(ev.parentBlockHash, hashes);
  const fields: [string, MsgValue][] = [
    ['type', 'BlockStored'],
    ['block_hashes', hs],
    ['parent_block_hash', parent],
    ['token_ids', ev.tokenIds],
    ['block_size', ev.blockSize],
    ['lora_id', ev.loraId],
    ['medium', ev.medium],
    ['lora_name', ev.loraName],
    ['extra_keys', extraValue(ev.extraKeys)],
    ['group_idx', ev.groupIdx],
    ['kv_cache_spec_kind', ev.kvCacheSpecKind],
    ['kv_cache_spec_sliding_window', ev.kvCacheSpecSlidingWindow],
  ];
  if (schema.form === 'map') {
    // omit_defaults: only fields declared with a None default disappear when None
    const optional = new Set(['extra_keys', 'group_idx', 'kv_cache_spec_kind', 'kv_cache_spec_sliding_window']);
    return new MapEntries(fields.filter(([k, v]) => !(optional.has(k) && (v === null || v === undefined))));
  }
  return fields.slice(0, schema.storedLength).map(([k, v]) => (k === 'type' ? 'BlockStored' : v));
}

/** Encodes a KVEventBatch payload exactly as vLLM would. */
export function encodeEventBatch(ts: number, events: KvEvent[], rank: number | null, opts: EncodeOptions = {}): Uint8Array {
  const schema = opts.schema ?? { form: 'array', storedLength: 12 };
  const evs = events.map((e) => eventValue(e, schema, opts.hashes));
  const w = new MsgWriter();
  const batch = opts.batch ?? 'array';
  if (batch === 'map') w.value(new MapEntries([['ts', new F64(ts)], ['events', evs], ['data_parallel_rank', rank]]));
  else if (batch === 'array2') w.value([new F64(ts), evs]);
  else w.value([new F64(ts), evs, rank]);
  return w.bytes();
}

/** 8-byte big-endian sequence frame. */
export function seqFrame(seq: number | bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(seq));
  return b;
}

/** A BlockStored with the fields a given schema does not carry set to null. */
export function blockStored(p: Partial<Omit<import('../../src/events/types.js').BlockStored, 'type'>> & { blockHashes: bigint[]; tokenIds: number[]; blockSize: number }): import('../../src/events/types.js').BlockStored {
  return {
    type: 'BlockStored',
    parentBlockHash: null,
    loraId: null,
    medium: 'GPU',
    loraName: null,
    extraKeys: null,
    groupIdx: null,
    kvCacheSpecKind: null,
    kvCacheSpecSlidingWindow: null,
    ...p,
  };
}
