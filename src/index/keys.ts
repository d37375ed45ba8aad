// Router request keys: chained 64-bit hashes over full blocks of token ids.
//
// 'cbor-fnv' (default) is byte-identical to llm-d's token processor
// (llm-d/llm-d-kv-cache pkg/kvcache/kvblock/token_processor.go, also in llm-d/llm-d-router, 2026):
//   init    = FNV64a(utf8(seed));  root(name) = FNV64a(CBOR([init, null, name]))
//   key[i]  = FNV64a(CBOR([parent, tokens of block i, extra_i]))
// FNV-64a runs on 16-bit limbs (no BigInt, no floats) and keys are written straight into the
// result's buffer, so the hot loop allocates nothing.
//
// 'fast64' hashes 32-bit token words with two murmur3-style lanes: not llm-d compatible,
// about 3-4x faster (see bench/index.bench.ts).
import type { BlockKeys } from './types.js';
import { ByteWriter, writeHead, writeText, writeValue } from './cbor.js';
import { withDefaults } from '../util/options.js';

export type HashAlgorithm = 'cbor-fnv' | 'fast64';
export const HASH_ALGORITHMS: readonly HashAlgorithm[] = ['cbor-fnv', 'fast64'];

export interface KeyConfig {
  blockSize: number;
  hashSeed: string;
  algorithm: HashAlgorithm;
}

export interface KeyOptions {
  /** Model name; replaced by `lora` in the root when a LoRA adapter is named. */
  model: string;
  lora?: string | null;
  /** Continue a chain from this request key instead of the root (0n / undefined = root). */
  parent?: bigint;
  /** Per full block: extra keys (multimodal ids etc.) or null. Strings become {"Hash": id}. */
  extra?: (readonly unknown[] | null)[] | null;
  /** Goes into block 0's extra as {"Hash": salt} (only when the chain starts at the root). */
  cacheSalt?: string | null;
}

export const DEFAULT_KEY_CONFIG: KeyConfig = Object.freeze({ blockSize: 16, hashSeed: '', algorithm: 'cbor-fnv' as const });

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const utf8 = new TextEncoder();

// ---------- FNV-64a on 16-bit limbs ----------
// state: the low half as two 16-bit limbs h0, h1 and the high half as one int32 hh;
// prime = 2^40 + 0x1b3, so h*prime = h*0x1b3 + (h << 40): the low half's products and carry stay
// small integers, the high half needs only its low 32 bits (Math.imul) plus that carry and
// low << 8 (no float multiply or divide on the byte chain).
const FNV_LO = 0x84222325;
const FNV_HI = 0xcbf29ce4;

function fnvBytes(bytes: Uint8Array, n: number, lo: number, hi: number, out: Uint32Array, outAt: number): void {
  let h0 = lo & 0xffff;
  let h1 = lo >>> 16;
  let hh = hi | 0;
  for (let j = 0; j < n; j++) {
    h0 ^= bytes[j];
    const t0 = h0 * 0x1b3;
    const t1 = h1 * 0x1b3 + (t0 >>> 16);
    hh = (Math.imul(hh, 0x1b3) + (t1 >>> 16) + (h1 << 24) + (h0 << 8)) | 0;
    h0 = t0 & 0xffff;
    h1 = t1 & 0xffff;
  }
  out[outAt] = (h1 << 16) | h0;
  out[outAt + 1] = hh;
}

/** FNV-64a of bytes, as a bigint (used for roots and tests). */
export function fnv64a(bytes: Uint8Array): bigint {
  const out = new Uint32Array(2);
  fnvBytes(bytes, bytes.length, FNV_LO, FNV_HI, out, 0);
  return (BigInt(out[1]) << 32n) | BigInt(out[0]);
}

// ---------- fast64: two murmur3-style 32-bit lanes over words ----------
function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

class Fast64 {
  a = 0;
  b = 0;
  n = 0;
  start(lo: number, hi: number): void {
    this.a = lo ^ 0x9e3779b9;
    this.b = hi ^ 0x7f4a7c15;
    this.n = 0;
    this.word(hi);
    this.word(lo);
  }
  word(k: number): void {
    let k1 = Math.imul(k, 0xcc9e2d51);
    k1 = Math.imul(rotl(k1, 15), 0x1b873593);
    this.a = (Math.imul(rotl(this.a ^ k1, 13), 5) + 0xe6546b64) | 0;
    let k2 = Math.imul(k, 0x85ebca77);
    k2 = Math.imul(rotl(k2, 17), 0xc2b2ae3d);
    this.b = (Math.imul(rotl(this.b ^ k2, 11), 9) + 0x561ccd1b) | 0;
    this.n++;
  }
  bytes(bs: Uint8Array): void {
    let i = 0;
    for (; i + 4 <= bs.length; i += 4) this.word(bs[i] | (bs[i + 1] << 8) | (bs[i + 2] << 16) | (bs[i + 3] << 24));
    let last = 0;
    for (let s = 0; i < bs.length; i++, s += 8) last |= bs[i] << s;
    this.word(last ^ (bs.length << 24));
  }
  finish(out: Uint32Array, at: number): void {
    let a = this.a ^ this.n;
    let b = this.b ^ Math.imul(this.n, 0x27d4eb2f);
    a = (a + b) | 0;
    b = (b + a) | 0;
    a = fmix(a);
    b = fmix(b);
    a = (a + b) | 0;
    b = (b + a) | 0;
    out[at] = a >>> 0;
    out[at + 1] = b >>> 0;
  }
}

