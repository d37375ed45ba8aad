import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCheckedBatch, decodeEventBatch, DecodeError, normalizeHash, peekEventBatch } from '../../src/events/decode.js';
import { encodeEventBatch, blockStored, MsgWriter, type EventSchema } from './msgspec-encoder.js';
import type { KvEvent } from '../../src/events/types.js';
import { FIXTURE_A, FIXTURE_B, FIXTURE_C, FIXTURE_D, FIXTURE_LEGACY_REMOVED } from './fixtures.js';

const T16 = Array.from({ length: 16 }, (_, i) => i + 1);

/** The fuzz tests' generator: integers in [0, n), the same sequence for a seed on every run. */
function seededRnd(seed: number): (n: number) => number {
  return (n) => {
    seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    return seed % n;
  };
}

describe('decodeEventBatch: reference byte examples', () => {
  it('A: 7-element legacy events, rank 1', () => {
    assert.equal(FIXTURE_A.length, 57);
    const b = decodeEventBatch(FIXTURE_A);
    assert.equal(b.ts, 1700000000.5);
    assert.equal(b.dataParallelRank, 1);
    assert.deepEqual(b.skipped, []);
    assert.deepEqual(b.events, [
      blockStored({ blockHashes: [123n], tokenIds: [1, 2], blockSize: 2, medium: 'GPU' }),
      { type: 'BlockRemoved', blockHashes: [7n], medium: 'GPU', groupIdx: null },
    ]);
  });

  it('B: 12-element legacy event with a uint64 hash', () => {
    assert.equal(FIXTURE_B.length, 66);
    const b = decodeEventBatch(FIXTURE_B);
    assert.equal(b.dataParallelRank, 0);
    assert.deepEqual(b.events, [blockStored({ blockHashes: [0x0123456789abcdefn], tokenIds: T16, blockSize: 16 })]);
  });

  it('C: map event (v0.24+)', () => {
    assert.equal(FIXTURE_C.length, 202);
    const b = decodeEventBatch(FIXTURE_C);
    assert.deepEqual(b.events, [blockStored({ blockHashes: [0x0123456789abcdefn], tokenIds: T16, blockSize: 16, extraKeys: [null], groupIdx: 0, kvCacheSpecKind: 'full_attention' })]);
  });

  it('D: batch as a map with map BlockRemoved and AllBlocksCleared', () => {
    const b = decodeEventBatch(FIXTURE_D);
    assert.equal(b.dataParallelRank, 0);
    assert.deepEqual(b.events, [{ type: 'BlockRemoved', blockHashes: [0xffffffffffffffffn], medium: 'GPU', groupIdx: 0 }, { type: 'AllBlocksCleared' }]);
  });

  it('legacy BlockRemoved, 2-element batch without rank, negative hash', () => {
    const b = decodeEventBatch(FIXTURE_LEGACY_REMOVED);
    assert.equal(b.dataParallelRank, null);
    assert.deepEqual(b.events.map((e) => (e.type === 'BlockRemoved' ? e.blockHashes[0] : null)), [0xffffffffffffffffn, 0xfffffffffffffffbn]);
  });
});

