// The engine step cost model, derived from a roofline of the model on its GPUs:
//   step = overhead (weights read once per step + host work)
//        + prefill tokens x per-token (compute-bound linear layers at a stated MFU)
//        + prefill (token, earlier token) pairs x per-pair (causal attention FLOPs)
//        + decoding sequences x per-sequence (host work per sequence)
//        + tokens of context of the decoding sequences x per-token (their KV read, bandwidth-bound)
// Named profiles hold the derived constants for a GPU + model; every constant is overridable.

export interface TimingModel {
  /** Fixed cost of one engine step (weights read once, host scheduling, launches, all-reduce latency), ms. */
  stepOverheadMs: number;
  /** Cost per prefill token computed in the step (linear layers, compute-bound), ms. */
  prefillPerTokenMs: number;
  /** Fixed cost per decoding sequence in the step, ms (context-independent part). */
  decodePerSeqMs: number;
  /** Per decoding sequence, per token of its context: reading its KV cache, ms. Default 0. */
  kvReadPerTokenMs?: number;
  /** Prefill attention: per (prefill token, earlier token it attends to) pair, ms. Default 0. */
  prefillAttnPerPairMs?: number;
}

export interface HardwareProfile {
  description: string;
  timing: TimingModel;
  /** KV cache capacity in tokens (num_gpu_blocks = floor(tokens / block_size) unless set). */
  kvCacheTokens: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number;
  /** How `timing` was derived, one line per step (printed in bench reports). */
  derivation?: string[];
}

/** What the roofline needs to know about a model on its GPUs. */
export interface RooflineSpec {
  /** Parameters (all of them, embedding and LM head included). */
  params: number;
  layers: number;
  qHeads: number;
  kvHeads: number;
  headDim: number;
  bytesPerParam: number;
  kvBytesPerElement: number;
  /** Tensor-parallel GPUs per pod (weights, KV heads and FLOPs split across them). */
  tp: number;
  /** Peak HBM bandwidth per GPU, bytes/s. */
  hbmBytesPerSec: number;
  /** Peak dense FLOP/s per GPU at the weights' precision. */
  peakFlops: number;
  /** Fraction of peak HBM bandwidth decode kernels reach (weights GEMMs at small batch, paged attention). */
  bwEfficiency: number;
  /** Model FLOPs utilisation of prefill. */
  mfu: number;
  /** Host work per step not hidden under the GPU's (scheduler, sampler, TP all-reduce latency), ms. */
  hostMsPerStep: number;
  /** Context length at which the per-sequence decode cost is quoted (reporting only). */
  refContextTokens: number;
}

export interface Derivation {
  weightBytesPerGpu: number;
  weightReadMs: number;
  kvBytesPerTokenPerGpu: number;
  kvReadPerTokenMs: number;
  /** KV read of one sequence at refContextTokens, ms. */
  kvReadPerSeqMsAtRef: number;
  prefillFlopsPerTokenPerGpu: number;
  attnFlopsPerPairPerGpu: number;
  timing: TimingModel;
  lines: string[];
}

const round = (x: number, digits: number) => Number(x.toPrecision(digits));

/** The step-cost constants of a model on its GPUs, from first principles. */
export function deriveTiming(s: RooflineSpec): Derivation {
  const bw = s.hbmBytesPerSec * s.bwEfficiency;
  const flops = s.peakFlops * s.mfu;
  // Every decode step streams all of this GPU's weights once (the embedding is a gather, but
  // the LM head is a full read; counting both is within 2.5 %).
  const weightBytesPerGpu = (s.params * s.bytesPerParam) / s.tp;
  const weightReadMs = (weightBytesPerGpu / bw) * 1e3;
  // K and V per layer per KV head; tensor parallelism splits the KV heads.
  const kvBytesPerTokenPerGpu = (s.layers * (s.kvHeads / s.tp) * s.headDim * 2 * s.kvBytesPerElement);
  const kvReadPerTokenMs = (kvBytesPerTokenPerGpu / bw) * 1e3;
  // Linear layers: 2 FLOPs per parameter per token.
  const prefillFlopsPerTokenPerGpu = (2 * s.params) / s.tp;
  // Attention per (query, key) pair: QK^T and AV, 2 FLOPs each per head dimension, every layer.
  const attnFlopsPerPairPerGpu = 4 * s.layers * (s.qHeads / s.tp) * s.headDim;
  const timing: TimingModel = {
    stepOverheadMs: round(weightReadMs + s.hostMsPerStep, 4),
    prefillPerTokenMs: round((prefillFlopsPerTokenPerGpu / flops) * 1e3, 4),
    decodePerSeqMs: 0,
    kvReadPerTokenMs: round(kvReadPerTokenMs, 4),
    prefillAttnPerPairMs: round((attnFlopsPerPairPerGpu / flops) * 1e3, 4),
  };
  const kvReadPerSeqMsAtRef = kvReadPerTokenMs * s.refContextTokens;
  const gb = (b: number) => (b / 1e9).toFixed(2) + ' GB';
  const lines = [
    `weights: ${(s.params / 1e9).toFixed(2)}B params x ${s.bytesPerParam} B / TP${s.tp} = ${gb(weightBytesPerGpu)} read per GPU per step; at ${(s.hbmBytesPerSec / 1e12).toFixed(2)} TB/s x ${s.bwEfficiency} efficiency = ${weightReadMs.toFixed(2)} ms, + ${s.hostMsPerStep} ms host -> step overhead ${timing.stepOverheadMs} ms`,
    `KV: ${s.layers} layers x ${s.kvHeads}/${s.tp} KV heads x ${s.headDim} x 2 (K,V) x ${s.kvBytesPerElement} B = ${kvBytesPerTokenPerGpu.toLocaleString('en-US')} B per token per GPU -> ${timing.kvReadPerTokenMs} ms per context token per decoding sequence (${kvReadPerSeqMsAtRef.toFixed(3)} ms per sequence at ${s.refContextTokens.toLocaleString('en-US')} tokens)`,
    `prefill: 2 x ${(s.params / 1e9).toFixed(2)}e9 FLOP / TP${s.tp} per token at ${(s.peakFlops / 1e12).toFixed(0)} TFLOP/s x ${s.mfu} MFU = ${timing.prefillPerTokenMs} ms per token; attention 4 x ${s.layers} x ${s.qHeads / s.tp} x ${s.headDim} FLOP per (token, earlier token) = ${timing.prefillAttnPerPairMs} ms per pair`,
  ];
  return { weightBytesPerGpu, weightReadMs, kvBytesPerTokenPerGpu, kvReadPerTokenMs, kvReadPerSeqMsAtRef, prefillFlopsPerTokenPerGpu, attnFlopsPerPairPerGpu, timing, lines };
}

