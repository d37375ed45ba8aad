// The one growable byte writer: CBOR (src/index/cbor.ts), vLLM's block-hash inputs
// (src/sim/hashing.ts) and msgpack (src/sim/msgpack.ts) all write through it. Backed by a
// Buffer so encoders can use its big-endian helpers (writeUInt16BE, writeDoubleBE, ...).

export class ByteWriter {
  buf: Buffer;
  len = 0;

  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(Math.max(16, initial));
  }

  /** Room for `n` more bytes (the buffer doubles until they fit). */
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  u8(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }

  bytes(src: Uint8Array): void {
    this.ensure(src.length);
    this.buf.set(src, this.len);
    this.len += src.length;
  }

  /** The bytes written so far, without a copy (valid until the next write or reset). */
  view(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  /** A copy of the bytes written so far. */
  take(): Buffer {
    return Buffer.from(this.view());
  }

  /** A copy of the bytes written so far; the writer starts over. */
  finish(): Buffer {
    const out = this.take();
    this.len = 0;
    return out;
  }

  reset(): void {
    this.len = 0;
  }
}
