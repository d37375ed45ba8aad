import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedPrefixWorkload } from '../../src/bench/workloads/shared-prefix.js';
import { multiRoundWorkload } from '../../src/bench/workloads/multi-round.js';
import { parseTrace, traceWorkload } from '../../src/bench/workloads/trace.js';
import { Rng } from '../../src/bench/rng.js';

const sp = { numGroups: 3, promptsPerGroup: 4, systemPromptLen: 40, questionLen: 10, outputLen: 5, seed: 7 };

test('rng: same seed same stream, different seed different stream', () => {
  const a = new Rng(1), b = new Rng(1), c = new Rng(2);
  const xa = Array.from({ length: 20 }, () => a.u32());
  assert.deepEqual(xa, Array.from({ length: 20 }, () => b.u32()));
  assert.notDeepEqual(xa, Array.from({ length: 20 }, () => c.u32()));
  for (const x of xa) assert.ok(x >= 0 && x < 2 ** 32 && Number.isInteger(x));
});

test('shared_prefix: deterministic per seed, shape as configured', () => {
  const a = sharedPrefixWorkload(sp).take(50);
  const b = sharedPrefixWorkload(sp).take(50);
  assert.deepEqual(a.map((r) => r.prompt), b.map((r) => r.prompt));
  const c = sharedPrefixWorkload({ ...sp, seed: 8 }).take(50);
  assert.notDeepEqual(a.map((r) => r.prompt), c.map((r) => r.prompt));
  for (const r of a) {
    assert.equal(r.prompt.length, 50);
    assert.equal(r.maxTokens, 5);
  }
  // Same group => same 40-token system prompt; different groups => different ones.
  const byGroup = new Map<string, Uint32Array[]>();
  for (const r of a) byGroup.set(r.group, [...(byGroup.get(r.group) ?? []), r.prompt]);
  assert.equal(byGroup.size, 3);
  const sys = [...byGroup.values()].map((ps) => {
    for (const p of ps) assert.deepEqual(p.slice(0, 40), ps[0].slice(0, 40));
    return ps[0].slice(0, 40).join(',');
  });
  assert.equal(new Set(sys).size, 3);
  // At most G x P distinct prompts.
  assert.ok(new Set(a.map((r) => r.prompt.join(','))).size <= 12);
});

test('shared_prefix multi-turn: each turn extends the previous one and waits for it', () => {
  const w = sharedPrefixWorkload({ ...sp, multiTurn: true }).take(3 * 4 + 3);
  const g0 = w.filter((r) => r.group === 'g0');
  assert.equal(g0[0].after, undefined);
  for (let t = 1; t < 4; t++) {
    assert.equal(g0[t].after, g0[t - 1].id);
    assert.deepEqual(g0[t].prompt.slice(0, g0[t - 1].prompt.length), g0[t - 1].prompt);
    assert.equal(g0[t].prompt.length, g0[t - 1].prompt.length + 5 + 10);
  }
  // After the last turn a new conversation restarts from the system prompt.
  assert.equal(g0[4].after, undefined);
  assert.equal(g0[4].prompt.length, 50);
  assert.deepEqual(g0[4].prompt.slice(0, 40), g0[0].prompt.slice(0, 40));
});

test('multi_round: history grows per user, shared system prompt across users', () => {
  const p = { numUsers: 2, numRounds: 3, sharedSystemPromptLen: 20, userHistoryPromptLen: 30, questionLen: 5, answerLen: 7, seed: 1 };
  const w = multiRoundWorkload(p).take(8);
  const u0 = w.filter((r) => r.group === 'u0.0');
  assert.equal(u0.length, 3);
  assert.equal(u0[0].prompt.length, 55);
  assert.equal(u0[1].prompt.length, 55 + 7 + 5);
  assert.deepEqual(u0[1].prompt.slice(0, 55), u0[0].prompt);
  assert.equal(u0[1].after, u0[0].id);
  const u1 = w.filter((r) => r.group === 'u1.0');
  assert.deepEqual(u1[0].prompt.slice(0, 20), u0[0].prompt.slice(0, 20));
  assert.notDeepEqual(u1[0].prompt.slice(20, 50), u0[0].prompt.slice(20, 50));
  // Seat 0's next user starts fresh.
  const next = w.find((r) => r.group === 'u0.1')!;
  assert.equal(next.after, undefined);
  assert.deepEqual(multiRoundWorkload(p).take(8), w);
});

test('trace: shared hash ids share tokens, lengths and times follow the records', () => {
  const text = [
    '{"timestamp": 0, "input_length": 1000, "output_length": 10, "hash_ids": [1, 2]}',
    '{"timestamp": 500, "input_length": 1300, "output_length": 20, "hash_ids": [1, 2, 3]}',
    '{"timestamp": 1000, "input_length": 700, "output_length": 30, "hash_ids": [4, 5]}',
  ].join('\n');
  const w = traceWorkload({ text, seed: 3, speed: 2, maxOutputLen: 25 });
  const r = w.take(10);
  assert.equal(r.length, 3);
  assert.deepEqual(r.map((x) => x.prompt.length), [1000, 1300, 700]);
  assert.deepEqual(r.map((x) => x.at), [0, 0.25, 0.5]);
  assert.deepEqual(r.map((x) => x.maxTokens), [10, 20, 25]);
  assert.deepEqual(r[1].prompt.slice(0, 1000), r[0].prompt);
  assert.notDeepEqual(r[2].prompt.slice(0, 512), r[0].prompt.slice(0, 512));
  assert.deepEqual(traceWorkload({ text, seed: 3 }).take(3).map((x) => x.prompt), r.map((x) => x.prompt));
  assert.throws(() => parseTrace('{"timestamp": 0}\n', 't.jsonl'), /t.jsonl:1: input_length/);
  assert.throws(() => parseTrace('nope', 't.jsonl'), /t.jsonl:1: not JSON/);
});
