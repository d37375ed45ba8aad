import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { BlockKeyer, fnv64a } from '../../src/index/keys.js';
import { encodeCbor } from '../../src/index/cbor.js';
import { CLI } from '../helpers/cli.js';

// Reference FNV-64a with BigInt, independent of the 32-bit implementation under test.
function fnvRef(bytes: number[]): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h;
}
const be64 = (v: bigint) => Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(56 - 8 * i)) & 0xffn));
const ascii = (s: string) => [...Buffer.from(s, 'utf8')];
/** CBOR uint head written by hand for the test vectors (major type 0). */
function uintHead(v: bigint): number[] {
  if (v < 24n) return [Number(v)];
  if (v < 0x100n) return [0x18, Number(v)];
  if (v < 0x10000n) return [0x19, Number(v >> 8n), Number(v & 0xffn)];
  if (v < 0x100000000n) return [0x1a, ...be64(v).slice(4)];
  return [0x1b, ...be64(v)];
}

describe('block keys (cbor-fnv, llm-d compatible)', () => {
  it('FNV-64a on 32-bit halves matches the published vectors and a BigInt reference', () => {
    assert.equal(fnv64a(new Uint8Array()), 0xcbf29ce484222325n);
    assert.equal(fnv64a(Buffer.from('a')), 0xaf63dc4c8601ec8cn);
    assert.equal(fnv64a(Buffer.from('foobar')), 0x85944171f73967e8n);
    const rnd = Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24);
    assert.equal(fnv64a(Uint8Array.from(rnd)), fnvRef(rnd));
  });

  it('root = FNV64a(CBOR([FNV64a(seed), null, model])) with hand-built CBOR', () => {
    const init = fnvRef(ascii('42'));
    // 83 | uint(init) | f6 | 61 'm'... text head 0x60+len
    const rootBytes = [0x83, ...uintHead(init), 0xf6, 0x60 + 'Qwen/Qwen3-32B'.length, ...ascii('Qwen/Qwen3-32B')];
    const k = new BlockKeyer({ blockSize: 16, hashSeed: '42', algorithm: 'cbor-fnv' });
    assert.equal(k.root('Qwen/Qwen3-32B'), fnvRef(rootBytes));
    // empty seed: init is the FNV offset basis itself
    const k0 = new BlockKeyer({ blockSize: 16, hashSeed: '', algorithm: 'cbor-fnv' });
    assert.equal(k0.root('m'), fnvRef([0x83, ...uintHead(0xcbf29ce484222325n), 0xf6, 0x61, 0x6d]));
  });

  it('block keys chain over CBOR([parent, tokens, extra]) with shortest integer heads', () => {
    const k = new BlockKeyer({ blockSize: 4, hashSeed: '42', algorithm: 'cbor-fnv' });
    const toks = [0, 23, 24, 255, 256, 65535, 65536, 151_643, 7, 8];
    const root = k.root('m');
    const b0 = [0x83, ...uintHead(root), 0x84, 0x00, 0x17, 0x18, 0x18, 0x18, 0xff];
    const h0 = fnvRef([...b0, 0xf6]);
    const b1 = [0x83, ...uintHead(h0), 0x84, 0x19, 0x01, 0x00, 0x19, 0xff, 0xff, 0x1a, 0x00, 0x01, 0x00, 0x00, 0x1a, 0x00, 0x02, 0x50, 0x5b, 0xf6];
    const h1 = fnvRef(b1);
    assert.deepEqual([...k.keys(toks, { model: 'm' })], [h0, h1], 'trailing partial block (7, 8) dropped');
    // continuing from a parent gives the same second key
    assert.deepEqual([...k.keys(toks.slice(4, 8), { model: 'm', parent: h0 })], [h1]);
    // 16-token blocks use array head 0x90
    const k16 = new BlockKeyer({ blockSize: 16, hashSeed: '', algorithm: 'cbor-fnv' });
    const t16 = Array.from({ length: 16 }, (_, i) => i + 1);
    const e16 = fnvRef([0x83, ...uintHead(k16.root('m')), 0x90, ...t16, 0xf6]);
    assert.deepEqual([...k16.keys(t16, { model: 'm' })], [e16]);
    // 24+ tokens per block use 0x98 nn
    const k32 = new BlockKeyer({ blockSize: 32, hashSeed: '', algorithm: 'cbor-fnv' });
    const t32 = Array.from({ length: 32 }, (_, i) => i);
    const e32 = fnvRef([0x83, ...uintHead(k32.root('m')), 0x98, 0x20, ...t32.map((t) => uintHead(BigInt(t))).flat(), 0xf6]);
    assert.deepEqual([...k32.keys(t32, { model: 'm' })], [e32]);
  });

  it('a long chain of 16-token blocks over every id width equals the BigInt reference chain', () => {
    const k = new BlockKeyer({ blockSize: 16, hashSeed: '42', algorithm: 'cbor-fnv' });
    let x = 12345;
    const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
    // ids of every CBOR width (1, 2, 3 and 5 bytes), Qwen-sized and up to 2^32 - 1
    const widths = [23, 255, 65535, 151_935, 0xffffffff];
    const toks = Array.from({ length: 16 * 150 + 5 }, () => Math.floor((next() / 2 ** 32) * (widths[next() % widths.length] + 1)));
    const want: bigint[] = [];
    let parent = k.root('Qwen/Qwen3-0.6B');
    for (let b = 0; b + 16 <= toks.length; b += 16) {
      parent = fnvRef([0x83, ...uintHead(parent), 0x90, ...toks.slice(b, b + 16).flatMap((t) => uintHead(BigInt(t))), 0xf6]);
      want.push(parent);
    }
    assert.deepEqual([...k.keys(Uint32Array.from(toks), { model: 'Qwen/Qwen3-0.6B' })], want);
  });

  it('the fused token hashing equals FNV64a over the generic CBOR encoder (64-token blocks, extras, every id width)', () => {
    const k = new BlockKeyer({ blockSize: 64, hashSeed: 'seed', algorithm: 'cbor-fnv' });
    let x = 777;
    const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
    const widths = [23, 255, 65535, 151_935, 0xffffffff];
    const toks = Array.from({ length: 64 * 12 + 9 }, () => Math.floor((next() / 2 ** 32) * (widths[next() % widths.length] + 1)));
    const n = Math.floor(toks.length / 64);
    const extra = Array.from({ length: n }, (_, i) => (i % 3 === 1 ? [`mm-${i}`, 'x'.repeat(40 * i)] : null));
    for (const withExtra of [false, true]) {
      const want: bigint[] = [];
      let parent = k.root('Qwen/Qwen3-0.6B');
      for (let i = 0; i < n; i++) {
        const ex = withExtra && extra[i] ? extra[i]!.map((id) => ({ Hash: id })) : null;
        parent = fnv64a(encodeCbor([parent, toks.slice(64 * i, 64 * i + 64), ex]));
        want.push(parent);
      }
      const got = k.keys(Uint32Array.from(toks), { model: 'Qwen/Qwen3-0.6B', extra: withExtra ? extra : null });
      assert.deepEqual([...got], want);
    }
  });

  it('extra features become [{"Hash": id}, ...] and cache_salt goes into block 0 only', () => {
    const k = new BlockKeyer({ blockSize: 2, hashSeed: '', algorithm: 'cbor-fnv' });
    const root = k.root('m');
    const hashMap = (id: string) => [0xa1, 0x64, ...ascii('Hash'), 0x60 + id.length, ...ascii(id)];
    // block 0: mm id "img1" then salt "s1"; block 1: none
    const h0 = fnvRef([0x83, ...uintHead(root), 0x82, 0x01, 0x02, 0x82, ...hashMap('img1'), ...hashMap('s1')]);
    const h1 = fnvRef([0x83, ...uintHead(h0), 0x82, 0x03, 0x04, 0xf6]);
    assert.deepEqual([...k.keys([1, 2, 3, 4], { model: 'm', extra: [['img1'], null], cacheSalt: 's1' })], [h0, h1]);
    // objects are encoded canonically as given
    assert.deepEqual([...k.keys([1, 2, 3, 4], { model: 'm', extra: [[{ Hash: 'img1' }, { Hash: 's1' }], null] })], [h0, h1]);
    // salt is only for chains that start at the root
    const cont = k.keys([3, 4], { model: 'm', parent: h0, cacheSalt: 's1' });
    assert.deepEqual([...cont], [h1]);
    assert.throws(() => k.keys([1, 2, 3, 4], { model: 'm', extra: [null] }), /extra has 1 entries/);
  });

  it('LoRA name replaces the model in the root', () => {
    const k = new BlockKeyer({ blockSize: 2, hashSeed: '7', algorithm: 'cbor-fnv' });
    assert.deepEqual([...k.keys([1, 2], { model: 'base', lora: 'adapter' })], [...k.keys([1, 2], { model: 'adapter' })]);
    assert.notDeepEqual([...k.keys([1, 2], { model: 'base', lora: 'adapter' })], [...k.keys([1, 2], { model: 'base' })]);
  });

  it('rejects bad input clearly', () => {
    assert.throws(() => new BlockKeyer({ blockSize: 0 }), /block size/);
    assert.throws(() => new BlockKeyer({ algorithm: 'md5' as never }), /unknown hash algorithm/);
    const k = new BlockKeyer({ blockSize: 2 });
    assert.throws(() => k.keys([1, -2], { model: 'm' }), /uint32/);
    assert.throws(() => k.keys([1, 2.5], { model: 'm' }), /uint32/);
    assert.throws(() => k.keys([1, 2 ** 32], { model: 'm' }), /uint32/);
    assert.equal(k.keys([1], { model: 'm' }).length, 0);
  });

  it('fast64 is deterministic, chains, and differs by seed, model and tokens', () => {
    const a = new BlockKeyer({ blockSize: 4, hashSeed: 's', algorithm: 'fast64' });
    const b = new BlockKeyer({ blockSize: 4, hashSeed: 't', algorithm: 'fast64' });
    const toks = Array.from({ length: 12 }, (_, i) => i * 1000);
    const ka = a.keys(toks, { model: 'm' });
    assert.deepEqual([...a.keys(toks, { model: 'm' })], [...ka]);
    assert.deepEqual([...a.keys(toks.slice(4), { model: 'm', parent: ka[0] })], [...ka.slice(1)]);
    assert.notDeepEqual([...b.keys(toks, { model: 'm' })], [...ka]);
    assert.notDeepEqual([...a.keys(toks, { model: 'n' })], [...ka]);
    const seen = new Set<bigint>();
    for (let t = 0; t < 20000; t++) for (const key of a.keys([t, 1, 2, 3], { model: 'm' })) seen.add(key);
    assert.equal(seen.size, 20000, 'no collisions on 20k single-block prompts');
  });

  it('kvrouter keys prints the same keys as JSON decimal strings', () => {
    const res = spawnSync(process.execPath, [...CLI, 'keys', '--model', 'm', '--block-size', '4', '--seed', '42', '--tokens', '0,23,24,255,256,65535,65536,151643,7'], { encoding: 'utf8' });
    assert.equal(res.status, 0, res.stderr);
    const k = new BlockKeyer({ blockSize: 4, hashSeed: '42', algorithm: 'cbor-fnv' });
    assert.deepEqual(JSON.parse(res.stdout), [...k.keys([0, 23, 24, 255, 256, 65535, 65536, 151643], { model: 'm' })].map(String));
    const lora = spawnSync(process.execPath, [...CLI, 'keys', '--model', 'm', '--block-size', '2', '--tokens', '1,2,3,4', '--lora', 'L', '--extra', '[["img"],null]', '--algorithm', 'fast64'], { encoding: 'utf8' });
    assert.equal(lora.status, 0, lora.stderr);
    const kf = new BlockKeyer({ blockSize: 2, algorithm: 'fast64' });
    assert.deepEqual(JSON.parse(lora.stdout), [...kf.keys([1, 2, 3, 4], { model: 'm', lora: 'L', extra: [['img'], null] })].map(String));
    const bad = spawnSync(process.execPath, [...CLI, 'keys', '--model', 'm', '--tokens', '1,x'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /not a uint32/);
  });
});
