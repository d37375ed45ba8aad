// Outlier ejection and slow start on a ManualClock: who is a candidate, when, and for how long.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutlierDetector } from '../../src/endpoints/outlier.js';
import { ManualClock } from '../../src/util/clock.js';

const ep = (address: string, inflightRequests = 0) => ({ address, inflightRequests });
const names = (xs: { address: string }[]) => xs.map((x) => x.address).join(',');

test('consecutive failures eject for base x n, capped; a success in between resets the count', () => {
  const clock = new ManualClock();
  const o = new OutlierDetector({ clock, consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 2500, slowStartMs: 0 });
  const all = [ep('a'), ep('b')];
  const events: string[] = [];
  o.on((addr, ev, d) => events.push(`${addr}:${ev}:${d.ejectedMs}`));
  o.failure('a');
  o.failure('a');
  o.success('a');
  o.failure('a');
  o.failure('a');
  assert.equal(names(o.filter(all)), 'a,b', 'a success broke the run: not ejected');
  assert.equal(o.failure('a'), true, 'third in a row ejects');
  assert.equal(names(o.filter(all)), 'b');
  clock.advance(999);
  assert.equal(names(o.filter(all)), 'b', 'still ejected just before 1 s');
  clock.advance(1);
  assert.equal(names(o.filter(all)), 'a,b', 'back after base ejection time');
  // Second ejection right away: twice as long.
  for (let i = 0; i < 3; i++) o.failure('a');
  clock.advance(1999);
  assert.equal(o.isEjected('a'), true);
  clock.advance(1);
  assert.equal(o.isEjected('a'), false);
  // Third: 3 s, capped at 2.5 s.
  for (let i = 0; i < 3; i++) o.failure('a');
  clock.advance(2499);
  assert.equal(o.isEjected('a'), true);
  clock.advance(1);
  assert.equal(o.isEjected('a'), false);
  assert.deepEqual(events, ['a:ejected:1000', 'a:returned:1000', 'a:ejected:2000', 'a:returned:2000', 'a:ejected:2500', 'a:returned:2500']);
  assert.equal(o.ejectionsTotal.get('a'), 3);
});

test('the ejection multiplier decays by one per healthy base interval', () => {
  const clock = new ManualClock();
  const o = new OutlierDetector({ clock, consecutiveFailures: 1, baseEjectionMs: 1000, maxEjectionMs: 100_000, slowStartMs: 0 });
  o.failure('a'); // 1 s
  clock.advance(1000);
  assert.equal(o.isEjected('a'), false);
  o.failure('a'); // 2 s
  clock.advance(2000);
  assert.equal(o.isEjected('a'), false);
  clock.advance(2000); // two healthy intervals: multiplier 2 -> 0
  o.failure('a'); // back to 1 s
  clock.advance(999);
  assert.equal(o.isEjected('a'), true);
  clock.advance(1);
  assert.equal(o.isEjected('a'), false);
});

test('ejection never empties the candidates (panic mode) and a lone endpoint is never filtered', () => {
  const clock = new ManualClock();
  const o = new OutlierDetector({ clock, consecutiveFailures: 1, baseEjectionMs: 1000, slowStartMs: 0 });
  o.failure('a');
  o.failure('b');
  assert.equal(names(o.filter([ep('a'), ep('b')])), 'a,b');
  assert.equal(names(o.filter([ep('a')])), 'a');
  assert.equal(names(o.filter([ep('a'), ep('b'), ep('c')])), 'c');
});

test('slow start: a returning endpoint takes a share of its peers\' concurrency growing over the window', () => {
  const clock = new ManualClock();
  const o = new OutlierDetector({ clock, slowStartMs: 10_000, slowStartMinPercent: 10 });
  o.returned('new');
  const at = (inflightNew: number, peer = 40) => names(o.filter([ep('new', inflightNew), ep('old', peer)]));
  // Start of the window: 10% of the busiest peer's 40 = 4 concurrent requests.
  assert.equal(o.slowStartFactor('new'), 0.1);
  assert.equal(at(3), 'new,old');
  assert.equal(at(4), 'old');
  // Idle peers: at least one request at a time.
  assert.equal(at(0, 0), 'new,old');
  assert.equal(at(1, 0), 'old');
  clock.advance(5000);
  assert.equal(o.slowStartFactor('new'), 0.5);
  assert.equal(at(19), 'new,old');
  assert.equal(at(20), 'old');
  clock.advance(5000);
  assert.equal(o.slowStartFactor('new'), 1);
  assert.equal(at(100), 'new,old', 'window over: no cap');
});

test('an endpoint back from ejection is in slow start', () => {
  const clock = new ManualClock();
  const o = new OutlierDetector({ clock, consecutiveFailures: 1, baseEjectionMs: 1000, slowStartMs: 4000 });
  o.failure('a');
  clock.advance(1000);
  assert.equal(names(o.filter([ep('a', 1), ep('b', 10)])), 'b', 'back, but over its 10% share of 10');
  assert.equal(names(o.filter([ep('a', 0), ep('b', 10)])), 'a,b');
  clock.advance(2000);
  assert.equal(o.slowStartFactor('a'), 0.5);
});
