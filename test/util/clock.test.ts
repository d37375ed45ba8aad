import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, realClock } from '../../src/util/clock.js';

test('ManualClock fires timers in time order, ties in creation order, only when advanced', () => {
  const c = new ManualClock(100);
  const seen: string[] = [];
  c.setTimeout(() => seen.push('b@20'), 20);
  c.setTimeout(() => seen.push('a@10'), 10);
  c.setTimeout(() => seen.push('c@20'), 20);
  const cancelled = c.setTimeout(() => seen.push('never'), 5);
  c.clearTimeout(cancelled);
  assert.deepEqual(seen, []);
  assert.equal(c.advance(15), 1);
  assert.deepEqual(seen, ['a@10']);
  assert.equal(c.now(), 115);
  c.advance(100);
  assert.deepEqual(seen, ['a@10', 'b@20', 'c@20']);
  assert.equal(c.pending, 0);
});

test('ManualClock intervals repeat at their period and see the time they fire at', () => {
  const c = new ManualClock();
  const at: number[] = [];
  const h = c.setInterval(() => at.push(c.now()), 50);
  c.advance(175);
  assert.deepEqual(at, [50, 100, 150]);
  c.clearInterval(h);
  c.advance(1000);
  assert.deepEqual(at, [50, 100, 150]);
  assert.equal(c.nextAt(), Infinity);
});

test('ManualClock: a timer set while firing runs in the same advance when due', () => {
  const c = new ManualClock();
  const seen: number[] = [];
  c.setTimeout(() => {
    seen.push(c.now());
    c.setTimeout(() => seen.push(c.now()), 0);
  }, 10);
  c.advance(10);
  assert.deepEqual(seen, [10, 10]);
});

test('realClock timers fire and unref returns the handle', async () => {
  const t0 = realClock.now();
  // Awaited timers stay ref'd: an unref'd one alone would let the event loop end before it fires.
  await new Promise<void>((resolve) => realClock.setTimeout(resolve, 5));
  assert.ok(realClock.now() >= t0);
  const idle = realClock.setTimeout(() => {}, 60_000);
  assert.equal(idle.unref(), idle);
  realClock.clearTimeout(idle);
});
