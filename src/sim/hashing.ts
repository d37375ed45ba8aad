// vLLM's prefix-cache block hashes (vllm/v1/core/kv_cache_utils.py, vllm/utils/hashing.py):
// h_i = fn((h_{i-1} or NONE_HASH, tuple(tokens_i), extra_i)), NONE_HASH = fn(PYTHONHASHSEED) or
// 32 random bytes when the seed is unset. `sha256_cbor` hashes canonical CBOR, `sha256` hashes
// pickle protocol 5. Events carry the low 64 bits (last 8 digest bytes, big-endian).
import { createHash, randomBytes } from 'node:crypto';
import * as nodeCrypto from 'node:crypto';
import { ByteWriter } from '../util/byte-writer.js';
import { writeHead } from '../index/cbor.js';

// One-shot hashing (Node >= 20.12) avoids a Hash object per block. Each digest gets its own
// 32-byte backing store (allocUnsafeSlow). Views of Buffer.allocUnsafe's shared 8 KiB pool were
// fewer allocations, but one long-lived digest (a memoized prompt's) keeps its whole 8 KiB slab
// alive among the short-lived ones of running requests: at 64 pods held at 80 QPS, external
// memory rose ~0.1 MB per model second (+4,197 slabs between two heap snapshots) and stays flat
// this way, at no CPU cost measured.
const oneShot = (nodeCrypto as unknown as { hash?: (alg: string, data: Uint8Array, enc: 'latin1') => string }).hash;
function sha256(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow(32);
  if (oneShot) out.write(oneShot('sha256', data, 'latin1'), 0, 'latin1');
  else createHash('sha256').update(data).digest().copy(out);
  return out;
}

export type HashAlgo = 'sha256_cbor' | 'sha256';
export const HASH_ALGOS: readonly HashAlgo[] = ['sha256_cbor', 'sha256'];

/** One element of a block's extra keys tuple (cache_salt, LoRA name, ...). */
export type ExtraKey = string | number;

// ---- canonical CBOR (cbor2.dumps(x, canonical=True)) for the shapes vLLM hashes ----

// CBOR heads come from the router's canonical CBOR encoder (one head writer for both).
const cborHead = writeHead;

function cborInt(w: ByteWriter, v: number): void {
  if (v >= 0) cborHead(w, 0, v);
  else cborHead(w, 1, -1 - v);
}

/**
 * Token ids as CBOR unsigned ints, the same bytes as cborInt (shortest head), written inline: a
 * block hash serializes 16-64 of them and this loop was most of the hashing time.
 */
function cborTokens(w: ByteWriter, tokens: ArrayLike<number>, start: number, end: number): void {
  w.ensure(5 * (end - start));
  let b = w.buf;
  let at = w.len;
  for (let i = start; i < end; i++) {
    const v = tokens[i];
    if (v >>> 0 !== v) {
      // negative or not a uint32: the general writer (it throws on a non-integer)
      w.len = at;
      cborInt(w, v);
      w.ensure(5 * (end - i));
      b = w.buf;
      at = w.len;
      continue;
    }
    if (v < 24) b[at++] = v;
    else if (v < 0x100) {
      b[at++] = 24;
      b[at++] = v;
    } else if (v < 0x10000) {
      b[at++] = 25;
      b[at++] = v >>> 8;
      b[at++] = v & 0xff;
    } else {
      b[at++] = 26;
      b[at++] = v >>> 24;
      b[at++] = (v >>> 16) & 0xff;
      b[at++] = (v >>> 8) & 0xff;
      b[at++] = v & 0xff;
    }
  }
  w.len = at;
}

function cborText(w: ByteWriter, s: string): void {
  const b = Buffer.from(s, 'utf8');
  cborHead(w, 3, b.length);
  w.bytes(b);
}

function cborExtra(w: ByteWriter, extra: readonly ExtraKey[] | null): void {
  if (extra === null) {
    w.u8(0xf6);
    return;
  }
  cborHead(w, 4, extra.length);
  for (const x of extra) {
    if (typeof x === 'string') cborText(w, x);
    else cborInt(w, x);
  }
}

// ---- pickle protocol 5 (pickle.dumps(x, protocol=5)) ----

function pickleInt(w: ByteWriter, v: number): void {
  if (v >= 0 && v <= 0xff) {
    w.u8(0x4b);
    w.u8(v);
  } else if (v >= 0 && v <= 0xffff) {
    w.ensure(3);
    w.buf[w.len++] = 0x4d;
    w.buf.writeUInt16LE(v, w.len);
    w.len += 2;
  } else if (v >= -0x80000000 && v <= 0x7fffffff) {
    w.ensure(5);
    w.buf[w.len++] = 0x4a;
    w.buf.writeInt32LE(v, w.len);
    w.len += 4;
  } else {
    throw new Error(`pickle: int ${v} out of the supported range`);
  }
}

/** Pickle memo state: each memoized object gets the next index (MEMOIZE 0x94). */
class PickleMemo {
  next = 0;
  strings = new Map<string, number>();
  add(): number {
    return this.next++;
  }
}