/*
 * h100-tp2-qwen3-32b: the llm-d 73-capacity pod (Qwen3-32B bf16, TP2 on 2x H100 SXM 80GB).
 *  - Model shape from Qwen/Qwen3-32B config.json: 64 layers, 64 query heads, 8 KV heads, head_dim
 *    128, hidden 5,120, intermediate 25,600, vocab 151,936, untied embeddings -> 32.76e9 params.
 *  - H100 SXM: 3.35 TB/s HBM3, 989 TFLOP/s dense bf16 (NVIDIA H100 datasheet).
 *  - bwEfficiency 0.6: decode kernels (small-batch GEMMs, paged attention over 64-token blocks)
 *    reach ~60-80 % of peak HBM bandwidth; the low end, i.e. ~16 ms to stream 32.8 GB.
 *  - MFU 0.5 for chunked prefill; host 2 ms per step (scheduler, sampler, 128 TP all-reduces).
 *  - KV capacity 307,328 tokens per pod: llm-d/llm-d-kv-cache benchmarking/73-capacity/README.md.
 *  - max_num_seqs 1024 / max_num_batched_tokens 8192: vLLM's defaults for the OpenAI server on
 *    GPUs with >= 70 GiB (vllm/engine/arg_utils.py, _set_default_args). max_model_len 40,960
 *    (Qwen3 config max_position_embeddings); 131,072 with YaRN (Qwen3-32B model card).
 *  Check (LLMD_73_PUBLISHED, calibrationCheck below; printed in every bench report).
 * h100-qwen3-0.6b: Qwen3-0.6B on one H100: weights 1.2 GB (0.4 ms to read), so the step is
 *  dominated by ~3 ms CPU/launch overhead; prefill 2 x 0.6e9 FLOP/token at ~300 TFLOP/s effective
 *  -> 0.004 ms/token; KV 28 layers x 8 heads x 128 x 2 x 2 B = 112 KiB/token, ~575k tokens;
 *  ~0.02 ms per decoding sequence.
 */
export const QWEN3_32B_TP2_H100: RooflineSpec = {
  params: 32.76e9,
  layers: 64,
  qHeads: 64,
  kvHeads: 8,
  headDim: 128,
  bytesPerParam: 2,
  kvBytesPerElement: 2,
  tp: 2,
  hbmBytesPerSec: 3.35e12,
  peakFlops: 989e12,
  bwEfficiency: 0.6,
  mfu: 0.5,
  hostMsPerStep: 2,
  refContextTokens: 7_700,
};

const QWEN3_32B = deriveTiming(QWEN3_32B_TP2_H100);

