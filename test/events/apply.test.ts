// Socket-free ingestion through KvEventSubscriber.applyBatch: the index must end up holding
// exactly the request keys the read side computes for the same tokens.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { KvEventSubscriber } from '../../src/events/subscriber.js';
import { blockStored, encodeEventBatch } from './msgspec-encoder.js';
import type { DecodedBatch, KvEvent } from '../../src/events/types.js';
import { InMemoryKvBlockIndex } from '../../src/index/memory-index.js';
import { BlockKeyer } from '../../src/index/keys.js';

const silent = pino({ level: 'silent' });
const MODEL = 'Qwen/Qwen3-0.6B';
const toks = (n: number, base = 1000) => Array.from({ length: n }, (_, i) => base + i);
const batch = (events: KvEvent[], rank: number | null = 0): DecodedBatch => ({ ts: 0, events, dataParallelRank: rank, skipped: [] });
const removed = (h: bigint, medium = 'GPU'): KvEvent => ({ type: 'BlockRemoved', blockHashes: [h], medium, groupIdx: null });

function setup(routerBs: number) {
  const index = new InMemoryKvBlockIndex();
  const keyer = new BlockKeyer({ blockSize: routerBs, hashSeed: '42', algorithm: 'cbor-fnv' });
  const registry = new Registry();
  const sub = new KvEventSubscriber({ index, keyer, logger: silent, registry });
  const score = (tokens: number[], opts: { lora?: string; extra?: (unknown[] | null)[]; cacheSalt?: string } = {}, pod = '10.0.0.1:8000') =>
    index.longestPrefix(keyer.keys(tokens, { model: MODEL, ...opts })).get(pod) ?? { blocks: 0, weighted: 0 };
  return { index, keyer, sub, score, registry };
}

