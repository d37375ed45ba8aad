// The key table keeps each key's holder run in a canonical order (unit-weight slots first, each
// part sorted by pod and class), so the scoring walk's identical-run shortcut applies whatever
// order pods stored a prefix in.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EntryTable } from '../../src/index/memory/entries.js';
import { KeyTable } from '../../src/index/memory/key-table.js';
import { RS, R_LEN, R_RUN, R_CLS, UNIT_SHIFT } from '../../src/index/memory/record-layout.js';

function runOf(t: KeyTable, lo: number): { podCls: number[]; units: number } {
  const r = t.find(lo, 0);
  assert.notEqual(r, -1, `key ${lo} present`);
  const off = t.rec[r * RS + R_RUN];
  const len = t.rec[r * RS + R_LEN];
  return { podCls: [...t.slabs.podCls.subarray(off, off + len)], units: t.rec[r * RS + R_CLS] >> UNIT_SHIFT };
}

function refKey(t: KeyTable, lo: number, e: number): void {
  let r = t.find(lo, 0);
  if (r === -1) r = t.insert(lo, 0);
  t.ref(r, e);
}

describe('KeyTable holder runs', () => {
  it('hold the same slots in the same order for the same holders, whatever the insertion order', () => {
    const ents = new EntryTable({ gpu: 1, cpu: 0.8 });
    const entries = Array.from({ length: 40 }, (_, p) => ents.entryIndex({ pod: `pod-${p}`, tier: p % 3 === 0 ? 'cpu' : 'gpu' }, true));
    const t = new KeyTable(ents);
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (let key = 1; key <= 30; key++) {
      const order = entries.slice();
      for (let a = order.length - 1; a > 0; a--) {
        const b = rand(a + 1);
        [order[a], order[b]] = [order[b], order[a]];
      }
      for (const e of order) refKey(t, key, e);
    }
    const first = runOf(t, 1);
    assert.equal(first.podCls.length, 40);
    assert.equal(first.units, 40 - 14, 'unit-weight (gpu) slots counted');
    const units = first.podCls.slice(0, first.units);
    const rest = first.podCls.slice(first.units);
    assert.ok(units.every((v) => (v & 0xff) === 0) && rest.every((v) => (v & 0xff) !== 0), 'unit slots first');
    assert.deepEqual(units, units.slice().sort((a, b) => a - b));
    assert.deepEqual(rest, rest.slice().sort((a, b) => a - b));
    for (let key = 2; key <= 30; key++) assert.deepEqual(runOf(t, key), first, `key ${key}`);

    // removals keep the order: drop a unit and a weighted holder from every key in different orders
    for (let key = 1; key <= 30; key++) {
      const drop = key % 2 === 0 ? [entries[5], entries[9]] : [entries[9], entries[5]];
      for (const e of drop) t.unref(t.find(key, 0), e);
    }
    const after = runOf(t, 1);
    assert.equal(after.podCls.length, 38);
    assert.equal(after.units, first.units - 1, 'pod-5 (gpu) left the unit part; pod-9 (cpu) the rest');
    assert.deepEqual(after.podCls, first.podCls.filter((v) => v >> 8 !== 5 && v >> 8 !== 9));
    for (let key = 2; key <= 30; key++) assert.deepEqual(runOf(t, key), after, `key ${key} after removals`);
  });

  it('removePod leaves the other holders in order', () => {
    const ents = new EntryTable({ gpu: 1, cpu: 0.5 });
    const es = [3, 1, 4, 0, 2].map((p) => ents.entryIndex({ pod: `p${p}`, tier: p === 4 ? 'cpu' : 'gpu' }, true));
    const t = new KeyTable(ents);
    for (const e of es) refKey(t, 9, e);
    const p1 = ents.podIndex('p1', false);
    assert.equal(t.removePod(p1), 1);
    const run = runOf(t, 9);
    assert.deepEqual(run.podCls.map((v) => ents.podNames[v >> 8]), ['p3', 'p0', 'p2', 'p4'].sort((a, b) => ents.podIds.get(a)! - ents.podIds.get(b)!).filter((n) => n !== 'p4').concat(['p4']));
    assert.equal(run.units, 3);
  });
});
