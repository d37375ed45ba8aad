// Engine-key map: (pod, engine key) -> the request keys it maps to (the newest inline, earlier
// ones in an overflow list). Per pod, because engine hashes only mean something within one
// engine (random NONE_HASH without PYTHONHASHSEED). Separate chaining over nodes in fixed
// chunks that never move, so growing rebuilds only the bucket heads (4 bytes per bucket)
// instead of copying every mapping into a fresh table.
import * as arrays from './arrays.js';
// Imported bindings are re-read and checked on every use, which costs a hot loop dearly (measured
// ~25x on a record-field loop); module constants copied from them once are not.
const { NONE, grown, mix } = arrays;

// A node is EN int32 at (n & ECHUNK_MASK) * EN in chunk n >>> ECHUNK_BITS.
const EN = 7;
/** Engine key halves. */
const E_LO = 0;
const E_HI = 1;
/** Pod + 1 (0 = free node). */
const E_POD = 2;
/** The newest request key mapped (the parent for the next block). */
const E_REQ_LO = 3;
const E_REQ_HI = 4;
/** Head of the overflow list of earlier request keys. */
const E_OVERFLOW = 5;
/** Next node in the bucket (or in the free list). */
const E_NEXT = 6;
const ECHUNK_BITS = 16; // nodes per chunk: 2^16
const ECHUNK_MASK = (1 << ECHUNK_BITS) - 1;
const POD_SALT = 0x27d4eb2f;

export class EngineMap {
  private chunks: Int32Array[] = [];
  private top = 0;
  private free = NONE;
  private heads = new Int32Array(1024).fill(NONE);
  private bits = 10;
  /** Live mappings. */
  count = 0;
  // overflow list nodes: request key halves and the next node
  private oLo = new Int32Array(64);
  private oHi = new Int32Array(64);
  private oNext = new Int32Array(64);
  private oTop = 0;
  private oFree = NONE;

  private home(p: number, lo: number, hi: number): number {
    return mix(lo ^ Math.imul(p + 1, POD_SALT), hi) >>> (32 - this.bits);
  }

  /** Field `f` of node `n`. */
  private field(n: number, f: number): number {
    return this.chunks[n >>> ECHUNK_BITS][(n & ECHUNK_MASK) * EN + f];
  }

  private setField(n: number, f: number, v: number): void {
    this.chunks[n >>> ECHUNK_BITS][(n & ECHUNK_MASK) * EN + f] = v;
  }

  /** Node of (pod `p`, engine key), or NONE. */
  find(p: number, lo: number, hi: number): number {
    const chunks = this.chunks;
    for (let n = this.heads[this.home(p, lo, hi)]; n !== NONE; ) {
      const c = chunks[n >>> ECHUNK_BITS];
      const b = (n & ECHUNK_MASK) * EN;
      if (c[b + E_LO] === lo && c[b + E_HI] === hi && c[b + E_POD] === p + 1) return n;
      n = c[b + E_NEXT];
    }
    return NONE;
  }

  /** Maps (pod `p`, engine key) to a request key (kept once). Returns true when a new node was made. */
  map(p: number, lo: number, hi: number, rlo: number, rhi: number): boolean {
    const h = this.home(p, lo, hi);
    let n = this.heads[h];
    while (n !== NONE) {
      const c = this.chunks[n >>> ECHUNK_BITS];
      const b = (n & ECHUNK_MASK) * EN;
      if (c[b + E_LO] === lo && c[b + E_HI] === hi && c[b + E_POD] === p + 1) break;
      n = c[b + E_NEXT];
    }
    if (n === NONE) {
      let m = this.free;
      if (m !== NONE) this.free = this.field(m, E_NEXT);
      else {
        m = this.top++;
        if (m >>> ECHUNK_BITS >= this.chunks.length) this.chunks.push(new Int32Array(EN << ECHUNK_BITS));
      }
      const c = this.chunks[m >>> ECHUNK_BITS];
      const b = (m & ECHUNK_MASK) * EN;
      c[b + E_LO] = lo;
      c[b + E_HI] = hi;
      c[b + E_POD] = p + 1;
      c[b + E_REQ_LO] = rlo;
      c[b + E_REQ_HI] = rhi;
      c[b + E_OVERFLOW] = NONE;
      c[b + E_NEXT] = this.heads[h];
      this.heads[h] = m;
      this.count++;
      if (this.count > this.heads.length) this.rehash(this.bits + 1, NONE);
      return true;
    }
    const c = this.chunks[n >>> ECHUNK_BITS];
    const b = (n & ECHUNK_MASK) * EN;
    if (c[b + E_REQ_LO] === rlo && c[b + E_REQ_HI] === rhi) return false;
    for (let o = c[b + E_OVERFLOW]; o !== NONE; o = this.oNext[o]) if (this.oLo[o] === rlo && this.oHi[o] === rhi) return false;
    // the newest mapping stays inline (it is the parent for the next block)
    let o = this.oFree;
    if (o !== NONE) this.oFree = this.oNext[o];
    else {
      o = this.oTop++;
      if (o >= this.oLo.length) {
        this.oLo = grown(this.oLo, o + 1);
        this.oHi = grown(this.oHi, o + 1);
        this.oNext = grown(this.oNext, o + 1);
      }
    }
    this.oLo[o] = c[b + E_REQ_LO];
    this.oHi[o] = c[b + E_REQ_HI];
    this.oNext[o] = c[b + E_OVERFLOW];
    c[b + E_OVERFLOW] = o;
    c[b + E_REQ_LO] = rlo;
    c[b + E_REQ_HI] = rhi;
    return false;
  }

