// vLLM block hashes against reference vectors: test/fixtures/sim/hash-vectors.json, written by
// scripts/gen-hash-vectors.py from vLLM's algorithm (vllm-project/vllm vllm/utils/hashing.py and
// vllm/v1/core/kv_cache_utils.py) with Python's own pickle and a canonical-CBOR encoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BlockHasher, wireHash } from '../../src/sim/hashing.js';
import { ByteWriter, writeHead } from '../../src/index/cbor.js';

interface Vectors {
  noneHash: string;
  h1: string;
  h1Wire: string;
  h2: string;
  h2Wire: string;
  h1LoraWire: string;
  block1Input: string;
}
const VECTORS = (JSON.parse(readFileSync(new URL('../fixtures/sim/hash-vectors.json', import.meta.url), 'utf8')) as { algorithms: Record<'sha256' | 'sha256_cbor', Vectors> }).algorithms;

const tokens = Array.from({ length: 32 }, (_, i) => i + 1);

function chain(h: BlockHasher, extra: string[] | null = null) {
  const h1 = h.hashBlock(null, tokens, 0, 16, extra);
  const h2 = h.hashBlock(h1, tokens, 16, 32, null);
  return { h1, h2 };
}

for (const algo of ['sha256_cbor', 'sha256'] as const) {
  test(`${algo} reproduces the reference NONE_HASH, h1, h2, wire values and block-1 input (PYTHONHASHSEED=0)`, () => {
    const v = VECTORS[algo];
    const h = new BlockHasher(algo, '0');
    assert.equal(h.noneHash.toString('hex'), v.noneHash);
    assert.equal(h.serialize(null, tokens, 0, 16, null).toString('hex'), v.block1Input);
    const { h1, h2 } = chain(h);
    assert.equal(h1.toString('hex'), v.h1);
    assert.equal(wireHash(h1), BigInt(v.h1Wire));
    assert.equal(h2.toString('hex'), v.h2);
    assert.equal(wireHash(h2), BigInt(v.h2Wire));
    assert.equal(wireHash(chain(h, ['my-lora']).h1), BigInt(v.h1LoraWire));
  });
}

test('sha256_cbor serializes block 1 as 83 58 20 <NONE_HASH> 90 01..10 f6', () => {
  const h = new BlockHasher('sha256_cbor', '0');
  const bytes = h.serialize(null, tokens, 0, 16, null);
  const expected = Buffer.concat([Buffer.from('835820', 'hex'), h.noneHash, Buffer.from([0x90, ...tokens.slice(0, 16), 0xf6])]);
  assert.deepEqual(bytes, expected);
  // extra (("abc123",5),) is not a shape vLLM sends for tokens, but ("my-lora",) is: 81 67 "my-lora"
  const withLora = h.serialize(null, tokens, 0, 16, ['my-lora']);
  assert.equal(withLora.subarray(withLora.length - 9).toString('hex'), '81676d792d6c6f7261');
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

test('sha256_cbor token ids: every head size and negative ids serialize as the general CBOR writer does', () => {
  const h = new BlockHasher('sha256_cbor', '0');
  const tokens = [0, 1, 23, 24, 255, 256, 65535, 65536, 0xffffffff, -1, -24, -25, -256, -257, -70000, 7];
  const w = new ByteWriter(64);
  w.u8(0x83);
  writeHead(w, 2, 32);
  w.bytes(h.noneHash);
  writeHead(w, 4, tokens.length);
  for (const v of tokens) writeHead(w, v >= 0 ? 0 : 1, v >= 0 ? v : -1 - v);
  w.u8(0xf6);
  assert.deepEqual(Buffer.from(h.serialize(null, tokens, 0, tokens.length, null)), Buffer.from(w.view()));
  // From a Uint32Array, and a range inside it.
  const u = Uint32Array.from([5, 300, 70000, 24]);
  const w2 = new ByteWriter(64);
  w2.u8(0x83);
  writeHead(w2, 2, 32);
  w2.bytes(h.noneHash);
  writeHead(w2, 4, 2);
  writeHead(w2, 0, 300);
  writeHead(w2, 0, 70000);
  w2.u8(0xf6);
  assert.deepEqual(Buffer.from(h.serialize(null, u, 1, 3, null)), Buffer.from(w2.view()));
  assert.throws(() => h.serialize(null, [1, 2.5], 0, 2, null), /non-negative integer/);
});
