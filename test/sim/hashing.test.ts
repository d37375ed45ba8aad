// vLLM block hashes: the reference vectors of shared/reference/block-keys-and-index.md §1.6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockHasher, wireHash } from '../../src/sim/hashing.js';

const tokens = Array.from({ length: 32 }, (_, i) => i + 1);

function chain(h: BlockHasher, extra: string[] | null = null) {
  const h1 = h.hashBlock(null, tokens, 0, 16, extra);
  const h2 = h.hashBlock(h1, tokens, 16, 32, null);
  return { h1, h2 };
}

test('sha256_cbor reproduces the reference NONE_HASH, h1, h2 and wire values (PYTHONHASHSEED=0)', () => {
  const h = new BlockHasher('sha256_cbor', '0');
  assert.equal(h.noneHash.toString('hex'), '4e1195df020de59e0d65a33a4279f1183e7ae4e5d980e309f8b55adff2e61c3e');
  const { h1, h2 } = chain(h);
  assert.equal(h1.toString('hex'), '202da172482d928bbc42ab25b0151e2b895f13f41002e27b2ceabcfae6d332ea');
  assert.equal(wireHash(h1), 3236607068019569386n);
  assert.equal(h2.toString('hex'), '4a0a393805c6d2f0ed831000d41bb65980336c4c04895d5e26470bbec927f5bf');
  assert.equal(wireHash(h2), 2758186210834249151n);
  assert.equal(wireHash(chain(h, ['my-lora']).h1), 15444946753610453501n);
});

test('sha256_cbor serializes block 1 as 83 58 20 <NONE_HASH> 90 01..10 f6', () => {
  const h = new BlockHasher('sha256_cbor', '0');
  const bytes = h.serialize(null, tokens, 0, 16, null);
  const expected = Buffer.concat([Buffer.from('835820', 'hex'), h.noneHash, Buffer.from([0x90, ...tokens.slice(0, 16), 0xf6])]);
  assert.deepEqual(bytes, expected);
  // extra (("abc123",5),) is not a shape vLLM sends for tokens, but ("my-lora",) is: 81 67 "my-lora"
  const withLora = h.serialize(null, tokens, 0, 16, ['my-lora']);
  assert.equal(withLora.subarray(withLora.length - 9).toString('hex'), '81676d792d6c6f7261');
});

test('sha256 (pickle protocol 5) reproduces the reference vectors', () => {
  const h = new BlockHasher('sha256', '0');
  assert.equal(h.noneHash.toString('hex'), '1973e23848344dc43a988a9b478663803cfffe1243480253f9a3cf004b14aa7c');
  const { h1, h2 } = chain(h);
  assert.equal(h1.toString('hex'), 'bea72b7d33de03c1aa715efbb492d0e0d3801f00c1f985756896072ae8b31325');
  assert.equal(wireHash(h1), 7536218907325174565n);
  assert.equal(h2.toString('hex'), '2744667f6645310ff670b0c5d7c64987ffa5940de5a549f17d92dcbb5b559e31');
  assert.equal(wireHash(h2), 9048537298590080561n);
  assert.equal(wireHash(chain(h, ['my-lora']).h1), 5715579015633743955n);
});

test('pickle framing: PROTO 5, FRAME with the body length incl. STOP, MARK..TUPLE for >= 4 tokens', () => {
  const h = new BlockHasher('sha256', '0');
  const b = h.serialize(null, tokens, 0, 16, null);
  assert.equal(b.subarray(0, 3).toString('hex'), '800595');
  assert.equal(Number(b.readBigUInt64LE(3)), b.length - 11);
  assert.equal(b.subarray(11, 13).toString('hex'), '4320');
  assert.equal(b[b.length - 1], 0x2e);
  // short tuples use TUPLE1..3, ints >= 256 use BININT2 / BININT
  const small = h.serialize(null, [300, 70000], 0, 2, null);
  assert.ok(small.includes(Buffer.from('4d2c01', 'hex')));
  assert.ok(small.includes(Buffer.from('4a70110100', 'hex')));
  assert.ok(small.includes(Buffer.from('8694', 'hex')));
});

test('without PYTHONHASHSEED NONE_HASH is random per engine, so identical blocks hash differently', () => {
  const a = new BlockHasher('sha256_cbor');
  const b = new BlockHasher('sha256_cbor');
  assert.notDeepEqual(a.noneHash, b.noneHash);
  assert.notDeepEqual(a.hashBlock(null, tokens, 0, 16, null), b.hashBlock(null, tokens, 0, 16, null));
});

test('unknown algorithms are refused with the supported list', () => {
  assert.throws(() => new BlockHasher('xxhash' as 'sha256', '0'), /supported: sha256_cbor, sha256/);
});
