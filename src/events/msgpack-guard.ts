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
  const need = (k: number) => {
    if (p + k > n) throw new GuardError('truncated', `msgpack value at byte ${p} needs ${k} bytes, ${n - p} left`);
  };
  const open = (count: number) => {
    // the container itself took its slot; now it owes `count` values
    if (count === 0) return;
    if (depth + 1 > maxDepth) throw new GuardError('depth', `msgpack nesting deeper than ${maxDepth}`);
    if (depth + 1 === 2 && count > maxEvents) throw new GuardError('events', `batch declares ${count} events (limit ${maxEvents})`);
    elements += count;
    if (elements > maxElements) throw new GuardError('elements', `msgpack declares more than ${maxElements} elements`);
    owed += count;
    if (owed > n - p) throw new GuardError('truncated', `msgpack declares ${owed} more values than the ${n - p} bytes left can hold`);
    depth++;
    left[depth] = count;
  };
  while (owed > 0) {
    // take one value from the innermost open container
    while (left[depth] === 0) depth--;
    if (depth === 1 && rootStarts && rootStarts.length < ROOT_STARTS) rootStarts.push(p);
    left[depth]--;
    owed--;
    need(1);
    const b = buf[p++];
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) continue; // fixint, nil, bool
    if (b >= 0xa0 && b <= 0xbf) { skip(b & 0x1f); continue; } // fixstr
    if (b >= 0x90 && b <= 0x9f) { open(b & 0x0f); continue; } // fixarray
    if (b >= 0x80 && b <= 0x8f) { open((b & 0x0f) * 2); continue; } // fixmap
    switch (b) {
      case 0xcc: case 0xd0: skip(1); break;
      case 0xcd: case 0xd1: skip(2); break;
      case 0xce: case 0xd2: case 0xca: skip(4); break;
      case 0xcf: case 0xd3: case 0xcb: skip(8); break;
      case 0xd9: case 0xc4: need(1); skip(buf[p++]); break;
      case 0xda: case 0xc5: need(2); skip(u16()); break;
      case 0xdb: case 0xc6: need(4); skip(u32()); break;
      case 0xdc: need(2); open(u16()); break;
      case 0xdd: need(4); open(u32()); break;
      case 0xde: need(2); open(u16() * 2); break;
      case 0xdf: need(4); open(u32() * 2); break;
      case 0xd4: skip(2); break; // fixext: type + 1..16 bytes
      case 0xd5: skip(3); break;
      case 0xd6: skip(5); break;
      case 0xd7: skip(9); break;
      case 0xd8: skip(17); break;
      case 0xc7: need(1); skip(1 + buf[p++]); break;
      case 0xc8: need(2); skip(1 + u16()); break;
      case 0xc9: need(4); skip(1 + u32()); break;
      default: throw new GuardError('invalid', `invalid msgpack byte 0x${b.toString(16)} at ${p - 1}`);
    }
  }
  if (p !== n) throw new GuardError('trailing', `${n - p} bytes after the msgpack value`);

  function skip(k: number): void {
    need(k);
    p += k;
    if (owed > n - p) throw new GuardError('truncated', `msgpack declares ${owed} more values than the ${n - p} bytes left can hold`);
  }
  function u16(): number {
    const v = (buf[p] << 8) | buf[p + 1];
    p += 2;
    return v;
  }
  function u32(): number {
    const v = buf[p] * 0x1000000 + ((buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]);
    p += 4;
    return v;
  }
}
