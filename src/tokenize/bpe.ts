// Byte-level BPE as HF tokenizers' BPE model runs it (no dropout): a piece's UTF-8 bytes start
// as one symbol each, then the adjacent pair with the lowest merge rank is merged, leftmost
// first on ties, until no pair has a merge. Merges are looked up by integer id pairs in an
// open-addressing table; results are cached per piece (like HF's BPE cache).

/** GPT-2's byte -> printable character map (the alphabet of byte-level vocabularies). */
export function byteToUnicode(): string[] {
  const chars: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return chars;
}

/** Pieces longer than this (UTF-16 units) are not cached (HF: 256 bytes). */
const CACHE_MAX_UNITS = 64;
/** Below this many symbols the quadratic merge loop beats the heap. */
const SMALL_WORD = 48;
const NO_RANK = 0x7fffffff;

export class BpeModel {
  private readonly byteIds = new Int32Array(256);
  /** Open addressing: [left, right, rank, merged id] per slot; left = -1 when empty. */
  private readonly table: Int32Array;
  private readonly mask: number;
  private readonly cache = new Map<string, number | Int32Array>();
  private readonly cacheLimit: number;
  private readonly wholeWord: Map<string, number> | undefined;
  private readonly byteChars: string[];
  /**
   * Merge work done since the caller last reset it, in bytes of uncached pieces (both merge
   * paths cost ~0.15-0.2 us per byte here): lets the caller bound main-thread time.
   */
  work = 0;
  /** encodePiece refuses a piece whose merge would take `work` past this. */
  limit = Infinity;
  // Scratch: the piece's bytes (grown on demand), and the short-piece merge state.
  private bytes = new Uint8Array(256);
  private readonly syms = new Int32Array(SMALL_WORD);
  private readonly ranks = new Int32Array(SMALL_WORD);
  private readonly merged = new Int32Array(SMALL_WORD);
  private large = new LargeScratch(1024);

  /**
   * `vocab` maps byte-level strings to ids; `merges` are [left, right] in rank order.
   * With ignoreMerges, a piece that is itself in the vocabulary is one token (Llama-3).
   * Throws if a merge or a byte is missing from the vocabulary (HF refuses such a file too).
   */
  constructor(vocab: Map<string, number>, merges: [string, string][], ignoreMerges: boolean, cacheLimit = 50_000) {
    this.byteChars = byteToUnicode();
    for (let b = 0; b < 256; b++) {
      const id = vocab.get(this.byteChars[b]);
      if (id === undefined) throw new Error(`byte ${b} (${JSON.stringify(this.byteChars[b])}) is not in the vocabulary`);
      this.byteIds[b] = id;
    }
    let slots = 1024;
    while (slots < merges.length * 2) slots *= 2;
    this.table = new Int32Array(slots * 4).fill(-1);
    this.mask = slots - 1;
    for (let rank = 0; rank < merges.length; rank++) {
      const [a, b] = merges[rank];
      const ia = vocab.get(a);
      const ib = vocab.get(b);
      const im = vocab.get(a + b);
      if (ia === undefined || ib === undefined || im === undefined) throw new Error(`merge ${JSON.stringify(a)} ${JSON.stringify(b)} refers to a token outside the vocabulary`);
      // A repeated pair keeps its last rank, as HF's map built from the list does.
      let h = this.hash(ia, ib);
      const t = this.table;
      while (t[h * 4] !== -1 && !(t[h * 4] === ia && t[h * 4 + 1] === ib)) h = (h + 1) & this.mask;
      t[h * 4] = ia;
      t[h * 4 + 1] = ib;
      t[h * 4 + 2] = rank;
      t[h * 4 + 3] = im;
    }
    this.wholeWord = ignoreMerges ? vocab : undefined;
    this.cacheLimit = cacheLimit;
  }

