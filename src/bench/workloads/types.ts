// What a workload hands the runner: a deterministic sequence of token-id prompts.
// Prompts are token ids (vLLM `/v1/completions` accepts `prompt: int[]`), so lengths are exact
// and router, simulator and oracle all see the same tokens without a tokenizer in the loop.

export interface BenchRequest {
  /** Position in the sequence (0-based). */
  id: number;
  /**
   * Prompt token ids (never mutated once built). Requests repeating a prompt share the same
   * array, and the virtual client sends it as is (the router's token ids are a Uint32Array).
   */
  prompt: Uint32Array;
  /** Output tokens to generate (sent as max_tokens with ignore_eos). */
  maxTokens: number;
  /** Prefix group, chat session or trace root: for labelling and per-group analysis. */
  group: string;
  /** Multi-turn: id of the request that must complete before this one is sent. */
  after?: number;
  /** Trace replay: arrival offset in model seconds (replaces the load shape's schedule). */
  at?: number;
}

export interface Workload {
  kind: 'shared_prefix' | 'multi_round' | 'trace';
  /** The parameters that define it (echoed into results). */
  params: Record<string, unknown>;
  /**
   * The first `count` requests of the sequence (finite workloads may return fewer).
   * `stagePositions[id]`, when given, is request id's number within its load stage (inference-perf
   * counts requests per stage; the `stage-cyclic` order restarts the prompt cycle there).
   */
  take(count: number, stagePositions?: readonly number[]): BenchRequest[];
  /** Finite workloads (trace replay) know their length; generated ones return undefined. */
  readonly size?: number;
}
