// A msgpack writer that produces the same bytes as msgspec (vLLM's encoder): smallest integer
// forms, floats always float64 (cb), fixstr/str8/16/32, bin8/16/32, fixarray/array16/32,
// fixmap/map16/32. Only the shapes KV-event batches need.
import { ByteWriter } from '../util/byte-writer.js';

/** A uint32 in msgpack's smallest form at `at` (the caller made room for 5 bytes); returns the end. */
function putUint32(b: Buffer, at: number, v: number): number {
  if (v < 0x80) {
    b[at] = v;
    return at + 1;
  }
  if (v < 0x100) {
    b[at] = 0xcc;
    b[at + 1] = v;
    return at + 2;
  }
  if (v < 0x10000) {
    b[at] = 0xcd;
    b[at + 1] = v >>> 8;
    b[at + 2] = v & 0xff;
    return at + 3;
  }
  b[at] = 0xce;
  b[at + 1] = v >>> 24;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 8) & 0xff;
  b[at + 4] = v & 0xff;
  return at + 5;
}

export class MsgpackWriter extends ByteWriter {
  constructor() {
    super(4096);
  }

  nil(): void {
    this.ensure(1);
    this.buf[this.len++] = 0xc0;
  }

  bool(v: boolean): void {
    this.ensure(1);
    this.buf[this.len++] = v ? 0xc3 : 0xc2;
  }

  float64(v: number): void {
    this.ensure(9);
    this.buf[this.len++] = 0xcb;
    this.buf.writeDoubleBE(v, this.len);
    this.len += 8;
  }

  /** Integer (safe integer number) in its smallest msgpack form. */
  int(v: number): void {
    this.ensure(9);
    const b = this.buf;
    if (v >>> 0 === v) {
      // uint32 (token ids, sizes): the same bytes as below, without Buffer's checked writers.
      this.len = putUint32(b, this.len, v);
      return;
    }
    if (!Number.isSafeInteger(v)) throw new Error(`msgpack: ${v} is not a safe integer`);
    if (v >= 0) {
      if (v < 0x80) b[this.len++] = v;
      else if (v < 0x100) {
        b[this.len++] = 0xcc;
        b[this.len++] = v;
      } else if (v < 0x10000) {
        b[this.len++] = 0xcd;
        b.writeUInt16BE(v, this.len);
        this.len += 2;
      } else if (v < 0x100000000) {
        b[this.len++] = 0xce;
        b.writeUInt32BE(v, this.len);
        this.len += 4;
      } else {
        b[this.len++] = 0xcf;
        b.writeBigUInt64BE(BigInt(v), this.len);
        this.len += 8;
      }
    } else if (v >= -32) {
      b[this.len++] = v & 0xff;
    } else if (v >= -0x80) {
      b[this.len++] = 0xd0;
      b.writeInt8(v, this.len);
      this.len += 1;
    } else if (v >= -0x8000) {
      b[this.len++] = 0xd1;
      b.writeInt16BE(v, this.len);
      this.len += 2;
    } else if (v >= -0x80000000) {
      b[this.len++] = 0xd2;
      b.writeInt32BE(v, this.len);
      this.len += 4;
    } else {
      b[this.len++] = 0xd3;
      b.writeBigInt64BE(BigInt(v), this.len);
      this.len += 8;
    }
  }

  /** Unsigned 64-bit integer (bigint) in its smallest form. */
  uint64(v: bigint): void {
    if (v < 0n || v > 0xffffffffffffffffn) throw new Error(`msgpack: ${v} is not a uint64`);
    if (v < 0x100000000n) {
      this.int(Number(v));
      return;
    }
    this.ensure(9);
    this.buf[this.len++] = 0xcf;
    this.buf.writeBigUInt64BE(v, this.len);
    this.len += 8;
  }

