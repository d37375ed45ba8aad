// inference-perf `shared_prefix`: G groups, each a system prompt shared by P prompts that
// append their own question. Optional multi-turn: a group's prompts become the turns of one
// chat, each turn carrying the whole history before it (kubernetes-sigs/inference-perf, shared_prefix data generator).
import { Rng, hashSeed, joinTokens, randomTokensInto } from '../rng.js';
import type { BenchRequest, Workload } from './types.js';

export interface SharedPrefixParams {
  numGroups: number;
  promptsPerGroup: number;
  systemPromptLen: number;
  questionLen: number;
  outputLen: number;
  /** A group's prompts are turns of one conversation (each turn waits for the previous). */
  multiTurn?: boolean;
  /**
   * Single-turn prompt order: `random` draws uniformly from the pool (default); `cyclic` walks the
   * pool shuffled once, over and over; `stage-cyclic` walks it the same way but from the first
   * prompt again at every stage, as inference-perf does: its load generator numbers each stage's
   * requests from 0 and its shared_prefix generator serves request n the prompt n mod pool size
   * (kubernetes-sigs/inference-perf, loadgen/load_generator.py run_stage and
   * datagen/shared_prefix_datagen.py get_request, September 2025).
   */
  order?: SharedPrefixOrder;
  seed: number;
}

export type SharedPrefixOrder = 'random' | 'cyclic' | 'stage-cyclic';
export const SHARED_PREFIX_ORDERS: readonly SharedPrefixOrder[] = ['random', 'cyclic', 'stage-cyclic'];

export const SHARED_PREFIX_DEFAULTS: Omit<SharedPrefixParams, 'seed'> = {
  numGroups: 10,
  promptsPerGroup: 10,
  systemPromptLen: 100,
  questionLen: 50,
  outputLen: 50,
};

/**
 * Prompt selection: single-turn requests pick a prompt uniformly at random from the G x P pool
 * (seeded), so prompts repeat across stages as in a long benchmark against a fixed pool.
 * Multi-turn requests walk conversations in order: turn t of every group before turn t+1;
 * after the last turn a conversation restarts (a fresh user with the same system prompt).
 */
export function sharedPrefixWorkload(p: SharedPrefixParams): Workload {
  for (const k of ['numGroups', 'promptsPerGroup', 'systemPromptLen', 'outputLen'] as const) {
    if (!Number.isInteger(p[k]) || p[k] < 1) throw new Error(`shared_prefix: ${k} must be a positive integer (got ${p[k]})`);
  }
  if (!Number.isInteger(p.questionLen) || p.questionLen < 0) throw new Error(`shared_prefix: questionLen must be >= 0`);
  if (p.order !== undefined && !SHARED_PREFIX_ORDERS.includes(p.order)) throw new Error(`shared_prefix: order must be ${SHARED_PREFIX_ORDERS.join(', ')} (got ${String(p.order)})`);
  const tokens = (n: number, ...seed: (string | number)[]) => {
    const out = new Uint32Array(n);
    randomTokensInto(hashSeed(p.seed, ...seed), n, out, 0);
    return out;
  };
  const systems = Array.from({ length: p.numGroups }, (_, g) => tokens(p.systemPromptLen, 'sys', g));
  // A question's ids, drawn into `out` at `at` (the pool writes them in place after the system prompt).
  const questionInto = (g: number, i: number, round: number, out: Uint32Array, at: number) => randomTokensInto(hashSeed(p.seed, 'q', g, i, round), p.questionLen, out, at);
  const questions = (g: number, i: number, round = 0) => {
    const out = new Uint32Array(p.questionLen);
    questionInto(g, i, round, out, 0);
    return out;
  };
  // Synthetic assistant answers carried in multi-turn history. The engine caches its own
  // generated tokens, which differ, so only the prompt side of history can hit (as with a
  // real client that re-sends a paraphrased or truncated history).
  const answers = (g: number, i: number, round: number) => tokens(p.outputLen, 'a', g, i, round);

  // Each pool prompt is written once into its own array: the system prompt, then the question
  // drawn straight into place (the ids randomTokens would give, without an intermediate array).
  const pool: Uint32Array[] = [];
  for (let g = 0; g < p.numGroups; g++) {
    for (let i = 0; i < p.promptsPerGroup; i++) {
      const prompt = new Uint32Array(p.systemPromptLen + p.questionLen);
      prompt.set(systems[g]);
      questionInto(g, i, 0, prompt, p.systemPromptLen);
      pool.push(prompt);
    }
  }

  const take = (count: number, stagePositions?: readonly number[]): BenchRequest[] => {
    const out: BenchRequest[] = [];
    if (!p.multiTurn) {
      const rng = new Rng(hashSeed(p.seed, 'order'));
      const cyclic = p.order === 'cyclic' || p.order === 'stage-cyclic';
      const cycle = cyclic ? rng.shuffle(pool.map((_x, k) => k)) : null;
      const position = (id: number) => (p.order === 'stage-cyclic' ? (stagePositions?.[id] ?? id) : id);
      for (let id = 0; id < count; id++) {
        const k = cycle ? cycle[position(id) % cycle.length] : rng.int(0, pool.length);
        out.push({ id, prompt: pool[k], maxTokens: p.outputLen, group: `g${Math.floor(k / p.promptsPerGroup)}` });
      }
      return out;
    }
    // Multi-turn: conversation c = (group g, round r); turn t depends on turn t-1 of it.
    const history = new Map<string, { tokens: Uint32Array; lastId: number }>();
    for (let id = 0; id < count; id++) {
      const slot = Math.floor(id / p.numGroups); // how many turns have been issued per group so far
      const g = id % p.numGroups;
      const round = Math.floor(slot / p.promptsPerGroup);
      const turn = slot % p.promptsPerGroup;
      const key = `${g}/${round}`;
      const prev = turn === 0 ? undefined : history.get(key);
      const base = prev ? joinTokens(prev.tokens, answers(g, turn - 1, round)) : systems[g];
      const prompt = joinTokens(base, questions(g, turn, round));
      out.push({ id, prompt, maxTokens: p.outputLen, group: `g${g}`, after: prev?.lastId });
      history.set(key, { tokens: prompt, lastId: id });
      if (turn === p.promptsPerGroup - 1) history.delete(key);
    }
    return out;
  };

  return { kind: 'shared_prefix', params: { ...p }, take };
}
