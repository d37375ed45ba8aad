// The hot path of decodeCheckedBatch (decode.ts): reads the batch shapes vLLM sends straight
// from the checked payload into events, without the generic msgpack tree (@msgpack/msgpack
// builds an object per event, a Uint8Array or BigInt per hash, then decode.ts copies it out;
// at 64 pods that was the largest CPU share of the router: bench/virtual.bench.ts).
// It only ever says "I decoded it exactly as the library path would" or "not mine": anything
// unusual (batch as a map, a field of an unexpected type, a bad event, ext, non-ASCII strings,
// 64-bit ints outside hashes, unknown map keys) returns null and the library path decodes the
// whole payload, so skipped-event reasons and rejections come from one place.
// test/events/fast-decode.test.ts holds it to the library path on every wire version and on
// fuzzed payloads.
import type { AllBlocksCleared, BlockRemoved, BlockStored, DecodedBatch, KvEvent } from './types.js';

/** Thrown (one shared instance, no stack) when a payload is not the fast path's. */
class NotMine extends Error {}
const NOT_MINE = new NotMine('not a fast-path payload');

// The library decoder's limits (decode.ts): a value beyond them fails the whole payload there.
const MAX_STR = 1 << 20;
const MAX_BIN = 1 << 20;
const MAX_ARRAY = 1 << 24;

const U64 = 0xffffffffffffffffn;

// Field ids: BlockStored's array positions; map keys and BlockRemoved positions map onto them.
const F_TYPE = 0;
const F_HASHES = 1;
const F_PARENT = 2;
const F_TOKENS = 3;
const F_BLOCK_SIZE = 4;
const F_LORA_ID = 5;
const F_MEDIUM = 6;
const F_LORA_NAME = 7;
const F_EXTRA = 8;
const F_GROUP = 9;
const F_SPEC_KIND = 10;
const F_SLIDING = 11;
const KEY_NAMES = ['type', 'block_hashes', 'parent_block_hash', 'token_ids', 'block_size', 'lora_id', 'medium', 'lora_name', 'extra_keys', 'group_idx', 'kv_cache_spec_kind', 'kv_cache_spec_sliding_window'];
const KEY_BYTES = KEY_NAMES.map((k) => Buffer.from(k, 'latin1'));
const REMOVED_POS = [F_TYPE, F_HASHES, F_MEDIUM, F_GROUP];

const TAG_STORED = Buffer.from('BlockStored', 'latin1');
const TAG_REMOVED = Buffer.from('BlockRemoved', 'latin1');
const TAG_CLEARED = Buffer.from('AllBlocksCleared', 'latin1');
const STORED = 1;
const REMOVED = 2;
const CLEARED = 3;
const CLEARED_EVENT: AllBlocksCleared = Object.freeze({ type: 'AllBlocksCleared' as const });

/** Field values of the event being read (undefined = absent, as in the library path). */
class Fields {
  seen = 0;
  hashes: bigint[] | undefined = undefined;
  parent: bigint | null | undefined = undefined;
  tokens: number[] | null | undefined = undefined;
  blockSize: number | null | undefined = undefined;
  loraId: number | null | undefined = undefined;
  medium: string | null | undefined = undefined;
  loraName: string | null | undefined = undefined;
  extra: (unknown[] | null)[] | null | undefined = undefined;
  groupIdx: number | null | undefined = undefined;
  specKind: string | null | undefined = undefined;
  sliding: number | null | undefined = undefined;
  reset(): void {
    this.seen = 0;
    this.hashes = undefined;
    this.parent = undefined;
    this.tokens = undefined;
    this.blockSize = undefined;
    this.loraId = undefined;
    this.medium = undefined;
    this.loraName = undefined;
    this.extra = undefined;
    this.groupIdx = undefined;
    this.specKind = undefined;
    this.sliding = undefined;
  }
}

class Reader {
  p = 0;
  /** Byte length of the string header strLen() read last. */
  lastLen = 0;
  readonly dv: DataView;
  constructor(readonly b: Uint8Array) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  nil(): boolean {
    if (this.b[this.p] !== 0xc0) return false;
    this.p++;
    return true;
  }

  /** Element count of an array here, or -1 (nothing consumed) when the value is not an array. */
  arrayLen(): number {
    const b = this.b[this.p];
    let n: number;
    if (b >= 0x90 && b <= 0x9f) {
      this.p += 1;
      return b & 0x0f;
    } else if (b === 0xdc) {
      n = this.dv.getUint16(this.p + 1);
      this.p += 3;
    } else if (b === 0xdd) {
      n = this.dv.getUint32(this.p + 1);
      this.p += 5;
    } else return -1;
    if (n > MAX_ARRAY) throw NOT_MINE;
    return n;
  }