describe('encodeEventBatch writes what msgspec writes', () => {
  it('reproduces examples A, B and C byte for byte', () => {
    const a = encodeEventBatch(1700000000.5, [blockStored({ blockHashes: [123n], tokenIds: [1, 2], blockSize: 2 }), { type: 'BlockRemoved', blockHashes: [7n], medium: 'GPU', groupIdx: null }], 1, { schema: { form: 'array', storedLength: 7 } });
    assert.deepEqual(Buffer.from(a), Buffer.from(FIXTURE_A));
    const b = encodeEventBatch(1700000000.5, [blockStored({ blockHashes: [0x0123456789abcdefn], tokenIds: T16, blockSize: 16 })], 0, { schema: { form: 'array', storedLength: 12 } });
    assert.deepEqual(Buffer.from(b), Buffer.from(FIXTURE_B));
    const c = encodeEventBatch(1700000000.5, [blockStored({ blockHashes: [0x0123456789abcdefn], tokenIds: T16, blockSize: 16, extraKeys: [null], groupIdx: 0, kvCacheSpecKind: 'full_attention' })], 0, { schema: { form: 'map' } });
    assert.deepEqual(Buffer.from(c), Buffer.from(FIXTURE_C));
  });

  it('round-trips every schema version, batch form and hash encoding', () => {
    const stored = blockStored({ blockHashes: [1n, 0x8000000000000000n, 0xfedcba9876543210n], parentBlockHash: 42n, tokenIds: Array.from({ length: 48 }, (_, i) => i * 4000), blockSize: 16, medium: 'CPU', loraName: 'sql', loraId: 3, extraKeys: [['sql', 'img'], null, [['mm', 5]]], groupIdx: 0, kvCacheSpecKind: 'full_attention', kvCacheSpecSlidingWindow: null });
    const removed: KvEvent = { type: 'BlockRemoved', blockHashes: [0xfedcba9876543210n], medium: 'GPU', groupIdx: 0 };
    const schemas: EventSchema[] = [6, 7, 8, 9, 10, 12].map((n) => ({ form: 'array', storedLength: n }) as EventSchema).concat([{ form: 'map' }]);
    for (const schema of schemas) {
      for (const batch of ['array', 'array2', 'map'] as const) {
        for (const hashes of ['int', 'bytes', 'signed'] as const) {
          const bytes = encodeEventBatch(1.5, [stored, removed, { type: 'AllBlocksCleared' }], batch === 'array2' ? null : 2, { schema, batch, hashes });
          const d = decodeEventBatch(bytes);
          const what = `${JSON.stringify(schema)} ${batch} ${hashes}`;
          assert.deepEqual(d.skipped, [], what);
          assert.equal(d.events.length, 3, what);
          const s = d.events[0];
          assert.equal(s.type, 'BlockStored');
          if (s.type !== 'BlockStored') continue;
          assert.deepEqual(s.blockHashes, stored.blockHashes, what);
          assert.equal(s.parentBlockHash, 42n, what);
          assert.deepEqual(s.tokenIds, stored.tokenIds, what);
          const len = schema.form === 'map' ? 12 : schema.storedLength;
          assert.equal(s.medium, len >= 7 ? 'CPU' : null, what);
          assert.equal(s.loraName, len >= 8 ? 'sql' : null, what);
          assert.deepEqual(s.extraKeys, len >= 9 ? [['sql', 'img'], null, [['mm', 5]]] : null, what);
          const r = d.events[1];
          assert.equal(r.type === 'BlockRemoved' && r.blockHashes[0], 0xfedcba9876543210n, what);
          assert.equal(d.dataParallelRank, batch === 'array2' ? null : 2, what);
        }
      }
    }
  });

  it('normalizes 32-byte sha256 and 16-byte xxhash digests to their last 8 bytes', () => {
    const sha = Buffer.from('202da172482d928bbc42ab25b0151e2b895f13f41002e27b2ceabcfae6d332ea', 'hex');
    assert.equal(normalizeHash(sha), 3236607068019569386n);
    const xx = Buffer.from('c2d7a75070fc6d6b0c3fb0af456c1009', 'hex');
    assert.equal(normalizeHash(xx), 882618318818381833n);
    assert.equal(normalizeHash(Uint8Array.of(1, 2)), 0x0102n);
    assert.throws(() => normalizeHash(new Uint8Array()), DecodeError);
    assert.equal(normalizeHash(-1), 0xffffffffffffffffn);
  });
});

describe('decodeEventBatch tolerance', () => {
  it('skips an unknown or malformed event, not the batch; ignores extra trailing fields', () => {
    const w = new MsgWriter();
    w.value([1.5, [
      ['FutureEvent', 1, 2],
      ['BlockStored', [5], null, [1, 2], 2, null, 'GPU', null, null, 0, 'full_attention', null, 'extra', 'more'],
      ['BlockStored', 'not-a-list', null, [1, 2], 2],
      ['BlockRemoved'],
      42,
      ['AllBlocksCleared'],
    ], 0]);
    const d = decodeEventBatch(w.bytes());
    assert.deepEqual(d.events.map((e) => e.type), ['BlockStored', 'AllBlocksCleared']);
    assert.deepEqual(d.skipped.map((s) => s.index), [0, 2, 3, 4]);
    assert.match(d.skipped[0].reason, /unknown event tag "FutureEvent"/);
  });

  it('rejects unusable envelopes with a DecodeError', () => {
    const bad = [Uint8Array.of(0xc1), Uint8Array.of(0x93, 0xcb), new MsgWriter(), Uint8Array.of(0x2a), Uint8Array.of(0x91, 0x01), Uint8Array.of(0x92, 0x01, 0x02), Uint8Array.of(0x93, 0x01, 0x90, 0xa1, 0x78)];
    for (const b of bad) assert.throws(() => decodeEventBatch(b instanceof MsgWriter ? b.bytes() : b), DecodeError);
  });

  it('fuzz: thousands of random and mutated payloads never throw anything but DecodeError', () => {
    const rnd = seededRnd(0xc0ffee);
    const seeds = [FIXTURE_A, FIXTURE_B, FIXTURE_C, FIXTURE_D, FIXTURE_LEGACY_REMOVED];
    let decoded = 0;
    let rejected = 0;
    for (let i = 0; i < 6000; i++) {
      let p: Uint8Array;
      if (i % 3 === 0) p = Uint8Array.from({ length: rnd(80) }, () => rnd(256));
      else {
        p = Uint8Array.from(seeds[rnd(seeds.length)]);
        const edits = 1 + rnd(4);
        for (let e = 0; e < edits; e++) {
          const op = rnd(3);
          const at = rnd(p.length);
          if (op === 0) p[at] = rnd(256);
          else if (op === 1) p = p.slice(0, at);
          else p = Uint8Array.from([...p.slice(0, at), rnd(256), ...p.slice(at)]);
        }
      }
      try {
        const d = decodeEventBatch(p);
        decoded++;
        for (const ev of d.events) if (ev.type !== 'AllBlocksCleared') for (const h of ev.blockHashes) assert.ok(h >= 0n && h <= 0xffffffffffffffffn);
      } catch (err) {
        assert.ok(err instanceof DecodeError, `unexpected ${String(err)}`);
        rejected++;
      }
    }
    assert.equal(decoded + rejected, 6000);
    assert.ok(decoded > 100 && rejected > 100, `decoded ${decoded}, rejected ${rejected}`);
  });
});

