// msgspec-exact EventBatch encoding: the byte examples A-C of vllm-kv-events.md §6, and every
// legacy array length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode } from '@msgpack/msgpack';
import { encodeEventBatch, EVENTS_VERSIONS, type BlockStoredEvent, type BlockRemovedEvent } from '../../src/sim/events.js';
import { MsgpackWriter } from '../../src/sim/msgpack.js';

const hex = (s: string) => s.replace(/\s+/g, '');
const h64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};
const ascii = (s: string) => Buffer.from(s).toString('hex');
const tokens16 = Array.from({ length: 16 }, (_, i) => i + 1);

function stored(p: Partial<BlockStoredEvent>): BlockStoredEvent {
  return { type: 'BlockStored', blockHashes: [], parentBlockHash: null, tokenIds: [], blockSize: 16, loraId: null, medium: 'GPU', loraName: null, extraKeys: null, groupIdx: null, kvCacheSpecKind: null, kvCacheSpecSlidingWindow: null, ...p };
}
const removed = (h: Buffer, p: Partial<BlockRemovedEvent> = {}): BlockRemovedEvent => ({ type: 'BlockRemoved', blockHashes: [h], medium: 'GPU', groupIdx: null, ...p });

test('example A: 7-element legacy BlockStored + BlockRemoved, rank 1 (57 bytes)', () => {
  const b = encodeEventBatch(1700000000.5, [stored({ blockHashes: [h64(123n)], tokenIds: [1, 2], blockSize: 2 }), removed(h64(7n))], 1, { version: 'v0.10', intHashes: true });
  const expected = hex(`93 cb 41 d9 54 fc 40 20 00 00 92
    97 ab 42 6c 6f 63 6b 53 74 6f 72 65 64 91 7b c0 92 01 02 02 c0 a3 47 50 55
    93 ac 42 6c 6f 63 6b 52 65 6d 6f 76 65 64 91 07 a3 47 50 55 01`);
  assert.equal(b.length, 57);
  assert.equal(b.toString('hex'), expected);
});

test('example B: 12-element legacy, hash 0x0123456789abcdef, all optionals nil (66 bytes)', () => {
  const b = encodeEventBatch(1700000000.5, [stored({ blockHashes: [h64(0x0123456789abcdefn)], tokenIds: tokens16 })], 0, { version: 'v0.23', intHashes: true });
  const expected = hex(`93 cb 41 d9 54 fc 40 20 00 00 91 9c ab 42 6c 6f 63 6b 53 74 6f 72 65 64 91 cf 01 23 45 67 89 ab cd ef c0
    dc 00 10 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 10 c0 a3 47 50 55 c0 c0 c0 c0 c0 00`);
  assert.equal(b.length, 66);
  assert.equal(b.toString('hex'), expected);
});

test('legacy BlockRemoved at the 12-element schema with hash 2^64-1', () => {
  const b = encodeEventBatch(0, [removed(h64(0xffffffffffffffffn))], 0, { version: 'v0.23', intHashes: true });
  const ev = `94 ac ${ascii('BlockRemoved')} 91 cf ff ff ff ff ff ff ff ff a3 ${ascii('GPU')} c0`;
  assert.ok(b.toString('hex').includes(hex(ev)));
});

test('example C: map form (v0.24+), type first, omit_defaults drops only None-default fields (202 bytes)', () => {
  const ev = stored({ blockHashes: [h64(0x0123456789abcdefn)], tokenIds: tokens16, extraKeys: [null], groupIdx: 0, kvCacheSpecKind: 'full_attention' });
  const b = encodeEventBatch(1700000000.5, [ev], 0, { version: 'v0.24', intHashes: true });
  const expected = hex(`93 cb 41 d9 54 fc 40 20 00 00 91 8b
    a4 ${ascii('type')} ab ${ascii('BlockStored')} ac ${ascii('block_hashes')} 91 cf 01 23 45 67 89 ab cd ef
    b1 ${ascii('parent_block_hash')} c0 a9 ${ascii('token_ids')} dc 00 10 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 aa ${ascii('block_size')} 10
    a7 ${ascii('lora_id')} c0 a6 ${ascii('medium')} a3 ${ascii('GPU')} a9 ${ascii('lora_name')} c0 aa ${ascii('extra_keys')} 91 c0
    a9 ${ascii('group_idx')} 00 b2 ${ascii('kv_cache_spec_kind')} ae ${ascii('full_attention')} 00`);
  assert.equal(b.length, 202);
  assert.equal(b.toString('hex'), expected);
});