// ---------- the keyer ----------

export class BlockKeyer {
  readonly cfg: KeyConfig;
  private readonly initLo: number;
  private readonly initHi: number;
  private readonly roots = new Map<string, bigint>();
  private readonly scratch = new Uint8Array(16);
  private readonly pair = new Uint32Array(2);
  private readonly fast = new Fast64();

  constructor(cfg: Partial<KeyConfig> = {}) {
    const full: KeyConfig = withDefaults(DEFAULT_KEY_CONFIG, cfg);
    if (!Number.isInteger(full.blockSize) || full.blockSize <= 0) throw new RangeError(`block size must be a positive integer, got ${full.blockSize}`);
    if (!HASH_ALGORITHMS.includes(full.algorithm)) throw new RangeError(`unknown hash algorithm "${full.algorithm}" (expected one of ${HASH_ALGORITHMS.join(', ')})`);
    this.cfg = Object.freeze(full);
    const seed = utf8.encode(full.hashSeed ?? '');
    if (full.algorithm === 'cbor-fnv') {
      fnvBytes(seed, seed.length, FNV_LO, FNV_HI, this.pair, 0);
    } else {
      this.fast.start(0, 0);
      this.fast.bytes(seed);
      this.fast.finish(this.pair, 0);
    }
    this.initLo = this.pair[0];
    this.initHi = this.pair[1];
  }

  get blockSize(): number {
    return this.cfg.blockSize;
  }

  /** The chain root for a model (or LoRA adapter) name. */
  root(modelOrLora: string): bigint {
    let r = this.roots.get(modelOrLora);
    if (r !== undefined) return r;
    const init = (BigInt(this.initHi) << 32n) | BigInt(this.initLo);
    if (this.cfg.algorithm === 'cbor-fnv') {
      const w = new ByteWriter(64);
      writeHead(w, 4, 3);
      writeHead(w, 0, init);
      w.u8(0xf6);
      writeText(w, modelOrLora);
      fnvBytes(w.buf, w.len, FNV_LO, FNV_HI, this.pair, 0);
    } else {
      this.fast.start(this.initLo, this.initHi);
      this.fast.bytes(utf8.encode(modelOrLora));
      this.fast.finish(this.pair, 0);
    }
    r = (BigInt(this.pair[1]) << 32n) | BigInt(this.pair[0]);
    if (this.roots.size > 10_000) this.roots.clear();
    this.roots.set(modelOrLora, r);
    return r;
  }

  /** Request keys of the full blocks of `tokens` (a trailing partial block is dropped). */
  keys(tokens: ArrayLike<number>, opts: KeyOptions): BlockKeys {
    const bs = this.cfg.blockSize;
    const n = Math.floor(tokens.length / bs);
    const out = new BigUint64Array(n);
    if (n === 0) return out;
    const name = opts.lora ? opts.lora : opts.model;
    const parent = opts.parent !== undefined && opts.parent !== 0n ? opts.parent : this.root(name);
    const fromRoot = opts.parent === undefined || opts.parent === 0n;
    const extras = this.encodeExtras(n, opts.extra ?? null, fromRoot ? (opts.cacheSalt ?? null) : null);
    const words = LITTLE_ENDIAN ? new Uint32Array(out.buffer) : new Uint32Array(2 * n);
    let lo = Number(parent & 0xffffffffn);
    let hi = Number(parent >> 32n);
    if (this.cfg.algorithm === 'cbor-fnv') this.fnvChain(tokens, n, lo, hi, extras, words);
    else {
      const f = this.fast;
      for (let i = 0, base = 0; i < n; i++, base += bs) {
        f.start(lo, hi);
        for (let j = 0; j < bs; j++) {
          const t = tokens[base + j];
          if (t >>> 0 !== t) throw new RangeError(`token ids must be uint32, got ${t} at ${base + j}`);
          f.word(t);
        }
        const ex = extras?.[i];
        if (ex) f.bytes(ex);
        f.finish(words, 2 * i);
        lo = words[2 * i];
        hi = words[2 * i + 1];
      }
    }
    if (!LITTLE_ENDIAN) for (let i = 0; i < n; i++) out[i] = (BigInt(words[2 * i + 1]) << 32n) | BigInt(words[2 * i]);
    return out;
  }

