// The engine step cost model: step = overhead + prefill tokens x per-token + decoding sequences
// x per-sequence. Named profiles hold defaults for a GPU + model; every constant is overridable.

export interface TimingModel {
  /** Fixed cost of one engine step (scheduling, launch, weight reads), ms. */
  stepOverheadMs: number;
  /** Cost per prefill token computed in the step (compute-bound), ms. */
  prefillPerTokenMs: number;
  /** Cost per decoding sequence in the step (KV reads for its context), ms. */
  decodePerSeqMs: number;
}

export interface HardwareProfile {
  description: string;
  timing: TimingModel;
  /** KV cache capacity in tokens (num_gpu_blocks = floor(tokens / block_size) unless set). */
  kvCacheTokens: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number;
}

/*
 * h100-tp2-qwen3-32b: the llm-d precise-prefix benchmark pod (Qwen3-32B, TP2 on 2xH100).
 *  - KV capacity 307,328 tokens per pod: llm-d-kv-cache-manager benchmarking/73-capacity.
 *  - prefill: 2 x 32.8e9 FLOP/token over 2 x 989 TFLOP/s bf16 at ~50 % MFU -> ~0.065 ms/token,
 *    i.e. a 6,000-token cold prompt prefills in ~0.4 s (llm-d reports TTFT p50 ~0.18-0.5 s warm).
 *  - step overhead: reading 32.8 GB of weights per GPU-pair at 3.35 TB/s each ~10 ms, + ~2 ms CPU.
 *  - per decoding sequence: ~7k context x 128 KiB KV/token/GPU at 3.35 TB/s ~0.27 ms.
 *  Check: ~110 running sequences/pod -> ~40 ms decode step + interleaved prefill chunks, near
 *  the 63 ms ITL llm-d measured at 60 QPS.
 *  - max_num_seqs 1024 / max_num_batched_tokens 8192: vLLM's defaults for the OpenAI server on
 *    GPUs with >= 70 GiB (vllm/engine/arg_utils.py, _set_default_args). max_model_len 40960
 *    (Qwen3 config max_position_embeddings).
 * h100-qwen3-0.6b: Qwen3-0.6B on one H100.
 *  - weights 1.2 GB (0.4 ms to read), so the step is dominated by ~3 ms CPU/launch overhead.
 *  - prefill 2 x 0.6e9 FLOP/token at ~300 TFLOP/s effective -> 0.004 ms/token.
 *  - KV 28 layers x 8 heads x 128 x 2 x 2 B = 112 KiB/token; ~66 GB free -> ~575k tokens.
 *  - per decoding sequence ~0.02 ms.
 */
export const PROFILES: Record<string, HardwareProfile> = {
  'h100-tp2-qwen3-32b': {
    description: 'Qwen3-32B, TP2 on 2x H100 80GB (the llm-d precise-prefix benchmark pod)',
    timing: { stepOverheadMs: 12, prefillPerTokenMs: 0.065, decodePerSeqMs: 0.25 },
    kvCacheTokens: 307_328,
    maxNumSeqs: 1024,
    maxNumBatchedTokens: 8192,
    maxModelLen: 40_960,
  },
  'h100-qwen3-0.6b': {
    description: 'Qwen3-0.6B on one H100 80GB',
    timing: { stepOverheadMs: 3, prefillPerTokenMs: 0.004, decodePerSeqMs: 0.02 },
    kvCacheTokens: 575_000,
    maxNumSeqs: 1024,
    maxNumBatchedTokens: 8192,
    maxModelLen: 40_960,
  },
};

export const DEFAULT_PROFILE = 'h100-tp2-qwen3-32b';

/** Model seconds one step takes. */
export function stepSeconds(t: TimingModel, prefillTokens: number, decodeSeqs: number): number {
  return (t.stepOverheadMs + prefillTokens * t.prefillPerTokenMs + decodeSeqs * t.decodePerSeqMs) / 1000;
}