test('map BlockRemoved and AllBlocksCleared', () => {
  const b = encodeEventBatch(0, [removed(h64(1n), { groupIdx: 0 }), { type: 'AllBlocksCleared' }], 0, { version: 'v0.24', intHashes: true });
  const s = b.toString('hex');
  assert.ok(s.includes(hex(`84 a4 ${ascii('type')} ac ${ascii('BlockRemoved')} ac ${ascii('block_hashes')} 91 01 a6 ${ascii('medium')} a3 ${ascii('GPU')} a9 ${ascii('group_idx')} 00`)));
  assert.ok(s.endsWith(hex(`81 a4 ${ascii('type')} b0 ${ascii('AllBlocksCleared')} 00`)));
  const legacy = encodeEventBatch(0, [{ type: 'AllBlocksCleared' }], 0, { version: 'v0.10', intHashes: true });
  assert.ok(legacy.toString('hex').includes(hex(`91 b0 ${ascii('AllBlocksCleared')}`)));
});

test('every legacy version has its array lengths; v0.9.0 batches have no rank', () => {
  const want: Record<string, [number, number]> = { 'v0.9.0': [6, 2], 'v0.9.1': [6, 2], 'v0.10': [7, 3], 'v0.12': [8, 3], 'v0.17': [9, 3], 'v0.20': [10, 4], 'v0.23': [12, 4] };
  for (const version of EVENTS_VERSIONS) {
    const b = encodeEventBatch(1.5, [stored({ blockHashes: [h64(5n)], tokenIds: tokens16 }), removed(h64(5n))], 3, { version, intHashes: true });
    const batch = decode(b) as unknown[];
    assert.equal(batch.length, version === 'v0.9.0' ? 2 : 3, version);
    const [s, r] = batch[1] as unknown[];
    if (version === 'v0.24') {
      assert.equal((s as Record<string, unknown>).type, 'BlockStored');
      continue;
    }
    assert.equal((s as unknown[]).length, want[version][0], `${version} BlockStored`);
    assert.equal((r as unknown[]).length, want[version][1], `${version} BlockRemoved`);
  }
});

test('bytes hashes carry the raw digest as bin; parent hashes too', () => {
  const d = Buffer.alloc(32, 0xab);
  const p = Buffer.alloc(32, 0xcd);
  const b = encodeEventBatch(0, [stored({ blockHashes: [d], parentBlockHash: p, tokenIds: tokens16 })], 0, { version: 'v0.10', intHashes: false });
  const ev = ((decode(b) as unknown[])[1] as unknown[][])[0];
  assert.equal((ev[1] as Uint8Array[]).length, 1);
  assert.deepEqual(Buffer.from((ev[1] as Uint8Array[])[0]), d);
  assert.deepEqual(Buffer.from(ev[2] as Uint8Array), p);
  assert.ok(b.toString('hex').includes('c420' + 'ab'.repeat(32)));
});

test('msgpack writer uses the smallest int forms and always float64 for floats', () => {
  const w = new MsgpackWriter();
  for (const v of [0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -1, -32, -33, -128, -129, -32768, -32769]) w.int(v);
  w.float64(1);
  assert.equal(
    w.finish().toString('hex'),
    hex('00 7f cc80 ccff cd0100 cdffff ce00010000 ceffffffff cf0000000100000000 ff e0 d0df d080 d1ff7f d18000 d2ffff7fff cb3ff0000000000000'),
  );
  w.str('x'.repeat(32));
  w.arrayHeader(16);
  assert.equal(w.finish().subarray(0, 2).toString('hex'), 'd920');
});

test('signed int64 hashes (v0.9 builtin hash) and the map-encoded batch variant (example D)', () => {
  const neg = h64(0xfffffffffffffffbn); // -5 as int64
  const big = h64(0x8000000000000000n); // int64 min
  const b = encodeEventBatch(0, [removed(neg), removed(big)], 0, { version: 'v0.9.1', intHashes: true, signedHashes: true });
  const s = b.toString('hex');
  assert.ok(s.includes(`${ascii('BlockRemoved')}91fb`), 'negative fixint -5');
  assert.ok(s.includes(`${ascii('BlockRemoved')}91d38000000000000000`), 'int64 min as d3');
  const m = encodeEventBatch(1700000000.5, [], 0, { version: 'v0.24', intHashes: true, batchAsMap: true });
  assert.equal(m.toString('hex'), hex(`83 a2 ${ascii('ts')} cb 41 d9 54 fc 40 20 00 00 a6 ${ascii('events')} 90 b2 ${ascii('data_parallel_rank')} 00`));
});

test('intArray writes the bytes of int() per element, at every size boundary, growing the buffer as it goes', () => {
  const values = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 150_000, 0xffffffff, -1, -33, 2 ** 40, 5, 0x1234];
  const long = Array.from({ length: 3000 }, (_, i) => (i * 7919) % 200_000);
  for (const arr of [values, long, Uint32Array.from(long)]) {
    const bulk = new MsgpackWriter();
    bulk.intArray(arr, 1, arr.length - 1);
    const one = new MsgpackWriter();
    one.arrayHeader(arr.length - 2);
    for (let i = 1; i < arr.length - 1; i++) one.int(arr[i]);
    assert.deepEqual(bulk.view(), one.view());
    assert.deepEqual(decode(bulk.view()), Array.from(arr).slice(1, -1));
  }
  assert.throws(() => new MsgpackWriter().intArray([1, 2.5]), /not a safe integer/);
});