  /**
   * The unsigned big-endian 64-bit integer in src[at, at + 8) in its smallest form: the same
   * bytes as uint64(src.readBigUInt64BE(at)) without a bigint per value (block hashes).
   */
  uint64BE(src: Uint8Array, at: number): void {
    const hi = ((src[at] << 24) | (src[at + 1] << 16) | (src[at + 2] << 8) | src[at + 3]) >>> 0;
    if (hi === 0) {
      this.int(((src[at + 4] << 24) | (src[at + 5] << 16) | (src[at + 6] << 8) | src[at + 7]) >>> 0);
      return;
    }
    this.ensure(9);
    const b = this.buf;
    b[this.len++] = 0xcf;
    for (let i = 0; i < 8; i++) b[this.len++] = src[at + i];
  }

  /** Signed 64-bit integer (bigint) in its smallest form. */
  int64(v: bigint): void {
    if (v >= 0n) {
      this.uint64(v);
      return;
    }
    if (v >= -0x80000000n) {
      this.int(Number(v));
      return;
    }
    this.ensure(9);
    this.buf[this.len++] = 0xd3;
    this.buf.writeBigInt64BE(v, this.len);
    this.len += 8;
  }

  str(s: string): void {
    if (s.length < 32) {
      // Short ASCII (field names, event types): fixstr written char by char, no UTF-8 encoder.
      this.ensure(1 + s.length);
      const b = this.buf;
      let p = this.len + 1;
      let i = 0;
      for (; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        b[p++] = c;
      }
      if (i === s.length) {
        b[this.len] = 0xa0 | s.length;
        this.len = p;
        return;
      }
    }
    const n = Buffer.byteLength(s, 'utf8');
    this.ensure(5 + n);
    const b = this.buf;
    if (n < 32) b[this.len++] = 0xa0 | n;
    else if (n < 0x100) {
      b[this.len++] = 0xd9;
      b[this.len++] = n;
    } else if (n < 0x10000) {
      b[this.len++] = 0xda;
      b.writeUInt16BE(n, this.len);
      this.len += 2;
    } else {
      b[this.len++] = 0xdb;
      b.writeUInt32BE(n, this.len);
      this.len += 4;
    }
    this.len += b.write(s, this.len, 'utf8');
  }

  bin(v: Uint8Array): void {
    const n = v.length;
    this.ensure(5 + n);
    const b = this.buf;
    if (n < 0x100) {
      b[this.len++] = 0xc4;
      b[this.len++] = n;
    } else if (n < 0x10000) {
      b[this.len++] = 0xc5;
      b.writeUInt16BE(n, this.len);
      this.len += 2;
    } else {
      b[this.len++] = 0xc6;
      b.writeUInt32BE(n, this.len);
      this.len += 4;
    }
    b.set(v, this.len);
    this.len += n;
  }

  private head(fix: number, b16: number, b32: number, n: number, fixMax: number): void {
    this.ensure(5);
    const b = this.buf;
    if (n <= fixMax) b[this.len++] = fix | n;
    else if (n < 0x10000) {
      b[this.len++] = b16;
      b.writeUInt16BE(n, this.len);
      this.len += 2;
    } else {
      b[this.len++] = b32;
      b.writeUInt32BE(n, this.len);
      this.len += 4;
    }
  }

  arrayHeader(n: number): void {
    this.head(0x90, 0xdc, 0xdd, n, 15);
  }

  mapHeader(n: number): void {
    this.head(0x80, 0xde, 0xdf, n, 15);
  }

  /**
   * An array of small non-negative integers (token ids): int()'s bytes, with room made once for
   * the whole array and uint32s written without a call to int() each (every stored block's token ids go through here).
   */
  intArray(values: ArrayLike<number>, start = 0, end = values.length): void {
    this.arrayHeader(end - start);
    this.ensure(5 * (end - start));
    let b = this.buf;
    let at = this.len;
    for (let i = start; i < end; i++) {
      const v = values[i];
      if (v >>> 0 !== v) {
        // not a uint32: the general writer (it throws on a non-integer), then room again
        this.len = at;
        this.int(v);
        this.ensure(5 * (end - i));
        b = this.buf;
        at = this.len;
        continue;
      }
      at = putUint32(b, at, v);
    }
    this.len = at;
  }
}