  /** The newest request key of node `n` as (lo, hi) unsigned halves. */
  newestRequestKey(n: number): bigint {
    return (BigInt(this.field(n, E_REQ_HI) >>> 0) << 32n) | BigInt(this.field(n, E_REQ_LO) >>> 0);
  }

  /** Every request key of node `n`, as (lo, hi) pairs, newest first. */
  requestKeys(n: number): number[] {
    const out = [this.field(n, E_REQ_LO), this.field(n, E_REQ_HI)];
    for (let o = this.field(n, E_OVERFLOW); o !== NONE; o = this.oNext[o]) out.push(this.oLo[o], this.oHi[o]);
    return out;
  }

  /** Pod of node `n`. */
  podOf(n: number): number {
    return this.field(n, E_POD) - 1;
  }

  /** Returns node `n` and its overflow list to the free lists (the caller unlinks it). */
  private release(n: number): void {
    const c = this.chunks[n >>> ECHUNK_BITS];
    const b = (n & ECHUNK_MASK) * EN;
    for (let o = c[b + E_OVERFLOW]; o !== NONE; ) {
      const next = this.oNext[o];
      this.oNext[o] = this.oFree;
      this.oFree = o;
      o = next;
    }
    c[b + E_POD] = 0;
    c[b + E_OVERFLOW] = NONE;
    c[b + E_NEXT] = this.free;
    this.free = n;
    this.count--;
  }

  delete(n: number): void {
    const h = this.home(this.podOf(n), this.field(n, E_LO), this.field(n, E_HI));
    if (this.heads[h] === n) this.heads[h] = this.field(n, E_NEXT);
    else {
      let m = this.heads[h];
      while (this.field(m, E_NEXT) !== n) m = this.field(m, E_NEXT);
      this.setField(m, E_NEXT, this.field(n, E_NEXT));
    }
    this.release(n);
  }

  /** Drops every mapping of pod `p`. */
  removePod(p: number): void {
    this.rehash(this.bits, p);
  }

  /** Drops the mappings `keep` rejects. */
  retain(keep: (n: number) => boolean): void {
    this.rehash(this.bits, NONE, keep);
  }

  /**
   * Rebuilds the bucket heads with `bits` bits, dropping pod `dropPod`'s mappings (or none)
   * and those `keep` rejects.
   */
  private rehash(bits: number, dropPod: number, keep?: (n: number) => boolean): void {
    const heads = bits === this.bits ? this.heads.fill(NONE) : new Int32Array(1 << bits).fill(NONE);
    this.heads = heads;
    this.bits = bits;
    const shift = 32 - bits;
    for (let n = 0; n < this.top; n++) {
      const c = this.chunks[n >>> ECHUNK_BITS];
      const b = (n & ECHUNK_MASK) * EN;
      const q = c[b + E_POD];
      if (q === 0) continue;
      if (q - 1 === dropPod || (keep && !keep(n))) {
        this.release(n);
        continue;
      }
      const h = mix(c[b + E_LO] ^ Math.imul(q, POD_SALT), c[b + E_HI]) >>> shift;
      c[b + E_NEXT] = heads[h];
      heads[h] = n;
    }
  }

  /** Reads the bucket and first node of every engine key of pod `p` (see KeyTable.touch). */
  touch(k: Int32Array, p: number): number {
    if (this.chunks.length === 0) return 0;
    const { heads, chunks } = this;
    const shift = 32 - this.bits;
    const salt = Math.imul(p + 1, POD_SALT);
    let sink = 0;
    for (let i = 0; i < k.length; i += 2) {
      const h = heads[mix(k[i] ^ salt, k[i + 1]) >>> shift]; // home()
      const n = h & ~(h >> 31);
      sink ^= chunks[n >>> ECHUNK_BITS][(n & ECHUNK_MASK) * EN];
    }
    return sink;
  }

  byteLength(): number {
    return this.heads.byteLength + this.chunks.reduce((s, c) => s + c.byteLength, 0) + this.oLo.byteLength + this.oHi.byteLength + this.oNext.byteLength;
  }
}
