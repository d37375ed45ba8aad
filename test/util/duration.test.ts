import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration } from '../../src/util/duration.js';

test('Go duration strings, as llm-d configs and EPP flags write them', () => {
  assert.equal(parseDuration('2s'), 2000);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('1m0s'), 60_000);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.equal(parseDuration('300ms'), 300);
  assert.equal(parseDuration('.5s'), 500);
  assert.equal(parseDuration('1500us'), 1.5);
  assert.equal(parseDuration('2µs'), 0.002);
  assert.equal(parseDuration('250ns'), 0.00025);
  assert.equal(parseDuration('0'), 0);
  assert.equal(parseDuration(' 10s '), 10_000);
});

test('a bare number is a Go time.Duration in JSON: nanoseconds', () => {
  assert.equal(parseDuration(60_000_000_000), 60_000);
  assert.equal(parseDuration(0), 0);
});

test('bad durations are refused with the field named', () => {
  assert.throws(() => parseDuration('1000', 'speculativeTTL'), /speculativeTTL: duration "1000" has no unit \(write e\.g\. "1000ms"/);
  assert.throws(() => parseDuration('soon', 'speculativeTTL'), /speculativeTTL: invalid duration "soon"/);
  assert.throws(() => parseDuration('2 s'), /invalid duration/);
  assert.throws(() => parseDuration('2sx'), /invalid duration/);
  assert.throws(() => parseDuration('-2s'), /negative duration/);
  assert.throws(() => parseDuration(-1), /not a duration/);
  assert.throws(() => parseDuration(Number.NaN), /not a duration/);
  assert.throws(() => parseDuration(''), /invalid duration/);
  assert.throws(() => parseDuration('1s'.repeat(100)), /invalid duration/);
});