describe('event application', () => {
  it('same block size: chains across events through the parent hash; removal and clear', async () => {
    const { sub, score, index } = setup(16);
    const t = toks(64);
    await sub.applyBatch('10.0.0.1:8000', MODEL, 0, batch([blockStored({ blockHashes: [11n, 12n], tokenIds: t.slice(0, 32), blockSize: 16 })]));
    await sub.applyBatch('10.0.0.1:8000', MODEL, 1, batch([blockStored({ blockHashes: [13n, 14n], parentBlockHash: 12n, tokenIds: t.slice(32), blockSize: 16 })]));
    assert.deepEqual(score(t), { blocks: 4, weighted: 4 });
    await sub.applyBatch('10.0.0.1:8000', MODEL, 2, batch([removed(13n)]));
    assert.equal(score(t).blocks, 2);
    await sub.applyBatch('10.0.0.2:8000', MODEL, 0, batch([blockStored({ blockHashes: [11n], tokenIds: t.slice(0, 16), blockSize: 16 })]));
    await sub.applyBatch('10.0.0.1:8000', MODEL, 3, batch([{ type: 'AllBlocksCleared' }]));
    assert.equal(score(t).blocks, 0);
    assert.equal(score(t, {}, '10.0.0.2:8000').blocks, 1, 'other pod untouched');
    assert.equal(index.stats().entries, 1);
  });

  it('engine bs 16 -> router bs 64: spans ending mid-block chain through pending tails; tail eviction drops the router block', async () => {
    const { sub, score } = setup(64);
    const t = toks(128);
    // blocks 0-2 (48 tokens), then 3-7 (80 tokens) continuing from block 2
    await sub.applyBatch('10.0.0.1:8000', MODEL, 0, batch([blockStored({ blockHashes: [1n, 2n, 3n], tokenIds: t.slice(0, 48), blockSize: 16 })]));
    assert.equal(score(t).blocks, 0, 'no full router block yet');
    await sub.applyBatch('10.0.0.1:8000', MODEL, 1, batch([blockStored({ blockHashes: [4n, 5n, 6n, 7n, 8n], parentBlockHash: 3n, tokenIds: t.slice(48), blockSize: 16 })]));
    assert.deepEqual(score(t), { blocks: 2, weighted: 2 });
    // a branch from engine block 5 (mid router block 1) continues correctly
    const branch = [...t.slice(0, 80), ...toks(48, 9000)];
    await sub.applyBatch('10.0.0.1:8000', MODEL, 2, batch([blockStored({ blockHashes: [20n, 21n, 22n], parentBlockHash: 5n, tokenIds: branch.slice(80), blockSize: 16 })]));
    assert.equal(score(branch).blocks, 2);
    await sub.applyBatch('10.0.0.1:8000', MODEL, 3, batch([removed(8n)]));
    assert.equal(score(t).blocks, 1, 'evicting engine block 7 removes router block 1');
    assert.equal(score(branch).blocks, 2, 'the branch keeps its own block 1');
  });

  it('engine bs 64 -> router bs 16: one engine block maps to four request blocks', async () => {
    const { sub, score, index } = setup(16);
    const t = toks(128);
    await sub.applyBatch('p:1', MODEL, 0, batch([blockStored({ blockHashes: [100n, 101n], tokenIds: t, blockSize: 64 })]));
    assert.equal(index.longestPrefix(new BlockKeyer({ blockSize: 16, hashSeed: '42' }).keys(t, { model: MODEL })).get('p:1')?.blocks, 8);
    await sub.applyBatch('p:1', MODEL, 1, batch([blockStored({ blockHashes: [102n], parentBlockHash: 101n, tokenIds: toks(64, 5000), blockSize: 64 })]));
    assert.equal(score([...t, ...toks(64, 5000)], {}, 'p:1').blocks, 12);
    await sub.applyBatch('p:1', MODEL, 2, batch([removed(101n)]));
    assert.equal(score(t, {}, 'p:1').blocks, 4);
  });

  it('token_ids covering already-cached blocks that block_hashes leaves out (vllm #44451)', async () => {
    const { sub, score, index } = setup(16);
    const t = toks(80);
    await sub.applyBatch('p:1', MODEL, 0, batch([blockStored({ blockHashes: [1n, 2n], tokenIds: t.slice(0, 32), blockSize: 16 })]));
    await sub.applyBatch('p:1', MODEL, 1, batch([blockStored({ blockHashes: [5n], parentBlockHash: 2n, tokenIds: t.slice(32), blockSize: 16 })]));
    assert.equal(score(t, {}, 'p:1').blocks, 5);
    assert.equal(index.getRequestKey(5n, 'p:1'), new BlockKeyer({ blockSize: 16, hashSeed: '42' }).keys(t, { model: MODEL })[4]);
  });

  it('CPU offload: token-less BlockStored adds the cpu tier; removing the GPU copy keeps a 0.8 hit', async () => {
    const { sub, score } = setup(16);
    const t = toks(32);
    await sub.applyBatch('p:1', MODEL, 0, batch([blockStored({ blockHashes: [1n, 2n], tokenIds: t, blockSize: 16 })]));
    await sub.applyBatch('p:1', MODEL, 1, batch([blockStored({ blockHashes: [1n, 2n], tokenIds: [], blockSize: 16, medium: 'CPU' })]));
    await sub.applyBatch('p:1', MODEL, 2, batch([removed(1n), removed(2n)]));
    assert.deepEqual(score(t, {}, 'p:1'), { blocks: 2, weighted: 1.6 });
    await sub.applyBatch('p:1', MODEL, 3, batch([removed(1n, 'CPU')]));
    assert.equal(score(t, {}, 'p:1').blocks, 0);
  });

  it('LoRA name in the root, MM ids and cache_salt from extra_keys match the read side', async () => {
    const { sub, score } = setup(16);
    const t = toks(32);
    await sub.applyBatch('p:1', MODEL, 0, batch([blockStored({ blockHashes: [1n, 2n], tokenIds: t, blockSize: 16, loraName: 'sql', extraKeys: [['sql', 'img-1', 'salt-9'], ['sql', ['img-2', 3]]] })]));
    assert.equal(score(t, { lora: 'sql', extra: [['img-1'], ['img-2']], cacheSalt: 'salt-9' }, 'p:1').blocks, 2);
    assert.equal(score(t, {}, 'p:1').blocks, 0, 'base model keys differ');
    assert.equal(score(t, { lora: 'sql', extra: [['img-1'], ['img-2']] }, 'p:1').blocks, 0, 'salt is part of block 0');
  });

  it('data-parallel rank r of ip:port is indexed as ip:(port+r), with its own sequence', async () => {
    const { sub, score } = setup(16);
    const t = toks(16);
    await sub.applyBatch('10.0.0.1:8000', MODEL, 0, batch([blockStored({ blockHashes: [1n], tokenIds: t, blockSize: 16 })], 1));
    await sub.applyBatch('10.0.0.1:8000', MODEL, 0, batch([blockStored({ blockHashes: [9n], tokenIds: toks(16, 7), blockSize: 16 })], 0));
    assert.equal(score(t, {}, '10.0.0.1:8001').blocks, 1);
    assert.equal(score(t, {}, '10.0.0.1:8000').blocks, 0);
    assert.equal(sub.metrics.totals.restarts, 0, 'two ranks are two streams');
  });

  it('counts gaps without a replay endpoint and clears the pod on a publisher restart', async () => {
    const { sub, score } = setup(16);
    const t = toks(16);
    await sub.applyBatch('p:1', MODEL, 0, batch([blockStored({ blockHashes: [1n], tokenIds: t, blockSize: 16 })]));
    await sub.applyBatch('p:1', MODEL, 3, batch([]));
    assert.equal(sub.metrics.totals.gaps, 1);
    assert.equal(sub.metrics.totals.missedBatches, 2);
    assert.equal(score(t, {}, 'p:1').blocks, 1);
    await sub.applyBatch('p:1', MODEL, 0, batch([blockStored({ blockHashes: [50n], tokenIds: toks(16, 3), blockSize: 16 })]));
    assert.equal(sub.metrics.totals.restarts, 1);
    assert.equal(score(t, {}, 'p:1').blocks, 0, 'stale blocks of the old engine are gone');
    assert.equal(score(toks(16, 3), {}, 'p:1').blocks, 1);
  });

  it('an unknown parent without replay is counted, and the rest of the batch still applies', async () => {
    const { sub, score, registry } = setup(16);
    await sub.applyBatch('p:1', MODEL, 0, batch([
      blockStored({ blockHashes: [7n], parentBlockHash: 6n, tokenIds: toks(16, 50), blockSize: 16 }),
      blockStored({ blockHashes: [1n], tokenIds: toks(16), blockSize: 16 }),
    ]));
    assert.equal(sub.metrics.totals.unknownParents, 1);
    assert.equal(sub.metrics.totals.recoveredParents, 0);
    assert.equal(score(toks(16), {}, 'p:1').blocks, 1);
    const text = await registry.metrics();
    assert.match(text, /kvcache_events_unknown_parents_total\{pod="p:1",outcome="unrecovered"\} 1/);
    assert.match(text, /kvcache_events_messages_total\{pod="p:1"\} 1/);
  });

  it('raw payloads: counted and rejected when undecodable; non-full-attention groups skipped', async () => {
    const { sub, score } = setup(16);
    await assert.rejects(sub.applyBatch('p:1', MODEL, 0, Uint8Array.of(0xc1)), /invalid msgpack/);
    assert.equal(sub.metrics.totals.decodeErrors, 1);
    const payload = encodeEventBatch(1, [
      blockStored({ blockHashes: [1n], tokenIds: toks(16), blockSize: 16, groupIdx: 1, kvCacheSpecKind: 'sliding_window', kvCacheSpecSlidingWindow: 128 }),
      blockStored({ blockHashes: [2n], tokenIds: toks(16, 77), blockSize: 16, groupIdx: 0, kvCacheSpecKind: 'full_attention' }),
    ], 0, { schema: { form: 'map' } });
    await sub.applyBatch('p:1', MODEL, 0, payload);
    assert.equal(score(toks(16), {}, 'p:1').blocks, 0);
    assert.equal(score(toks(16, 77), {}, 'p:1').blocks, 1);
    assert.equal(sub.metrics.totals.skippedEvents, 1);
  });
});

