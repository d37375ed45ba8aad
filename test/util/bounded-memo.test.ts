import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedMemo } from '../../src/util/bounded-memo.js';

test('BoundedMemo admits entries until their weights reach the capacity, then keeps what it holds', () => {
  const memo = new BoundedMemo<object, string>(10);
  const a = {};
  const b = {};
  const c = {};
  assert.equal(memo.set(a, 'a', 6), true);
  assert.equal(memo.set(b, 'b', 5), false, 'would exceed the capacity');
  assert.equal(memo.get(b), undefined);
  assert.equal(memo.set(c, 'c', 4), true, 'fits exactly');
  assert.equal(memo.weight, 10);
  assert.equal(memo.get(a), 'a');
  assert.equal(memo.get(c), 'c');
  // a key already held is updated without counting its weight again
  assert.equal(memo.set(a, 'a2', 6), true);
  assert.equal(memo.get(a), 'a2');
  assert.equal(memo.weight, 10);
});

test('BoundedMemo with an infinite capacity admits everything', () => {
  const memo = new BoundedMemo<object, number>(Infinity);
  const keys = Array.from({ length: 100 }, () => ({}));
  keys.forEach((k, i) => assert.equal(memo.set(k, i, 1e9), true));
  assert.equal(memo.get(keys[99]), 99);
});
