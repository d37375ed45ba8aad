// fast-decode.ts against the library path (@msgpack/msgpack, decode.ts): on every wire version
// and hash form the simulator's vLLM encoder writes, and on fuzzed payloads that pass the guard,
// the fast path either declines (null) or returns exactly what the library path returns.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCheckedBatch, decodeCheckedBatchWithLibrary } from '../../src/events/decode.js';
import { fastDecodeBatch } from '../../src/events/fast-decode.js';
import { checkMsgpack } from '../../src/events/msgpack-guard.js';
import { encodeEventBatch, EVENTS_VERSIONS, type EventsFormat, type KvEvent } from '../../src/sim/events.js';

const digest = (i: number): Buffer => {
  const b = Buffer.alloc(32);
  b.writeUInt32BE(i * 2654435761 >>> 0, 28);
  b.writeUInt32BE(0x80000000 + i, 24); // a high bit set: negative as int64
  b[0] = i & 0xff;
  return b;
};

function events(seed: number): KvEvent[] {
  const toks = Array.from({ length: 48 }, (_, i) => [i, 200 + i, 40_000 + i, 70_000 + i * 1000][(i + seed) % 4]);
  return [
    { type: 'BlockStored', blockHashes: [digest(seed), digest(seed + 1), digest(seed + 2)], parentBlockHash: seed % 2 ? digest(seed + 99) : null, tokenIds: toks, blockSize: 16, loraId: seed % 3 ? null : 7, medium: seed % 2 ? 'GPU' : null, loraName: seed % 3 ? null : 'adapter-a', extraKeys: [null, [null, null, null], [['adapter-a'], null, ['mm-1', 3, 'salt']]][seed % 3], groupIdx: seed % 2 ? 0 : null, kvCacheSpecKind: seed % 2 ? 'full_attention' : null, kvCacheSpecSlidingWindow: null },
    { type: 'BlockRemoved', blockHashes: [digest(seed + 5)], medium: 'CPU', groupIdx: null },
    { type: 'BlockStored', blockHashes: [digest(seed + 3)], parentBlockHash: digest(seed + 2), tokenIds: [], blockSize: 16, loraId: null, medium: 'cpu', loraName: null, extraKeys: null, groupIdx: null, kvCacheSpecKind: null, kvCacheSpecSlidingWindow: null },
    { type: 'AllBlocksCleared' },
  ];
}

const FORMATS: EventsFormat[] = EVENTS_VERSIONS.flatMap((version) => [
  { version, intHashes: true },
  { version, intHashes: false },
  { version, intHashes: true, signedHashes: true },
]);

describe('fastDecodeBatch', () => {
  it('decodes every wire version and hash form exactly as the library path', () => {
    for (const f of FORMATS) {
      for (let seed = 0; seed < 6; seed++) {
        const payload = encodeEventBatch(1_700_000_000.25 + seed, events(seed), f.version === 'v0.9.0' ? null : seed % 3, f);
        checkMsgpack(payload);
        const fast = fastDecodeBatch(payload);
        assert.notEqual(fast, null, `${JSON.stringify(f)} seed ${seed}: the fast path declined vLLM's own shape`);
        assert.deepStrictEqual(fast, decodeCheckedBatchWithLibrary(payload), `${JSON.stringify(f)} seed ${seed}`);
      }
    }
  });

  it('declines what it does not read (a batch as a map, a non-ASCII medium) and the library path decodes it', () => {
    const asMap = encodeEventBatch(1, events(1), 0, { version: 'v0.24', intHashes: true, batchAsMap: true });
    assert.equal(fastDecodeBatch(asMap), null);
    assert.deepStrictEqual(decodeCheckedBatch(asMap), decodeCheckedBatchWithLibrary(asMap));
    const ev = events(2)[0];
    assert.equal(ev.type, 'BlockStored');
    const accented = encodeEventBatch(1, [{ ...ev, medium: 'mémoire' }], 0, { version: 'v0.24', intHashes: true });
    assert.equal(fastDecodeBatch(accented), null);
    const [decoded] = decodeCheckedBatch(accented).events;
    assert.equal(decoded.type === 'BlockStored' ? decoded.medium : null, 'mémoire');
  });

  it('never disagrees with the library path on fuzzed payloads that pass the guard', () => {
    let seed = 12345;
    const rnd = (m: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % m);
    const bases = FORMATS.map((f, i) => encodeEventBatch(2.5, events(i), f.version === 'v0.9.0' ? null : 1, f));
    let compared = 0;
    let fastTaken = 0;
    for (let i = 0; i < 40_000; i++) {
      let x = Buffer.from(bases[rnd(bases.length)]);
      for (let j = rnd(3); j >= 0; j--) x[rnd(x.length)] = rnd(256);
      if (rnd(4) === 0) x = x.subarray(0, rnd(x.length + 1));
      try {
        checkMsgpack(x);
      } catch {
        continue;
      }
      compared++;
      const fast = fastDecodeBatch(x);
      let lib: unknown;
      try {
        lib = decodeCheckedBatchWithLibrary(x);
      } catch (err) {
        lib = err;
      }
      if (fast === null) continue;
      fastTaken++;
      assert.deepStrictEqual(fast, lib, `payload ${x.toString('hex')}`);
    }
    // the fuzz reached both outcomes: decoded fast, and declined
    assert.ok(fastTaken > 100 && fastTaken < compared, `${fastTaken} fast of ${compared} compared`);
  });
});