  private hash(a: number, b: number): number {
    let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77);
    h ^= h >>> 15;
    return h & this.mask;
  }

  /** Slot of the merge (a, b), or -1. */
  private find(a: number, b: number): number {
    const t = this.table;
    let h = this.hash(a, b);
    for (;;) {
      const l = t[h * 4];
      if (l === -1) return -1;
      if (l === a && t[h * 4 + 1] === b) return h;
      h = (h + 1) & this.mask;
    }
  }

  /** Id of a single byte (the whole encoding of a one-byte piece). */
  byteId(b: number): number {
    return this.byteIds[b];
  }

  /** Appends the ids of piece s[start, end) to out; false (nothing appended) when over `limit`. */
  encodePiece(s: string, start: number, end: number, out: number[]): boolean {
    const cacheable = end - start <= CACHE_MAX_UNITS;
    const key = cacheable ? s.slice(start, end) : '';
    if (cacheable) {
      const hit = this.cache.get(key);
      if (hit !== undefined) {
        if (typeof hit === 'number') out.push(hit);
        else for (let i = 0; i < hit.length; i++) out.push(hit[i]);
        return true;
      }
    }
    const n = this.utf8(s, start, end);
    if (this.work + n > this.limit) return false;
    this.work += n;
    const from = out.length;
    if (this.wholeWord !== undefined && this.encodeWhole(n, out)) {
      // done: the piece is one vocabulary token
    } else if (n <= SMALL_WORD) this.mergeSmall(n, out);
    else this.mergeLarge(n, out);
    if (cacheable) {
      if (this.cache.size >= this.cacheLimit) this.cache.clear();
      const count = out.length - from;
      let value: number | Int32Array = out[from];
      if (count !== 1) {
        value = new Int32Array(count);
        for (let i = 0; i < count; i++) value[i] = out[from + i];
      }
      // A slice of 13+ chars would keep the whole request text alive: cache a flat copy.
      this.cache.set(key.length >= 13 ? flatCopy(key) : key, value);
    }
    return true;
  }

  private encodeWhole(n: number, out: number[]): boolean {
    let str = '';
    for (let i = 0; i < n; i++) str += this.byteChars[this.bytes[i]];
    const id = this.wholeWord!.get(str);
    if (id === undefined) return false;
    out.push(id);
    return true;
  }

  /** UTF-8 of s[start, end) into this.bytes (s is well-formed); returns the byte count. */
  private utf8(s: string, start: number, end: number): number {
    if (this.bytes.length < (end - start) * 3) this.grow((end - start) * 3);
    const out = this.bytes;
    let n = 0;
    for (let i = start; i < end; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) out[n++] = c;
      else if (c < 0x800) {
        out[n++] = 0xc0 | (c >> 6);
        out[n++] = 0x80 | (c & 63);
      } else if (c >= 0xd800 && c <= 0xdbff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
        out[n++] = 0xf0 | (c >> 18);
        out[n++] = 0x80 | ((c >> 12) & 63);
        out[n++] = 0x80 | ((c >> 6) & 63);
        out[n++] = 0x80 | (c & 63);
      } else {
        out[n++] = 0xe0 | (c >> 12);
        out[n++] = 0x80 | ((c >> 6) & 63);
        out[n++] = 0x80 | (c & 63);
      }
    }
    return n;
  }

  private grow(n: number): void {
    this.bytes = new Uint8Array(n);
  }

  /** Rank and merged id of (a, b) into ranks[i] / merged[i]. */
  private pair(i: number, a: number, b: number): void {
    const h = this.find(a, b);
    if (h < 0) this.ranks[i] = NO_RANK;
    else {
      this.ranks[i] = this.table[h * 4 + 2];
      this.merged[i] = this.table[h * 4 + 3];
    }
  }

  /** Short pieces: scan for the lowest-ranked pair, merge, shift, repeat. */
  private mergeSmall(n: number, out: number[]): void {
    const syms = this.syms;
    const ranks = this.ranks;
    const merged = this.merged;
    for (let i = 0; i < n; i++) syms[i] = this.byteIds[this.bytes[i]];
    for (let i = 0; i + 1 < n; i++) this.pair(i, syms[i], syms[i + 1]);
    let len = n;
    while (len > 1) {
      let best = NO_RANK;
      let at = -1;
      for (let i = 0; i + 1 < len; i++) {
        if (ranks[i] < best) {
          best = ranks[i];
          at = i;
        }
      }
      if (at < 0) break;
      syms[at] = merged[at];
      for (let j = at + 1; j + 1 < len; j++) {
        syms[j] = syms[j + 1];
        ranks[j] = ranks[j + 1];
        merged[j] = merged[j + 1];
      }
      len--;
      if (at > 0) this.pair(at - 1, syms[at - 1], syms[at]);
      if (at + 1 < len) this.pair(at, syms[at], syms[at + 1]);
    }
    for (let i = 0; i < len; i++) out.push(syms[i]);
  }

  /** Long pieces: HF's algorithm (linked symbols, min-heap on (rank, position)). */
  private mergeLarge(n: number, out: number[]): void {
    if (this.large.capacity < n) this.large = new LargeScratch(n * 2);
    const { sym, prev, next, heap } = this.large;
    for (let i = 0; i < n; i++) {
      sym[i] = this.byteIds[this.bytes[i]];
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    heap.size = 0;
    for (let i = 0; i + 1 < n; i++) {
      const h = this.find(sym[i], sym[i + 1]);
      if (h >= 0) heap.push(this.table[h * 4 + 2], i, this.table[h * 4 + 3]);
    }
    while (heap.size > 0) {
      const pos = heap.topPos();
      const newId = heap.topId();
      heap.pop();
      // Merged away (sym -1) or last symbol: nothing to do.
      if (sym[pos] === -1 || next[pos] === -1) continue;
      const right = next[pos];
      // A stale entry: the pair at pos no longer merges into newId.
      const h = this.find(sym[pos], sym[right]);
      if (h < 0 || this.table[h * 4 + 3] !== newId) continue;
      sym[pos] = newId;
      sym[right] = -1;
      next[pos] = next[right];
      if (next[right] !== -1) prev[next[right]] = pos;
      if (prev[pos] >= 0) {
        const p = prev[pos];
        const hp = this.find(sym[p], sym[pos]);
        if (hp >= 0) heap.push(this.table[hp * 4 + 2], p, this.table[hp * 4 + 3]);
      }
      if (next[pos] !== -1) {
        const hn = this.find(sym[pos], sym[next[pos]]);
        if (hn >= 0) heap.push(this.table[hn * 4 + 2], pos, this.table[hn * 4 + 3]);
      }
    }
    for (let i = 0; i !== -1; i = next[i]) out.push(sym[i]);
  }

  clearCache(): void {
    this.cache.clear();
  }
}

