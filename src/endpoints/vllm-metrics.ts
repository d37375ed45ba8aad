// Maps a scraped /metrics page onto the scheduler's EndpointMetrics (llm-d's
// core-metrics-extractor): vLLM names by default, SGLang names as an alternative.
import type { EndpointMetrics } from '../scheduler/types.js';
import { parsePrometheusText, type Sample } from './prom-text.js';

const NAMES = new Set([
  'vllm:num_requests_waiting',
  'vllm:num_requests_running',
  'vllm:kv_cache_usage_perc',
  'vllm:gpu_cache_usage_perc',
  'vllm:cache_config_info',
  'vllm:lora_requests_info',
  'sglang:num_queue_reqs',
  'sglang:num_running_reqs',
  'sglang:token_usage',
]);

export function emptyMetrics(): EndpointMetrics {
  return { waiting: 0, running: 0, kvUsage: 0, runningLoras: [], waitingLoras: [], maxLora: 0, updatedAt: 0 };
}

function splitList(s: string | undefined): string[] {
  return s ? s.split(',').map((x) => x.trim()).filter(Boolean) : [];
}

/**
 * Updates `into` from a metrics page. Sums across series of one gauge (several `engine`
 * labels, i.e. data-parallel ranks behind one server). Returns false when the page holds
 * none of the load gauges (not a vLLM/SGLang server).
 */
export function applyMetricsPage(text: string, into: EndpointMetrics, now = Date.now()): boolean {
  const { samples } = parsePrometheusText(text, NAMES);
  let waiting = 0;
  let running = 0;
  let kv = -1;
  let kvSeries = 0;
  let kvSum = 0;
  let found = false;
  let lora: Sample | undefined;
  for (const s of samples) {
    switch (s.name) {
      case 'vllm:num_requests_waiting':
      case 'sglang:num_queue_reqs':
        waiting += s.value;
        found = true;
        break;
      case 'vllm:num_requests_running':
      case 'sglang:num_running_reqs':
        running += s.value;
        found = true;
        break;
      case 'vllm:kv_cache_usage_perc':
      case 'vllm:gpu_cache_usage_perc':
      case 'sglang:token_usage':
        kvSum += s.value;
        kvSeries++;
        found = true;
        break;
      case 'vllm:cache_config_info': {
        const bs = Number(s.labels.block_size);
        if (bs > 0) into.blockSize = bs;
        const nb = Number(s.labels.num_gpu_blocks);
        if (nb > 0) into.numGpuBlocks = nb;
        break;
      }
      case 'vllm:lora_requests_info':
        if (!lora || s.value > lora.value) lora = s;
        break;
    }
  }
  if (!found) return false;
  if (kvSeries > 0) kv = kvSum / kvSeries;
  into.waiting = waiting;
  into.running = running;
  if (kv >= 0) into.kvUsage = kv;
  if (lora) {
    into.runningLoras = splitList(lora.labels.running_lora_adapters);
    into.waitingLoras = splitList(lora.labels.waiting_lora_adapters);
    into.maxLora = Number(lora.labels.max_lora) || 0;
  }
  into.updatedAt = now;
  return true;
}