describe('resync requests from a shared index', () => {
  it('without a replay endpoint a resync keeps what the index holds (clearing would only lose more)', async () => {
    const { EventEmitter } = await import('node:events');
    class EmittingIndex extends InMemoryKvBlockIndex {
      readonly events = new EventEmitter();
      on(ev: string, fn: (info: unknown) => void) {
        this.events.on(ev, fn);
        return this;
      }
      off(ev: string, fn: (info: unknown) => void) {
        this.events.off(ev, fn);
        return this;
      }
    }
    const index = new EmittingIndex();
    const keyer = new BlockKeyer({ blockSize: 16, hashSeed: '42' });
    const sub = new KvEventSubscriber({ index, keyer, logger: silent, registry: new Registry() });
    await sub.applyBatch('p:1', MODEL, 0, batch([blockStored({ blockHashes: [1n], tokenIds: toks(16), blockSize: 16 })]));
    assert.equal(index.stats().entries, 1);
    index.events.emit('resync-needed', { reason: 'writes-lost', pods: ['p:1'] });
    await sub.flush();
    assert.equal(index.stats().entries, 1);
    assert.equal(sub.streamState()[0].lastSeq, 0, 'the stream goes on');
    await sub.close();
    assert.equal(index.events.listenerCount('resync-needed'), 0);
  });
});