const copyCodes = new Uint16Array(CACHE_MAX_UNITS);

/** A string with its own storage (not a V8 slice of a larger string). */
function flatCopy(key: string): string {
  for (let i = 0; i < key.length; i++) copyCodes[i] = key.charCodeAt(i);
  return String.fromCharCode.apply(null, copyCodes.subarray(0, key.length) as unknown as number[]);
}

/** Reused state of mergeLarge (typed-array allocation per piece costs more than the merge). */
class LargeScratch {
  readonly sym: Int32Array;
  readonly prev: Int32Array;
  readonly next: Int32Array;
  readonly heap: MergeHeap;
  constructor(readonly capacity: number) {
    this.sym = new Int32Array(capacity);
    this.prev = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
    // n - 1 initial pairs plus at most two per merge.
    this.heap = new MergeHeap(capacity * 3);
  }
}

/** Binary min-heap of (rank, pos, id) ordered by rank then pos. */
class MergeHeap {
  private readonly rank: Int32Array;
  private readonly pos: Int32Array;
  private readonly id: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.rank = new Int32Array(capacity);
    this.pos = new Int32Array(capacity);
    this.id = new Int32Array(capacity);
  }

  private less(a: number, b: number): boolean {
    return this.rank[a] < this.rank[b] || (this.rank[a] === this.rank[b] && this.pos[a] < this.pos[b]);
  }

  private swap(a: number, b: number): void {
    let t = this.rank[a];
    this.rank[a] = this.rank[b];
    this.rank[b] = t;
    t = this.pos[a];
    this.pos[a] = this.pos[b];
    this.pos[b] = t;
    t = this.id[a];
    this.id[a] = this.id[b];
    this.id[b] = t;
  }

  push(rank: number, pos: number, id: number): void {
    let i = this.size++;
    this.rank[i] = rank;
    this.pos[i] = pos;
    this.id[i] = id;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  topPos(): number {
    return this.pos[0];
  }

  topId(): number {
    return this.id[0];
  }

  pop(): void {
    const last = --this.size;
    if (last === 0) return;
    this.swap(0, last);
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < last && this.less(l, m)) m = l;
      if (r < last && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }
}
