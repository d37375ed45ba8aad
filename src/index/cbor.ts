// Canonical CBOR (RFC 8949 §4.2.1 / fxamacker CanonicalEncOptions) for the small values that
// go into block keys: unsigned/negative ints, text, bytes, arrays, maps, null and booleans.
// Map keys are sorted length-first, then bytewise, by their encoded form.

const utf8 = new TextEncoder();

export class ByteWriter {
  buf: Uint8Array;
  len = 0;
  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
  }
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  take(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Writes a CBOR head (major type + argument) in its shortest form. `arg` is a non-negative integer. */
export function writeHead(w: ByteWriter, major: number, arg: number | bigint): void {
  const m = major << 5;
  if (typeof arg === 'bigint') {
    if (arg < 0n || arg > 0xffffffffffffffffn) throw new RangeError(`CBOR argument out of range: ${arg}`);
    if (arg <= 0xffffffffn) return writeHead(w, major, Number(arg));
    w.ensure(9);
    w.buf[w.len++] = m | 27;
    for (let s = 56n; s >= 0n; s -= 8n) w.buf[w.len++] = Number((arg >> s) & 0xffn);
    return;
  }
  if (!Number.isInteger(arg) || arg < 0) throw new RangeError(`CBOR argument must be a non-negative integer: ${arg}`);
  w.ensure(9);
  const b = w.buf;
  if (arg < 24) b[w.len++] = m | arg;
  else if (arg < 0x100) {
    b[w.len++] = m | 24;
    b[w.len++] = arg;
  } else if (arg < 0x10000) {
    b[w.len++] = m | 25;
    b[w.len++] = arg >>> 8;
    b[w.len++] = arg & 0xff;
  } else if (arg < 0x100000000) {
    b[w.len++] = m | 26;
    b[w.len++] = arg >>> 24;
    b[w.len++] = (arg >>> 16) & 0xff;
    b[w.len++] = (arg >>> 8) & 0xff;
    b[w.len++] = arg & 0xff;
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
  if (v === null || v === undefined) return w.byte(0xf6);
  if (v === false) return w.byte(0xf4);
  if (v === true) return w.byte(0xf5);
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
  return w.take();
}
