// Minimal Prometheus text-format reader for the pod counters the benchmark needs.
import { request } from 'undici';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let lm: RegExpExecArray | null;
      while ((lm = re.exec(m[3]))) labels[lm[1]] = lm[2].replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
    }
    const v = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    out.push({ name: m[1], labels, value: v });
  }
  return out;
}

/** Sum of every series of a metric (counters may be split by label). */
export function sumMetric(samples: Sample[], ...names: string[]): number {
  for (const n of names) {
    const hit = samples.filter((s) => s.name === n);
    if (hit.length) return hit.reduce((a, s) => a + s.value, 0);
  }
  return 0;
}

/** The counters we diff per stage, from one pod. */
export interface PodCounters {
  prefixQueries: number;
  prefixHits: number;
  promptTokens: number;
  generationTokens: number;
  requests: number;
  preemptions: number;
}

export function podCounters(samples: Sample[]): PodCounters {
  return {
    prefixQueries: sumMetric(samples, 'vllm:prefix_cache_queries_total', 'vllm:prefix_cache_queries', 'vllm:gpu_prefix_cache_queries_total'),
    prefixHits: sumMetric(samples, 'vllm:prefix_cache_hits_total', 'vllm:prefix_cache_hits', 'vllm:gpu_prefix_cache_hits_total'),
    promptTokens: sumMetric(samples, 'vllm:prompt_tokens_total', 'vllm:prompt_tokens'),
    generationTokens: sumMetric(samples, 'vllm:generation_tokens_total', 'vllm:generation_tokens'),
    requests: sumMetric(samples, 'vllm:request_success_total', 'vllm:request_success'),
    preemptions: sumMetric(samples, 'vllm:num_preemptions_total', 'vllm:num_preemptions'),
  };
}

export function diffCounters(after: PodCounters, before: PodCounters): PodCounters {
  const d = {} as PodCounters;
  // A counter below its earlier value was reset (the pod restarted): Prometheus counts from 0.
  for (const k of Object.keys(after) as (keyof PodCounters)[]) d[k] = after[k] >= before[k] ? after[k] - before[k] : after[k];
  return d;
}

export async function scrapePod(url: string): Promise<PodCounters> {
  const r = await request(`${url}/metrics`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`GET ${url}/metrics: HTTP ${r.statusCode}`);
  return podCounters(parsePrometheus(text));
}
