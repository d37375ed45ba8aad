import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/util/clock.js';
import { SpeculativeTtl } from '../../src/index/speculative-ttl.js';
import { InMemoryKvBlockIndex } from '../../src/index/memory-index.js';

const K = (...xs: number[]): BigUint64Array => BigUint64Array.from(xs.map((x) => BigInt(x)));

test('items expire in due order on the injected clock, mixed TTLs, one timer at a time', async () => {
  const clock = new ManualClock(1000);
  const expired: string[] = [];
  let sweeps = 0;
  const q = new SpeculativeTtl<string>({ clock, expire: (s) => expired.push(s), afterTimer: async () => void sweeps++ });
  q.add('b', 200);
  q.add('a', 100);
  q.add('c', 300);
  assert.equal(q.pending, 3);
  assert.equal(clock.pending, 1, 'one timer, re-armed for the earliest item');
  assert.equal(q.hasDue(), false);
  clock.advance(99);
  assert.deepEqual(expired, []);
  clock.advance(1);
  assert.equal(q.hasDue(), true, 'due before the timer (slack) fires');
  assert.equal(q.expireDue(), 1, 'a lookup may expire due items itself');
  assert.deepEqual(expired, ['a']);
  const settle = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  clock.advance(1); // a's timer fires with nothing left to expire, then afterTimer runs
  await settle();
  assert.equal(sweeps, 1, 'afterTimer ran after the timer');
  assert.equal(clock.pending, 1, 're-armed for b once afterTimer settled');
  clock.advance(100); // b's timer (200 + 1 ms slack)
  assert.deepEqual(expired, ['a', 'b']);
  await settle();
  clock.advance(1000);
  assert.deepEqual(expired, ['a', 'b', 'c']);
  assert.equal(q.pending, 0);
});

test('maxPending bounds the queue; close drops items and the timer', () => {
  const clock = new ManualClock();
  const expired: number[] = [];
  const q = new SpeculativeTtl<number>({ clock, expire: (n) => expired.push(n), maxPending: 2 });
  for (let i = 0; i < 5; i++) q.add(i, 10);
  assert.equal(q.pending, 2);
  q.close();
  assert.equal(q.pending, 0);
  q.add(9, 1);
  clock.advance(100);
  assert.deepEqual(expired, []);
});

test('in-memory speculative entries live exactly their TTL on a ManualClock, expired by the timer without a lookup', () => {
  const clock = new ManualClock();
  const x = new InMemoryKvBlockIndex({ clock });
  x.addSpeculative(K(1, 2, 3), 'p', 2000);
  clock.advance(1999);
  assert.equal(x.longestPrefix(K(1, 2, 3)).get('p')?.blocks, 3);
  clock.advance(2); // the timer fires 1 ms after the due time
  assert.equal(x.stats().entries, 0);
  assert.equal(x.removals.evictions, 3);
  x.close();
});
