// The virtual runner's event loop: time order, ties in creation order, intervals, the engines'
// seconds view of the same time line, and promises returned by callbacks settled before time moves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualEventLoop } from '../../src/bench/virtual/event-loop.js';

test('virtual event loop: timers fire in time order, ties in creation order, time jumps', async () => {
  const loop = new VirtualEventLoop();
  const seen: string[] = [];
  loop.at(30, () => seen.push(`c@${loop.now()}`), 'client');
  loop.at(10, () => seen.push(`a@${loop.now()}`), 'client');
  loop.at(10, () => seen.push(`b@${loop.now()}`), 'client');
  loop.setTimeout(() => seen.push(`t@${loop.now()}`), 20);
  const cancelled = loop.setTimeout(() => seen.push('never'), 15);
  loop.clearTimeout(cancelled);
  // Engines speak seconds on the same heap.
  loop.sim.at(0.025, () => seen.push(`e@${loop.sim.now()}`));
  const fired = await loop.run();
  assert.deepEqual(seen, ['a@10', 'b@10', 't@20', 'e@0.025', 'c@30']);
  assert.equal(fired, 5);
  assert.equal(loop.now(), 30);
});

test('virtual event loop: a timer set in the past runs now, intervals repeat until cleared', async () => {
  const loop = new VirtualEventLoop();
  const ticks: number[] = [];
  const iv = loop.setInterval(() => {
    ticks.push(loop.now());
    if (ticks.length === 3) loop.clearInterval(iv);
  }, 50);
  await loop.run(1000);
  assert.deepEqual(ticks, [50, 100, 150]);
  assert.equal(loop.now(), 1000, 'run(until) ends at `until`');
  let at = -1;
  loop.at(5, () => void (at = loop.now()), 'client');
  await loop.run();
  assert.equal(at, 1000);
});

test('virtual event loop: work a callback returns settles at its own time, before later timers', async () => {
  const loop = new VirtualEventLoop();
  const order: string[] = [];
  loop.at(
    10,
    async () => {
      for (let i = 0; i < 5; i++) await Promise.resolve(); // a chain several microtasks deep
      order.push(`chain done @${loop.now()}`);
      loop.setTimeout(() => order.push(`follow-up @${loop.now()}`), 0);
    },
    'scheduler',
  );
  loop.at(10, () => order.push(`second @${loop.now()}`), 'client');
  loop.at(11, () => order.push(`later @${loop.now()}`), 'client');
  await loop.run();
  assert.deepEqual(order, ['chain done @10', 'second @10', 'follow-up @10', 'later @11']);
});

test('virtual event loop: stop() ends the run after the current timer', async () => {
  const loop = new VirtualEventLoop();
  let n = 0;
  loop.every(0, 10, () => void n++, 'scrape');
  await loop.run(Infinity, () => n >= 4);
  assert.equal(n, 4);
  assert.equal(loop.now(), 30);
});