describe('peekEventBatch: the envelope on arrival, the events at their turn', () => {
  /** decodeEventBatch's answer, or the DecodeError it throws. */
  const eager = (p: Uint8Array) => {
    try {
      return decodeEventBatch(p);
    } catch (err) {
      assert.ok(err instanceof DecodeError, String(err));
      return err;
    }
  };
  /** Peek then decode at the turn: what the subscriber does. */
  const lazy = (p: Uint8Array) => {
    try {
      const peeked = peekEventBatch(p);
      const batch = peeked.decoded ?? decodeCheckedBatch(p);
      assert.equal(peeked.dataParallelRank, batch.dataParallelRank, 'the stream a batch is queued on is the one its decode names');
      return batch;
    } catch (err) {
      assert.ok(err instanceof DecodeError, String(err));
      return err;
    }
  };
  const same = (p: Uint8Array, what: string) => {
    const a = eager(p);
    const b = lazy(p);
    if (a instanceof DecodeError) assert.ok(b instanceof DecodeError, `${what}: eager refused (${a.message}), lazy accepted`);
    else assert.deepEqual(b, a, what);
    return a;
  };

  it('gives what decodeEventBatch gives on every reference vector, schema, batch form and hash encoding', () => {
    for (const [name, f] of Object.entries({ FIXTURE_A, FIXTURE_B, FIXTURE_C, FIXTURE_D, FIXTURE_LEGACY_REMOVED })) assert.ok(!(same(f, name) instanceof DecodeError), name);
    const stored = blockStored({ blockHashes: [1n, 0xfedcba9876543210n], parentBlockHash: 42n, tokenIds: Array.from({ length: 32 }, (_, i) => i * 4000), blockSize: 16, extraKeys: [['a'], null] });
    const schemas: EventSchema[] = [6, 7, 12].map((n) => ({ form: 'array', storedLength: n }) as EventSchema).concat([{ form: 'map' }]);
    for (const schema of schemas) {
      for (const batch of ['array', 'array2', 'map'] as const) {
        for (const rank of [null, 0, 3, 70_000]) {
          const p = encodeEventBatch(1.5, [stored, { type: 'AllBlocksCleared' }], batch === 'array2' ? null : rank, { schema, batch });
          same(p, `${JSON.stringify(schema)} ${batch} rank ${rank}`);
        }
      }
    }
  });

  it('refuses on arrival what decodeEventBatch refuses for the envelope or the structure (same kind)', () => {
    const bad = [Uint8Array.of(0xc1), Uint8Array.of(0x93, 0xcb), Uint8Array.of(0x2a), Uint8Array.of(0x91, 0x01), Uint8Array.of(0x92, 0x01, 0x02), Uint8Array.of(0x93, 0x01, 0x90, 0xa1, 0x78), Uint8Array.of(0x93, 0x01, 0x90, 0xff)];
    for (const p of bad) {
      const a = eager(p);
      assert.ok(a instanceof DecodeError);
      assert.throws(() => peekEventBatch(p), (err: unknown) => err instanceof DecodeError && err.kind === a.kind);
    }
  });

  it('an event the decoder cannot read passes the envelope check and is refused at its turn, as a whole batch', () => {
    // [1.5, [fixext 1], 0]: the structure holds, the decoder takes no ext values
    const p = Uint8Array.of(0x93, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x91, 0xd4, 0x01, 0x00, 0x00);
    assert.deepEqual(peekEventBatch(p), { dataParallelRank: 0 });
    assert.throws(() => decodeCheckedBatch(p), (err: unknown) => err instanceof DecodeError && err.kind === 'msgpack');
    assert.ok(eager(p) instanceof DecodeError);
  });

  it('fuzz: random and mutated payloads get the same answer both ways', () => {
    const rnd = seededRnd(0xbadc0de);
    const seeds = [FIXTURE_A, FIXTURE_B, FIXTURE_C, FIXTURE_D, FIXTURE_LEGACY_REMOVED];
    let accepted = 0;
    for (let i = 0; i < 4000; i++) {
      let p: Uint8Array;
      if (i % 4 === 0) p = Uint8Array.from({ length: rnd(80) }, () => rnd(256));
      else {
        p = Uint8Array.from(seeds[rnd(seeds.length)]);
        for (let e = 1 + rnd(3); e > 0; e--) p[rnd(p.length)] = rnd(256);
      }
      if (!(same(p, `payload ${Buffer.from(p).toString('hex')}`) instanceof DecodeError)) accepted++;
    }
    assert.ok(accepted > 100, `only ${accepted} fuzzed payloads decoded`);
  });
});