  /** Pair count of a map here, or -1 (nothing consumed). */
  mapLen(): number {
    const b = this.b[this.p];
    if (b >= 0x80 && b <= 0x8f) {
      this.p += 1;
      return b & 0x0f;
    }
    // maps of 16+ pairs are not a vLLM event: the library path takes them
    return -1;
  }

  /** An int that fits a double exactly (no 64-bit formats: those are BigInts in the library path). */
  int(): number {
    const b = this.b[this.p];
    const dv = this.dv;
    const p = this.p;
    if (b <= 0x7f) {
      this.p = p + 1;
      return b;
    }
    if (b >= 0xe0) {
      this.p = p + 1;
      return b - 0x100;
    }
    switch (b) {
      case 0xcc: this.p = p + 2; return dv.getUint8(p + 1);
      case 0xcd: this.p = p + 3; return dv.getUint16(p + 1);
      case 0xce: this.p = p + 5; return dv.getUint32(p + 1);
      case 0xd0: this.p = p + 2; return dv.getInt8(p + 1);
      case 0xd1: this.p = p + 3; return dv.getInt16(p + 1);
      case 0xd2: this.p = p + 5; return dv.getInt32(p + 1);
      default: throw NOT_MINE;
    }
  }

  optInt(): number | null {
    return this.nil() ? null : this.int();
  }

  /** Byte length of a string here (header consumed), or -1 (nothing consumed). */
  strLen(): number {
    const b = this.b[this.p];
    let n: number;
    if (b >= 0xa0 && b <= 0xbf) {
      this.p += 1;
      return (this.lastLen = b & 0x1f);
    } else if (b === 0xd9) {
      n = this.b[this.p + 1];
      this.p += 2;
    } else if (b === 0xda) {
      n = this.dv.getUint16(this.p + 1);
      this.p += 3;
    } else if (b === 0xdb) {
      n = this.dv.getUint32(this.p + 1);
      this.p += 5;
    } else return -1;
    if (n > MAX_STR) throw NOT_MINE;
    this.lastLen = n;
    return n;
  }

  /** An ASCII string (others go to the library path, whose UTF-8 decoding is the reference). */
  str(): string {
    if (this.strLen() < 0) throw NOT_MINE;
    return this.strBody();
  }

  /** The ASCII body of the string whose header strLen() just read. */
  private strBody(): string {
    const b = this.b;
    const end = this.p + this.lastLen;
    if (this.lastLen <= INTERN_MAX_LEN) {
      const s = internedAt(b, this.p, end);
      if (s !== null) {
        this.p = end;
        return s;
      }
    }
    let s = '';
    for (let i = this.p; i < end; i++) {
      const c = b[i];
      if (c >= 0x80) throw NOT_MINE;
      s += String.fromCharCode(c);
    }
    if (this.lastLen <= INTERN_MAX_LEN) intern(b, this.p, end, s);
    this.p = end;
    return s;
  }

  optStr(): string | null {
    return this.nil() ? null : this.str();
  }

  /** Whether the `n` bytes at the cursor are `want` (the cursor moves past them either way). */
  bytesAre(n: number, want: Uint8Array): boolean {
    const start = this.p;
    this.p += n;
    if (n !== want.length) return false;
    const b = this.b;
    for (let i = 0; i < n; i++) if (b[start + i] !== want[i]) return false;
    return true;
  }

