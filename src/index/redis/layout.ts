// Redis layout of the shared block index. Every key starts with a configurable prefix P
// (default "kvr:") so several indexes can share one server. Block keys are written as 16
// lower-case hex digits ("<h>"), which keeps key names readable in redis-cli.
//
//   P r:<h>      STRING one router request key: its entries as records
//                        "<pod>\t<tag>[*<refs>]\n"   tag = tier ("gpu", "cpu", ...) or "~gpu" for
//                                                   a speculative entry; "*<refs>" only when the
//                                                   entry is referenced more than once
//                      Equal holder sets are byte-equal strings, so a lookup walks a run of
//                      blocks with the same holders without parsing them again. The key is
//                      deleted with its last record.
//   P e:<pod>    HASH  the pod's engine keys (engine hashes are only meaningful within one
//                      engine): field <h> -> its request keys, concatenated <h> values, each
//                      once, a newly mapped one last (getRequestKey answers the last).
//   P p:<pod>    SET   <h> of request keys <pod> got without an engine mapping or reservation
//                      (clear(pod) finds the others through e:<pod> and spec).
//   P pods       ZSET  pods in order of first appearance (getRequestKey without a pod).
//   P spec       ZSET  speculative reservations "<seq>\n<gen>\n<pod>\n<hex keys>" scored by
//                      their deadline in ms on the Redis server clock, so every replica agrees
//                      on expiry; expired by lookups and by a periodic sweep on any replica.
//   P gen        HASH  pod -> clear() generation; a reservation from an older generation is void.
//   P meta       HASH  counters keys, entries, engine (kept by the scripts, read by stats()),
//                      seq, podseq.
//   P w:<writer> STRING write batches applied from one router replica (random id per index
//                      instance; expires 7 days after its last batch): after an outage the
//                      replica compares it with what it sent to learn what was lost.
//
// All writes go through one Lua script (scripts.ts) so each batch is atomic and ordered; a
// lookup is one script call that walks the keys and stops at the first miss.
// Standalone Redis or Valkey (a primary, or a proxy in front of one). The scripts build key
// names themselves, so Redis Cluster would need every key in one slot: a prefix with a hash
// tag ("{kvr}:") does that, but the client here does not speak the cluster protocol.

export const DEFAULT_KEY_PREFIX = 'kvr:';

export interface RedisKeyNames {
  prefix: string;
  meta: string;
  spec: string;
  request(hex: string): string;
  engine(pod: string): string;
  pod(pod: string): string;
}

export function keyNames(prefix: string): RedisKeyNames {
  return {
    prefix,
    meta: `${prefix}meta`,
    spec: `${prefix}spec`,
    request: (h) => `${prefix}r:${h}`,
    engine: (p) => `${prefix}e:${p}`,
    pod: (p) => `${prefix}p:${p}`,
  };
}

// ---------- block keys <-> 16-digit hex ----------
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function hex32(x: number): string {
  return HEX[x >>> 24] + HEX[(x >>> 16) & 255] + HEX[(x >>> 8) & 255] + HEX[x & 255];
}

/** One key as 16 hex digits. */
export function keyToHex(key: bigint): string {
  return hex32(Number((key >> 32n) & 0xffffffffn)) + hex32(Number(key & 0xffffffffn));
}

/** A chain of keys as concatenated 16-digit hex, read through 32-bit halves (no BigInt). */
export function keysToHex(keys: BigUint64Array): string {
  if (!LITTLE_ENDIAN) {
    let s = '';
    for (const k of keys) s += keyToHex(k);
    return s;
  }
  const u32 = new Uint32Array(keys.buffer, keys.byteOffset, keys.length * 2);
  let s = '';
  for (let i = 0; i < keys.length; i++) s += hex32(u32[2 * i + 1]) + hex32(u32[2 * i]);
  return s;
}

export function hexToKey(hex: string): bigint {
  return BigInt(`0x${hex}`);
}