function pickleStr(w: ByteWriter, s: string, memo: PickleMemo): void {
  const seen = memo.strings.get(s);
  if (seen !== undefined) {
    // BINGET idx (memo refs for a repeated string object)
    if (seen < 256) {
      w.u8(0x68);
      w.u8(seen);
    } else {
      w.ensure(5);
      w.buf[w.len++] = 0x6a;
      w.buf.writeUInt32LE(seen, w.len);
      w.len += 4;
    }
    return;
  }
  const b = Buffer.from(s, 'utf8');
  if (b.length < 256) {
    w.u8(0x8c);
    w.u8(b.length);
  } else {
    w.ensure(9);
    w.buf[w.len++] = 0x8d;
    w.buf.writeBigUInt64LE(BigInt(b.length), w.len);
    w.len += 8;
  }
  w.bytes(b);
  w.u8(0x94);
  memo.strings.set(s, memo.add());
}

/** Tuple of already-emitted items: EMPTY_TUPLE, TUPLE1..3 or MARK..TUPLE, then MEMOIZE. */
function pickleTuple(w: ByteWriter, n: number, emitItems: () => void, memo: PickleMemo): void {
  if (n === 0) {
    w.u8(0x29);
    return;
  }
  if (n <= 3) {
    emitItems();
    w.u8(0x84 + n); // 85 / 86 / 87
  } else {
    w.u8(0x28);
    emitItems();
    w.u8(0x74);
  }
  w.u8(0x94);
  memo.add();
}

function pickleExtra(w: ByteWriter, extra: readonly ExtraKey[] | null, memo: PickleMemo): void {
  if (extra === null) {
    w.u8(0x4e);
    return;
  }
  pickleTuple(
    w,
    extra.length,
    () => {
      for (const x of extra) {
        if (typeof x === 'string') pickleStr(w, x, memo);
        else pickleInt(w, x);
      }
    },
    memo,
  );
}

/** Wraps a pickle body in PROTO 5 + FRAME(len incl. STOP) ... STOP. */
function pickleFramed(body: Buffer): Buffer {
  const frameLen = body.length + 1;
  const out = Buffer.allocUnsafe(2 + 9 + frameLen);
  out[0] = 0x80;
  out[1] = 0x05;
  out[2] = 0x95;
  out.writeBigUInt64LE(BigInt(frameLen), 3);
  body.copy(out, 11);
  out[out.length - 1] = 0x2e;
  return out;
}

/** A vLLM block hash function over (parent digest, tokens, extra). */
export class BlockHasher {
  readonly algo: HashAlgo;
  /** NONE_HASH: the parent of block 0. */
  readonly noneHash: Buffer;
  /** Reused across blocks by the CBOR and pickle encoders. */
  private readonly w = new ByteWriter(1024);

  constructor(algo: HashAlgo = 'sha256_cbor', pythonHashSeed?: string) {
    if (!HASH_ALGOS.includes(algo)) throw new Error(`unsupported prefix caching hash algo "${algo}" (supported: ${HASH_ALGOS.join(', ')})`);
    this.algo = algo;
    this.noneHash = pythonHashSeed === undefined ? randomBytes(32) : this.hashSeed(pythonHashSeed);
  }

  private hashSeed(seed: string): Buffer {
    const w = this.w;
    w.reset();
    if (this.algo === 'sha256_cbor') cborText(w, seed);
    else {
      pickleStr(w, seed, new PickleMemo());
      return createHash('sha256').update(pickleFramed(Buffer.from(w.view()))).digest();
    }
    return createHash('sha256').update(w.view()).digest();
  }

  /** The serialized input of one block (exposed for tests against the reference bytes). */
  serialize(parent: Buffer | null, tokens: ArrayLike<number>, start: number, end: number, extra: readonly ExtraKey[] | null): Buffer {
    const p = parent ?? this.noneHash;
    const w = this.w;
    w.reset();
    if (this.algo === 'sha256_cbor') {
      w.u8(0x83);
      cborHead(w, 2, p.length);
      w.bytes(p);
      cborHead(w, 4, end - start);
      cborTokens(w, tokens, start, end);
      cborExtra(w, extra);
      return w.view();
    }
    const memo = new PickleMemo();
    // SHORT_BINBYTES parent, MEMOIZE
    w.u8(0x43);
    w.u8(p.length);
    w.bytes(p);
    w.u8(0x94);
    memo.add();
    pickleTuple(
      w,
      end - start,
      () => {
        for (let i = start; i < end; i++) pickleInt(w, tokens[i]);
      },
      memo,
    );
    pickleExtra(w, extra, memo);
    w.u8(0x87);
    w.u8(0x94);
    return pickleFramed(w.view());
  }

  /** Digest of one block; `parent` null means block 0 (NONE_HASH). */
  hashBlock(parent: Buffer | null, tokens: ArrayLike<number>, start: number, end: number, extra: readonly ExtraKey[] | null): Buffer {
    return sha256(this.serialize(parent, tokens, start, end, extra));
  }
}

/** The 64-bit value vLLM puts on the wire for a digest: last 8 bytes, big-endian, unsigned. */
export function wireHash(digest: Buffer): bigint {
  return digest.readBigUInt64BE(digest.length - 8);
}
