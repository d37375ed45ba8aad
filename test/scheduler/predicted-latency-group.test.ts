import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockKeyer } from '../../src/index/keys.js';
import { groupFromKeys, groupId } from '../../src/scheduler/plugins/predicted-latency/scorer.js';

const BS = 4;
const keyer = new BlockKeyer({ blockSize: BS, hashSeed: '42' });
const opts = { model: 'm', lora: null, cacheSalt: null };

function rng(seed: number): () => number {
  return () => {
    seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    return seed;
  };
}

test('the prefix group from block keys partitions prompts exactly as the FNV of their first half', () => {
  const next = rng(7);
  // Prompts of 12 groups' shared prefixes (1-6 blocks) followed by random tokens, of mixed lengths.
  const prefixes = Array.from({ length: 12 }, () => Uint32Array.from({ length: (1 + (next() % 6)) * BS }, () => next() % 1000));
  const prompts: Uint32Array[] = [];
  for (let i = 0; i < 600; i++) {
    const p = prefixes[next() % prefixes.length];
    const t = new Uint32Array(p.length + (next() % (3 * BS)) + (i % 3 === 0 ? p.length : 0));
    t.set(p);
    for (let j = p.length; j < t.length; j++) t[j] = next() % 1000;
    prompts.push(t);
  }
  prompts.push(new Uint32Array(0), Uint32Array.of(1), Uint32Array.of(1, 2, 3, 4, 5, 6, 7));
  const byKeys = prompts.map((t) => groupFromKeys(keyer.keys(t, opts), t.length, BS));
  const byTokens = prompts.map((t) => groupId(t, BS));
  let same = 0;
  for (let a = 0; a < prompts.length; a++) {
    for (let b = a + 1; b < prompts.length; b++) {
      assert.equal(byKeys[a] === byKeys[b], byTokens[a] === byTokens[b], `prompts ${a} and ${b}`);
      if (byKeys[a] === byKeys[b]) same++;
    }
  }
  assert.ok(same > 1000, `prompts share groups (${same} pairs)`);
  // A different model's keys are another group (its cache is another cache).
  const t = prompts[0];
  assert.notEqual(groupFromKeys(keyer.keys(t, { ...opts, model: 'other' }), t.length, BS), byKeys[0]);
});