  /** A block hash as uint64, as normalizeHash() makes it (decode.ts). */
  hash(): bigint {
    const b = this.b[this.p];
    const p = this.p;
    const dv = this.dv;
    switch (b) {
      case 0xcf:
      case 0xd3:
        // two's complement of an int64 is its uint64 reading
        this.p = p + 9;
        return dv.getBigUint64(p + 1);
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        const n = b === 0xc4 ? this.b[p + 1] : b === 0xc5 ? dv.getUint16(p + 1) : dv.getUint32(p + 1);
        const start = p + (b === 0xc4 ? 2 : b === 0xc5 ? 3 : 5);
        if (n === 0 || n > MAX_BIN) throw NOT_MINE;
        this.p = start + n;
        if (n >= 8) return dv.getBigUint64(start + n - 8);
        let h = 0n;
        for (let i = start; i < start + n; i++) h = (h << 8n) | BigInt(this.b[i]);
        return h;
      }
      default: {
        const v = this.int();
        return v >= 0 ? BigInt(v) : BigInt(v) & U64;
      }
    }
  }

  hashes(): bigint[] {
    const n = this.arrayLen();
    if (n < 0) throw NOT_MINE;
    const out = new Array<bigint>(n);
    for (let i = 0; i < n; i++) out[i] = this.hash();
    return out;
  }

  /** token_ids: uint32s only (anything else is a skipped event: the library path says why). */
  tokens(): number[] {
    const n = this.arrayLen();
    if (n < 0) throw NOT_MINE;
    const out = new Array<number>(n);
    const b = this.b;
    let p = this.p;
    for (let i = 0; i < n; i++) {
      const c = b[p];
      if (c <= 0x7f) {
        out[i] = c;
        p += 1;
      } else if (c === 0xcd) {
        out[i] = (b[p + 1] << 8) | b[p + 2];
        p += 3;
      } else if (c === 0xcc) {
        out[i] = b[p + 1];
        p += 2;
      } else if (c === 0xce) {
        out[i] = b[p + 1] * 0x1000000 + ((b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]);
        p += 5;
      } else throw NOT_MINE;
    }
    this.p = p;
    return out;
  }

  /**
   * extra_keys: per block nil (what vLLM sends for plain text) or a flat array of strings and
   * ints (LoRA name, MM identifiers, cache_salt); other items (tuples, bytes) are the library path's.
   */
  extraKeys(): (unknown[] | null)[] {
    const n = this.arrayLen();
    if (n < 0) throw NOT_MINE;
    const out = new Array<unknown[] | null>(n);
    for (let i = 0; i < n; i++) {
      if (this.nil()) {
        out[i] = null;
        continue;
      }
      const m = this.arrayLen();
      if (m < 0) throw NOT_MINE;
      const items = new Array<unknown>(m);
      for (let j = 0; j < m; j++) items[j] = this.strLen() >= 0 ? this.strBody() : this.int();
      out[i] = items;
    }
    return out;
  }

  /** Skips a value the library path would decode and ignore (maps and ext: not mine). */
  skip(): void {
    let owed = 1;
    const b = this.b;
    while (owed > 0) {
      owed--;
      const c = b[this.p];
      if (c <= 0x7f || c >= 0xe0 || c === 0xc0 || c === 0xc2 || c === 0xc3) {
        this.p++;
        continue;
      }
      const a = this.arrayLen();
      if (a >= 0) {
        owed += a;
        continue;
      }
      const s = this.strLen();
      if (s >= 0) {
        this.p += s;
        continue;
      }
      switch (c) {
        case 0xcc: case 0xd0: this.p += 2; break;
        case 0xcd: case 0xd1: this.p += 3; break;
        case 0xce: case 0xd2: case 0xca: this.p += 5; break;
        case 0xcf: case 0xd3: case 0xcb: this.p += 9; break;
        case 0xc4: case 0xc5: case 0xc6: {
          const n = c === 0xc4 ? b[this.p + 1] : c === 0xc5 ? this.dv.getUint16(this.p + 1) : this.dv.getUint32(this.p + 1);
          if (n > MAX_BIN) throw NOT_MINE;
          this.p += (c === 0xc4 ? 2 : c === 0xc5 ? 3 : 5) + n;
          break;
        }
        default:
          throw NOT_MINE;
      }
    }
  }

  /** Reads field `id` into `f` (a repeated map key is not mine: the library keeps the last). */
  field(id: number, f: Fields): void {
    const bit = 1 << id;
    if (f.seen & bit) throw NOT_MINE;
    f.seen |= bit;
    switch (id) {
      case F_HASHES: f.hashes = this.hashes(); return;
      case F_PARENT: f.parent = this.nil() ? null : this.hash(); return;
      case F_TOKENS: f.tokens = this.nil() ? null : this.tokens(); return;
      case F_BLOCK_SIZE: f.blockSize = this.optInt(); return;
      case F_LORA_ID: f.loraId = this.optInt(); return;
      case F_MEDIUM: f.medium = this.optStr(); return;
      case F_LORA_NAME: f.loraName = this.optStr(); return;
      case F_EXTRA: f.extra = this.nil() ? null : this.extraKeys(); return;
      case F_GROUP: f.groupIdx = this.optInt(); return;
      case F_SPEC_KIND: f.specKind = this.optStr(); return;
      case F_SLIDING: f.sliding = this.optInt(); return;
      default: throw NOT_MINE;
    }
  }

  /** The event tag here (STORED, REMOVED, CLEARED); anything else is not mine. */
  tag(): number {
    const n = this.strLen();
    if (n < 0) throw NOT_MINE;
    const at = this.p;
    if (this.bytesAre(n, TAG_STORED)) return STORED;
    this.p = at;
    if (this.bytesAre(n, TAG_REMOVED)) return REMOVED;
    this.p = at;
    if (this.bytesAre(n, TAG_CLEARED)) return CLEARED;
    throw NOT_MINE;
  }

  /** A map key's field id; unknown keys are not mine. */
  key(): number {
    const n = this.strLen();
    if (n < 0) throw NOT_MINE;
    const at = this.p;
    for (let id = 0; id < KEY_BYTES.length; id++) {
      this.p = at;
      if (this.bytesAre(n, KEY_BYTES[id])) return id;
    }
    throw NOT_MINE;
  }

  event(f: Fields): KvEvent {
    f.reset();
    let kind: number;
    const len = this.arrayLen();
    if (len >= 1) {
      kind = this.tag();
      for (let pos = 1; pos < len; pos++) {
        const id = kind === STORED ? pos : kind === REMOVED ? (REMOVED_POS[pos] ?? -1) : -1;
        if (id < 0 || id > F_SLIDING) this.skip();
        else this.field(id, f);
      }
    } else {
      const pairs = this.mapLen();
      if (pairs < 0) throw NOT_MINE;
      kind = 0;
      for (let i = 0; i < pairs; i++) {
        const id = this.key();
        if (id === F_TYPE) {
          if (kind !== 0) throw NOT_MINE;
          kind = this.tag();
        } else this.field(id, f);
      }
    }
    return build(kind, f);
  }
}

