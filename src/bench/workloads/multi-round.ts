// Multi-round chat (vLLM production-stack `multi-round-qa`): U users, each with R rounds.
// Every prompt = shared system prompt + the user's own history (previous questions and answers)
// + the new question, so each user's context grows round by round.
import { hashSeed, joinTokens, randomTokens } from '../rng.js';
import type { BenchRequest, Workload } from './types.js';

export interface MultiRoundParams {
  numUsers: number;
  numRounds: number;
  /** Tokens of the system prompt shared by every user. */
  sharedSystemPromptLen: number;
  /** Tokens of per-user context placed before the first question (e.g. a document). */
  userHistoryPromptLen: number;
  questionLen: number;
  answerLen: number;
  seed: number;
}

export const MULTI_ROUND_DEFAULTS: Omit<MultiRoundParams, 'seed'> = {
  numUsers: 10,
  numRounds: 5,
  sharedSystemPromptLen: 1000,
  userHistoryPromptLen: 2000,
  questionLen: 50,
  answerLen: 100,
};

/**
 * Order: round-major (every user's round r before any round r+1), so users interleave as in
 * production-stack's benchmark; round r+1 of a user waits for its round r to finish. After the
 * last round, the user is replaced by a new user with fresh history (same shared system prompt).
 */
export function multiRoundWorkload(p: MultiRoundParams): Workload {
  for (const k of ['numUsers', 'numRounds', 'questionLen', 'answerLen'] as const) {
    if (!Number.isInteger(p[k]) || p[k] < 1) throw new Error(`multi_round: ${k} must be a positive integer (got ${p[k]})`);
  }
  const system = randomTokens(hashSeed(p.seed, 'shared-sys'), p.sharedSystemPromptLen);
  const take = (count: number): BenchRequest[] => {
    const out: BenchRequest[] = [];
    const state = new Map<number, { tokens: Uint32Array; lastId: number }>();
    for (let id = 0; id < count; id++) {
      const u = id % p.numUsers;
      const slot = Math.floor(id / p.numUsers);
      const generation = Math.floor(slot / p.numRounds); // which user occupies seat u
      const round = slot % p.numRounds;
      const user = `u${u}.${generation}`;
      const prev = round === 0 ? undefined : state.get(u);
      const base = prev
        ? joinTokens(prev.tokens, randomTokens(hashSeed(p.seed, 'ans', user, round - 1), p.answerLen))
        : joinTokens(system, randomTokens(hashSeed(p.seed, 'hist', user), p.userHistoryPromptLen));
      const prompt = joinTokens(base, randomTokens(hashSeed(p.seed, 'q', user, round), p.questionLen));
      out.push({ id, prompt, maxTokens: p.answerLen, group: user, after: prev?.lastId });
      state.set(u, { tokens: prompt, lastId: id });
    }
    return out;
  };
  return { kind: 'multi_round', params: { ...p }, take };
}
