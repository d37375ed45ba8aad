// A structural pass over a msgpack payload before it is decoded: no allocation, O(1) state
// (one counter per nesting level), one pass over the bytes. @msgpack/msgpack allocates an
// array of the declared length as soon as it reads a container header, so 40 nested array32
// headers of 16,777,215 elements each (a 201-byte message) would ask for ~5 GB. This pass
// rejects any payload whose declared elements the remaining bytes cannot hold (each element
// takes at least one byte), so after it the decoder allocates at most one slot per payload
// byte. It also bounds nesting depth, total elements and the event count of a batch.

export type GuardKind = 'truncated' | 'depth' | 'elements' | 'events' | 'trailing' | 'invalid';

export class GuardError extends Error {
  override name = 'GuardError';
  constructor(
    readonly kind: GuardKind,
    message: string,
  ) {
    super(message);
  }
}

export interface GuardLimits {
  /** Deepest nesting accepted (batch = 1, events = 2, event = 3, a field = 4, ...). Default 8. */
  maxDepth?: number;
  /** Containers' declared elements summed over the payload. Default: the payload length. */
  maxElements?: number;
  /** Elements of the events container (any container at depth 2). Default 65,536. */
  maxEvents?: number;
}

export const DEFAULT_MAX_DEPTH = 8;
export const DEFAULT_MAX_EVENTS = 65_536;

/** Start offsets checkMsgpack records of the root container's first elements (a batch has at most 3). */
export const ROOT_STARTS = 4;

/**
 * Throws a GuardError unless `buf` is exactly one well-formed msgpack value within the limits.
 * `rootStarts`, when given, receives the byte offsets where the root container's first
 * ROOT_STARTS elements start (so a caller can read one of them without decoding the rest).
 */
export function checkMsgpack(buf: Uint8Array, limits: GuardLimits = {}, rootStarts?: number[]): void {
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH;
  const maxElements = limits.maxElements ?? buf.length;
  const maxEvents = limits.maxEvents ?? DEFAULT_MAX_EVENTS;
  const n = buf.length;
  // left[d]: values still owed to the container open at depth d (depth 0 = the root slot)
  const left = new Array<number>(maxDepth + 1).fill(0);
  let depth = 0;
  left[0] = 1;
  // values owed by every open container; each needs at least one more byte
  let owed = 1;
  let elements = 0;
  let p = 0;
  // One loop with every cursor in locals (no closures over `p`: this runs once per token id).
  while (owed > 0) {
    // take one value from the innermost open container
    while (left[depth] === 0) depth--;
    if (depth > 1) {
      // a run of ints inside a container (token ids): the same checks as below, fewer branches;
      // anything else (or a value the bytes left cannot hold) goes the general way
      let l = left[depth];
      while (l > 0) {
        const c = buf[p];
        if (c <= 0x7f || c >= 0xe0) p += 1;
        else if (c === 0xcd) {
          if (p + 3 > n) break;
          p += 3;
        } else if (c === 0xcc) {
          if (p + 2 > n) break;
          p += 2;
        } else if (c === 0xce) {
          if (p + 5 > n) break;
          p += 5;
        } else break;
        l--;
        owed--;
        if (owed > n - p) throw overdrawn(owed, n - p);
      }
      left[depth] = l;
      if (l === 0) continue;
    }
    if (depth === 1 && rootStarts && rootStarts.length < ROOT_STARTS) rootStarts.push(p);
    left[depth]--;
    owed--;
    if (p >= n) throw truncated(p, 1, n);
    const b = buf[p++];
    // each value either skips `k` bytes or opens a container of `count` values
    let k = -1;
    let count = -1;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) continue; // fixint, nil, bool
    if (b >= 0xa0 && b <= 0xbf) k = b & 0x1f; // fixstr
    else if (b >= 0x90 && b <= 0x9f) count = b & 0x0f; // fixarray
    else if (b >= 0x80 && b <= 0x8f) count = (b & 0x0f) * 2; // fixmap
    else {
      switch (b) {
        case 0xcc: case 0xd0: k = 1; break;
        case 0xcd: case 0xd1: k = 2; break;
        case 0xce: case 0xd2: case 0xca: k = 4; break;
        case 0xcf: case 0xd3: case 0xcb: k = 8; break;
        case 0xd9: case 0xc4: if (p + 1 > n) throw truncated(p, 1, n); k = buf[p++]; break;
        case 0xda: case 0xc5: if (p + 2 > n) throw truncated(p, 2, n); k = u16(buf, p); p += 2; break;
        case 0xdb: case 0xc6: if (p + 4 > n) throw truncated(p, 4, n); k = u32(buf, p); p += 4; break;
        case 0xdc: if (p + 2 > n) throw truncated(p, 2, n); count = u16(buf, p); p += 2; break;
        case 0xdd: if (p + 4 > n) throw truncated(p, 4, n); count = u32(buf, p); p += 4; break;
        case 0xde: if (p + 2 > n) throw truncated(p, 2, n); count = u16(buf, p) * 2; p += 2; break;
        case 0xdf: if (p + 4 > n) throw truncated(p, 4, n); count = u32(buf, p) * 2; p += 4; break;
        case 0xd4: k = 2; break; // fixext: type + 1..16 bytes
        case 0xd5: k = 3; break;
        case 0xd6: k = 5; break;
        case 0xd7: k = 9; break;
        case 0xd8: k = 17; break;
        case 0xc7: if (p + 1 > n) throw truncated(p, 1, n); k = 1 + buf[p++]; break;
        case 0xc8: if (p + 2 > n) throw truncated(p, 2, n); k = 1 + u16(buf, p); p += 2; break;
        case 0xc9: if (p + 4 > n) throw truncated(p, 4, n); k = 1 + u32(buf, p); p += 4; break;
        default: throw new GuardError('invalid', `invalid msgpack byte 0x${b.toString(16)} at ${p - 1}`);
      }
    }
    if (k >= 0) {
      if (p + k > n) throw truncated(p, k, n);
      p += k;
      if (owed > n - p) throw overdrawn(owed, n - p);
      continue;
    }
    // the container itself took its slot; now it owes `count` values
    if (count === 0) continue;
    if (depth + 1 > maxDepth) throw new GuardError('depth', `msgpack nesting deeper than ${maxDepth}`);
    if (depth + 1 === 2 && count > maxEvents) throw new GuardError('events', `batch declares ${count} events (limit ${maxEvents})`);
    elements += count;
    if (elements > maxElements) throw new GuardError('elements', `msgpack declares more than ${maxElements} elements`);
    owed += count;
    if (owed > n - p) throw overdrawn(owed, n - p);
    depth++;
    left[depth] = count;
  }
  if (p !== n) throw new GuardError('trailing', `${n - p} bytes after the msgpack value`);
}

function truncated(p: number, k: number, n: number): GuardError {
  return new GuardError('truncated', `msgpack value at byte ${p} needs ${k} bytes, ${n - p} left`);
}

function overdrawn(owed: number, rest: number): GuardError {
  return new GuardError('truncated', `msgpack declares ${owed} more values than the ${rest} bytes left can hold`);
}

function u16(buf: Uint8Array, p: number): number {
  return (buf[p] << 8) | buf[p + 1];
}

function u32(buf: Uint8Array, p: number): number {
  return buf[p] * 0x1000000 + ((buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]);
}
