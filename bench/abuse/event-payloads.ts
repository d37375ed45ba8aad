// Hostile and heavy KV-event payloads, shared by the abuse bench (events-attacks.ts) and the
// abuse tests (test/events/abuse.test.ts). Valid batches are vLLM's legacy array form
// ([ts, [["BlockStored", hashes, parent, tokens, block_size, lora_id, medium], ...], rank]).
import { Encoder } from '@msgpack/msgpack';

const encoder = new Encoder({ useBigInt64: true });

/** 8-byte big-endian seq frame. */
export function seqFrame(seq: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(seq));
  return b;
}

/** The 201-byte message: 40 nested array32 headers of 16,777,215 elements, then nil. */
export function arrayBomb(): Uint8Array {
  const b = new Uint8Array(201);
  for (let i = 0; i < 40; i++) b.set([0xdd, 0x00, 0xff, 0xff, 0xff], i * 5);
  b[200] = 0xc0;
  return b;
}

/** `bytes` of nested one-element arrays (0x91 ... 0xc0): as deep as the payload is long. */
export function deepNesting(bytes: number): Uint8Array {
  const b = new Uint8Array(bytes).fill(0x91);
  b[bytes - 1] = 0xc0;
  return b;
}

/** A batch of `events` invalid events (each the integer 1): ~1 byte per event. */
export function invalidEvents(events: number): Uint8Array {
  // [ts, events, rank] with an array32 of fixints
  const head = encoder.encode(1.5);
  const out = new Uint8Array(1 + head.length + 5 + events + 1);
  let p = 0;
  out[p++] = 0x93;
  out.set(head, p);
  p += head.length;
  out.set([0xdd, events >>> 24, (events >>> 16) & 255, (events >>> 8) & 255, events & 255], p);
  p += 5;
  out.fill(0x01, p, p + events);
  p += events;
  out[p] = 0x00; // rank 0
  return out;
}

/**
 * A valid batch of `events` BlockStored events of `blocksPerEvent` blocks each (block size 16),
 * chains starting at `base` so different batches store different blocks.
 */
export function storeBatch(events: number, blocksPerEvent: number, base = 0, rank = 0): Uint8Array {
  const evs: unknown[] = [];
  for (let e = 0; e < events; e++) {
    const hashes: bigint[] = [];
    const tokens: number[] = [];
    const start = base + e * blocksPerEvent;
    for (let i = 0; i < blocksPerEvent; i++) {
      hashes.push(BigInt(start + i + 1) * 0x9e3779b97f4a7c15n & 0xffffffffffffffffn);
      for (let t = 0; t < 16; t++) tokens.push(((start + i) * 16 + t) % 150_000);
      // the first block names its chain, so every event stores blocks of its own
      if (i === 0) tokens.splice(tokens.length - 16, 2, start % 100_000, Math.floor(start / 100_000) % 100_000);
    }
    evs.push(['BlockStored', hashes, null, tokens, 16, null, 'GPU']);
  }
  return encoder.encode([1.5, evs, rank]);
}

/** An empty valid batch. */
export function emptyBatch(rank = 0): Uint8Array {
  return encoder.encode([1.5, [], rank]);
}