export const PROFILES: Record<string, HardwareProfile> = {
  'h100-tp2-qwen3-32b': {
    description: 'Qwen3-32B, TP2 on 2x H100 80GB (the llm-d precise-prefix benchmark pod)',
    timing: QWEN3_32B.timing,
    kvCacheTokens: 307_328,
    maxNumSeqs: 1024,
    maxNumBatchedTokens: 8192,
    maxModelLen: 40_960,
    derivation: QWEN3_32B.lines,
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

/** What one engine step computes. */
export interface StepWork {
  prefillTokens: number;
  /** Sum over prefill chunks of (chunk tokens x mean earlier tokens each attends to). */
  prefillAttnPairs?: number;
  decodeSeqs: number;
  /** Sum of the decoding sequences' context lengths (tokens whose KV they read). */
  decodeContextTokens?: number;
}

/** Model seconds one step takes. */
export function stepSeconds(t: TimingModel, prefillTokens: number, decodeSeqs: number, decodeContextTokens = 0, prefillAttnPairs = 0): number {
  return (
    (t.stepOverheadMs +
      prefillTokens * t.prefillPerTokenMs +
      prefillAttnPairs * (t.prefillAttnPerPairMs ?? 0) +
      decodeSeqs * t.decodePerSeqMs +
      decodeContextTokens * (t.kvReadPerTokenMs ?? 0)) /
    1000
  );
}

/** llm-d's published precise run on 73-capacity, the check the time model is held to. */
export const LLMD_73_PUBLISHED = {
  source: 'llm-d/llm-d-kv-cache benchmarking/73-capacity/README.md (September 2025; llm-d.ai blog 2025-09-24)',
  pods: 8,
  outputTokPerSec: 8_730,
  /** ITL p90 range over the ladder's stages, ms. */
  itlP90Ms: [61, 95] as [number, number],
  promptTokens: 7_200,
  outputTokens: 1_000,
  /** Tokens computed per request when the group's 6,000-token system prompt is cached. */
  uncachedTokens: 1_200,
};

export interface CalibrationCheck {
  /** ms per output token per running sequence, prefill of its request amortised over its output. */
  perSeqMs: number;
  /** Model ITL at the published throughput (Little's law: running = throughput x ITL). */
  itlAtPublishedMs: number;
  /** Model throughput at the middle of the published ITL range. */
  tokPerSecAtPublishedItl: number;
  /** Deviations from the published figures (itl: from the nearest end of the range). */
  throughputDeviation: number;
  itlDeviation: number;
  within20: boolean;
  lines: string[];
}

/**
 * Steady state of one pod decoding N sequences of the llm-d-73 shape: a step takes
 * T = overhead + N x (per-seq decode + prefill of one request / output tokens), because a request
 * arrives for each one that finishes (N / output steps) and its prefill shares the steps.
 */
export function calibrationCheck(t: TimingModel, pub = LLMD_73_PUBLISHED): CalibrationCheck {
  const meanContext = pub.promptTokens + pub.outputTokens / 2;
  const cachedBefore = pub.promptTokens - pub.uncachedTokens;
  const prefillMs =
    pub.uncachedTokens * t.prefillPerTokenMs + pub.uncachedTokens * (cachedBefore + pub.uncachedTokens / 2) * (t.prefillAttnPerPairMs ?? 0);
  const perSeqMs = t.decodePerSeqMs + meanContext * (t.kvReadPerTokenMs ?? 0) + prefillMs / pub.outputTokens;
  const perPodTokPerMs = pub.outputTokPerSec / pub.pods / 1000;
  const denom = 1 - perPodTokPerMs * perSeqMs;
  const itlAtPublishedMs = denom > 0 ? t.stepOverheadMs / denom : Infinity;
  const itlMid = (pub.itlP90Ms[0] + pub.itlP90Ms[1]) / 2;
  const running = Math.max(0, (itlMid - t.stepOverheadMs) / perSeqMs);
  const tokPerSecAtPublishedItl = (running / itlMid) * 1000 * pub.pods;
  const throughputDeviation = tokPerSecAtPublishedItl / pub.outputTokPerSec - 1;
  const [lo, hi] = pub.itlP90Ms;
  const itlDeviation = itlAtPublishedMs < lo ? itlAtPublishedMs / lo - 1 : itlAtPublishedMs > hi ? itlAtPublishedMs / hi - 1 : 0;
  const within20 = Math.abs(throughputDeviation) <= 0.2 && Math.abs(itlDeviation) <= 0.2;
  const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)} %`;
  const lines = [
    `steady state per pod: step = ${t.stepOverheadMs} ms + N x ${perSeqMs.toFixed(3)} ms (KV read at ${meanContext.toLocaleString('en-US')} tokens of context + a ${pub.uncachedTokens.toLocaleString('en-US')}-token prefill spread over ${pub.outputTokens.toLocaleString('en-US')} output tokens)`,
    `at llm-d's ${pub.outputTokPerSec.toLocaleString('en-US')} output tok/s over ${pub.pods} pods the model's ITL is ${itlAtPublishedMs.toFixed(1)} ms (published p90 ${lo}-${hi} ms: ${itlDeviation === 0 ? 'inside' : pct(itlDeviation)})`,
    `at ITL ${itlMid} ms (middle of that range) the model delivers ${Math.round(tokPerSecAtPublishedItl).toLocaleString('en-US')} output tok/s (${pct(throughputDeviation)} vs ${pub.outputTokPerSec.toLocaleString('en-US')}); within 20 %: ${within20 ? 'yes' : 'NO'}`,
    `published: ${pub.source}`,
  ];
  return { perSeqMs, itlAtPublishedMs, tokPerSecAtPublishedItl, throughputDeviation, itlDeviation, within20, lines };
}
