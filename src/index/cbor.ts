// Canonical CBOR (RFC 8949 §4.2.1 / fxamacker CanonicalEncOptions) for the small values that
// go into block keys: unsigned/negative ints, text, bytes, arrays, maps, null and booleans.
// Map keys are sorted length-first, then bytewise, by their encoded form.

import { ByteWriter } from '../util/byte-writer.js';

export { ByteWriter };

const utf8 = new TextEncoder();

/**
 * Writes a CBOR head (major type + argument) in its shortest form. `arg` is a non-negative
 * integer. The only CBOR head writer: the block keys here and vLLM's block hashes
 * (src/sim/hashing.ts) both use it.
 */
export function writeHead(w: ByteWriter, major: number, arg: number | bigint): void {
  const m = major << 5;
  if (typeof arg === 'bigint') {
    if (arg < 0n || arg > 0xffffffffffffffffn) throw new RangeError(`CBOR argument out of range: ${arg}`);
    if (arg <= 0xffffffffn) return writeHead(w, major, Number(arg));
    w.ensure(9);
    w.buf[w.len++] = m | 27;
    w.buf.writeBigUInt64BE(arg, w.len);
    w.len += 8;
    return;
  }
  if (!Number.isInteger(arg) || arg < 0) throw new RangeError(`CBOR argument must be a non-negative integer: ${arg}`);
  w.ensure(5);
  const b = w.buf;
  if (arg < 24) b[w.len++] = m | arg;
  else if (arg < 0x100) {
    b[w.len++] = m | 24;
    b[w.len++] = arg;
  } else if (arg < 0x10000) {
    b[w.len++] = m | 25;
    b.writeUInt16BE(arg, w.len);
    w.len += 2;
  } else if (arg < 0x100000000) {
    b[w.len++] = m | 26;
    b.writeUInt32BE(arg, w.len);
    w.len += 4;
  } else {
    writeHead(w, major, BigInt(arg));
  }
}

export function writeText(w: ByteWriter, s: string): void {
  const b = utf8.encode(s);
  writeHead(w, 3, b.length);
  w.bytes(b);
}

/** Encodes any supported JS value canonically. */
export function writeValue(w: ByteWriter, v: unknown): void {
  if (v === null || v === undefined) return w.u8(0xf6);
  if (v === false) return w.u8(0xf4);
  if (v === true) return w.u8(0xf5);
  if (typeof v === 'bigint') return v < 0n ? writeHead(w, 1, -1n - v) : writeHead(w, 0, v);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new TypeError(`only integers are supported in block keys, got ${v}`);
    return v < 0 ? writeHead(w, 1, -1 - v) : writeHead(w, 0, v);
  }
  if (typeof v === 'string') return writeText(w, v);
  if (v instanceof Uint8Array) {
    writeHead(w, 2, v.length);
    return w.bytes(v);
  }
  if (Array.isArray(v)) {
    writeHead(w, 4, v.length);
    for (const x of v) writeValue(w, x);
    return;
  }
  if (typeof v === 'object') {
    const pairs: { k: Uint8Array; v: unknown }[] = [];
    for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
      const kw = new ByteWriter(32);
      writeText(kw, k);
      pairs.push({ k: kw.take(), v: val });
    }
    pairs.sort((a, b) => compareKeys(a.k, b.k));
    writeHead(w, 5, pairs.length);
    for (const p of pairs) {
      w.bytes(p.k);
      writeValue(w, p.v);
    }
    return;
  }
  throw new TypeError(`cannot CBOR-encode a ${typeof v}`);
}

function compareKeys(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

export function encodeCbor(v: unknown): Uint8Array {
  const w = new ByteWriter(64);
  writeValue(w, v);
  return new Uint8Array(w.view());
}