  /** Encoded extra per block (CBOR), or null when every block's extra is null. */
  private encodeExtras(n: number, extra: (readonly unknown[] | null)[] | null, salt: string | null): (Uint8Array | null)[] | null {
    if (extra && extra.length !== n && extra.length !== 0) {
      throw new RangeError(`extra has ${extra.length} entries but the tokens make ${n} full blocks`);
    }
    if (!salt && (!extra || extra.every((e) => e == null || e.length === 0))) return null;
    const res: (Uint8Array | null)[] = [];
    for (let i = 0; i < n; i++) {
      const items: unknown[] = [...(extra?.[i] ?? [])];
      if (i === 0 && salt) items.push({ Hash: salt });
      if (items.length === 0) {
        res.push(null);
        continue;
      }
      const w = new ByteWriter(64);
      writeHead(w, 4, items.length);
      for (const it of items) writeValue(w, typeof it === 'string' ? { Hash: it } : it);
      res.push(w.take());
    }
    return res;
  }

  private fnvChain(tokens: ArrayLike<number>, n: number, lo: number, hi: number, extras: (Uint8Array | null)[] | null, words: Uint32Array): void {
    const bs = this.cfg.blockSize;
    const b = this.scratch; // the block's head: 1 (array) + 9 (parent) + 5 (token array head)
    for (let i = 0, base = 0; i < n; i++, base += bs) {
      let p = 0;
      b[p++] = 0x83;
      // parent as a shortest-form CBOR uint
      if (hi !== 0) {
        b[p++] = 0x1b;
        b[p++] = hi >>> 24;
        b[p++] = (hi >>> 16) & 0xff;
        b[p++] = (hi >>> 8) & 0xff;
        b[p++] = hi & 0xff;
        b[p++] = lo >>> 24;
        b[p++] = (lo >>> 16) & 0xff;
        b[p++] = (lo >>> 8) & 0xff;
        b[p++] = lo & 0xff;
      } else p = putUint(b, p, 0, lo);
      p = putUint(b, p, 4, bs);
      fnvBytes(b, p, FNV_LO, FNV_HI, words, 2 * i);
      // The tokens' CBOR bytes go straight into FNV (no scratch copy): the byte chain is the cost.
      // state as in fnvBytes
      let h0 = words[2 * i] & 0xffff;
      let h1 = words[2 * i] >>> 16;
      let hh = words[2 * i + 1] | 0;
      for (let j = 0; j < bs; j++) {
        const t = tokens[base + j];
        if (t >>> 0 !== t) throw new RangeError(`token ids must be uint32, got ${t} at ${base + j}`);
        // shortest-form uint: head byte, then 0, 1, 2 or 4 big-endian bytes
        let byte = t < 24 ? t : t < 0x100 ? 0x18 : t < 0x10000 ? 0x19 : 0x1a;
        let shift = t < 24 ? 0 : t < 0x100 ? 8 : t < 0x10000 ? 16 : 32;
        for (;;) {
          h0 ^= byte;
          const t0 = h0 * 0x1b3;
          const t1 = h1 * 0x1b3 + (t0 >>> 16);
          hh = (Math.imul(hh, 0x1b3) + (t1 >>> 16) + (h1 << 24) + (h0 << 8)) | 0;
          h0 = t0 & 0xffff;
          h1 = t1 & 0xffff;
          if (shift === 0) break;
          shift -= 8;
          byte = (t >>> shift) & 0xff;
        }
      }
      const ex = extras?.[i] ?? NO_EXTRA;
      fnvBytes(ex, ex.length, ((h1 << 16) | h0) >>> 0, hh >>> 0, words, 2 * i);
      lo = words[2 * i];
      hi = words[2 * i + 1];
    }
  }
}

/** CBOR null: the extra of a block without one. */
const NO_EXTRA = Uint8Array.of(0xf6);

function putUint(b: Uint8Array, p: number, major: number, v: number): number {
  const m = major << 5;
  if (v < 24) b[p++] = m | v;
  else if (v < 0x100) {
    b[p++] = m | 24;
    b[p++] = v;
  } else if (v < 0x10000) {
    b[p++] = m | 25;
    b[p++] = v >>> 8;
    b[p++] = v & 0xff;
  } else {
    b[p++] = m | 26;
    b[p++] = v >>> 24;
    b[p++] = (v >>> 16) & 0xff;
    b[p++] = (v >>> 8) & 0xff;
    b[p++] = v & 0xff;
  }
  return p;
}

/** Parses a decimal or 0x-hex uint64 string. */
export function parseKey(s: string): bigint {
  const v = BigInt(s.trim());
  if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError(`not a uint64: ${s}`);
  return v;
}