/** The event decodeEvent() (decode.ts) makes of these fields, or not mine where it would skip it. */
function build(kind: number, f: Fields): KvEvent {
  if (kind === CLEARED) return CLEARED_EVENT;
  if (f.hashes === undefined) throw NOT_MINE;
  if (kind === REMOVED) {
    const ev: BlockRemoved = { type: 'BlockRemoved', blockHashes: f.hashes, medium: f.medium ?? null, groupIdx: f.groupIdx ?? null };
    return ev;
  }
  if (kind !== STORED) throw NOT_MINE;
  const bs = f.blockSize;
  if (bs === undefined || bs === null || bs <= 0) throw NOT_MINE;
  const ev: BlockStored = {
    type: 'BlockStored',
    blockHashes: f.hashes,
    parentBlockHash: f.parent ?? null,
    tokenIds: f.tokens ?? [],
    blockSize: bs,
    loraId: f.loraId ?? null,
    medium: f.medium ?? null,
    loraName: f.loraName ?? null,
    extraKeys: f.extra ?? null,
    groupIdx: f.groupIdx ?? null,
    kvCacheSpecKind: f.specKind ?? null,
    kvCacheSpecSlidingWindow: f.sliding ?? null,
  };
  return ev;
}

const fields = new Fields();

// Short strings repeat in every event (medium "GPU", spec kinds, LoRA names): each is built once
// and found again by its bytes in a small fixed table (a collision replaces the slot), instead of
// a character-by-character concatenation per event.
const INTERN_MAX_LEN = 32;
const INTERN_SLOTS = 256;
const internBytes: (Uint8Array | null)[] = new Array<Uint8Array | null>(INTERN_SLOTS).fill(null);
const internStrings: string[] = new Array<string>(INTERN_SLOTS).fill('');

function internSlot(b: Uint8Array, from: number, to: number): number {
  let h = to - from;
  for (let i = from; i < to; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return (h ^ (h >>> 16)) & (INTERN_SLOTS - 1);
}

/** The interned string whose bytes are b[from..to), or null. */
function internedAt(b: Uint8Array, from: number, to: number): string | null {
  const slot = internSlot(b, from, to);
  const have = internBytes[slot];
  if (have === null || have.length !== to - from) return null;
  for (let i = 0; i < have.length; i++) if (have[i] !== b[from + i]) return null;
  return internStrings[slot];
}

function intern(b: Uint8Array, from: number, to: number, s: string): void {
  const slot = internSlot(b, from, to);
  internBytes[slot] = b.slice(from, to);
  internStrings[slot] = s;
}

/**
 * Decodes a payload that passed checkMsgpack (msgpack-guard.ts) when it has the shape vLLM
 * sends ([ts, events(, rank)] with well-typed events); null when the library path must.
 */
export function fastDecodeBatch(payload: Uint8Array): DecodedBatch | null {
  const r = new Reader(payload);
  try {
    const len = r.arrayLen();
    if (len < 2) return null;
    let ts: number;
    if (payload[r.p] === 0xcb) {
      ts = r.dv.getFloat64(r.p + 1);
      r.p += 9;
    } else ts = r.int();
    const n = r.arrayLen();
    if (n < 0) return null;
    const events = new Array<KvEvent>(n);
    for (let i = 0; i < n; i++) events[i] = r.event(fields);
    let rank: number | null = null;
    if (len >= 3 && !r.nil()) {
      rank = r.int();
      if (rank < 0 || rank >= 1 << 16) return null;
    }
    for (let i = 3; i < len; i++) r.skip();
    if (r.p !== payload.length) return null;
    return { ts, events, dataParallelRank: rank, skipped: [] };
  } catch {
    // NOT_MINE, or a read past the end of a payload that skipped checkMsgpack: the library path decides
    return null;
  }
}
