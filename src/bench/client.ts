// Streaming OpenAI-completions client for the benchmark: sends token-id prompts, reads the SSE
// stream as it arrives and times it. Wall-clock times are recorded; the runner converts them to
// model time (the simulator runs slowed down by its time scale).
import { Agent, request } from 'undici';
import type { BenchRequest } from './workloads/types.js';

export interface RequestResult {
  id: number;
  stage: number;
  /** Scheduled send time (wall ms since run start) and actual send time. */
  scheduledMs: number;
  sentMs: number;
  ok: boolean;
  status: number;
  /** 429 / 503 from the router: load shed rather than failed. */
  shed: boolean;
  error?: string;
  /** Wall ms from send to the first token-bearing chunk. */
  ttftMs?: number;
  /** Wall ms between consecutive token-bearing chunks. */
  itlMs: number[];
  e2eMs?: number;
  promptTokens: number;
  outputTokens: number;
  cachedTokens?: number;
  /** Endpoint the router reports it chose (response header), when it does. */
  endpoint?: string;
}

/** Response headers a router may use to name the chosen endpoint. */
const ENDPOINT_HEADERS = ['x-kvrouter-endpoint', 'x-gateway-destination-endpoint', 'x-endpoint', 'x-routed-to'];

export class BenchClient {
  private agent: Agent;
  private bodies = new WeakMap<Uint32Array, string>();

  constructor(
    private baseUrl: string,
    private model: string,
    opts: { connections?: number; timeoutMs?: number } = {},
  ) {
    this.agent = new Agent({
      connections: opts.connections ?? 4096,
      pipelining: 0,
      headersTimeout: opts.timeoutMs ?? 600_000,
      bodyTimeout: opts.timeoutMs ?? 600_000,
      keepAliveTimeout: 30_000,
    });
  }

  /** The prompt's JSON (an array of ints) is cached per prompt array: repeated prompts are serialised once. */
  private promptJson(prompt: Uint32Array): string {
    let s = this.bodies.get(prompt);
    if (s === undefined) this.bodies.set(prompt, (s = `[${prompt.join(',')}]`));
    return s;
  }

  async send(req: BenchRequest, stage: number, t0: number, scheduledMs: number, signal?: AbortSignal): Promise<RequestResult> {
    const body =
      `{"model":${JSON.stringify(this.model)},"prompt":${this.promptJson(req.prompt)},` +
      `"max_tokens":${req.maxTokens},"ignore_eos":true,"stream":true,` +
      `"stream_options":{"include_usage":true},"temperature":0}`;
    const sent = performance.now();
    const res: RequestResult = {
      id: req.id, stage, scheduledMs, sentMs: sent - t0, ok: false, status: 0, shed: false,
      itlMs: [], promptTokens: req.prompt.length, outputTokens: 0,
    };
    try {
      const r = await request(`${this.baseUrl}/v1/completions`, {
        method: 'POST', dispatcher: this.agent, body, signal,
        headers: { 'content-type': 'application/json', 'x-request-id': `bench-${req.id}` },
      });
      res.status = r.statusCode;
      for (const h of ENDPOINT_HEADERS) {
        const v = r.headers[h];
        if (typeof v === 'string') { res.endpoint = v.split(',')[0].trim(); break; }
      }
      if (r.statusCode !== 200) {
        const text = await r.body.text();
        res.shed = r.statusCode === 429 || r.statusCode === 503 || r.statusCode === 529;
        res.error = `HTTP ${r.statusCode}: ${text.slice(0, 200)}`;
        return res;
      }
      let buf = '';
      let last = 0;
      let chunkTokens = 0;
      let done = false;
      r.body.setEncoding('utf8');
      for await (const chunk of r.body as AsyncIterable<string>) {
        const now = performance.now();
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n\n')) >= 0) {
          const event = buf.slice(0, nl);
          buf = buf.slice(nl + 2);
          for (const line of event.split('\n')) {
            if (!line.startsWith('data:')) continue;
            const data = line.slice(5).trim();
            if (data === '[DONE]') { done = true; continue; }
            let msg: StreamChunk;
            try { msg = JSON.parse(data) as StreamChunk; } catch { throw new Error(`bad SSE data: ${data.slice(0, 80)}`); }
            if (msg.error) throw new Error(`stream error: ${JSON.stringify(msg.error).slice(0, 200)}`);
            const text = msg.choices?.[0]?.text ?? msg.choices?.[0]?.delta?.content;
            if (msg.choices && msg.choices.length > 0 && text !== undefined && text !== null) {
              chunkTokens++;
              if (res.ttftMs === undefined) res.ttftMs = now - sent;
              else res.itlMs.push(now - last);
              last = now;
            }
            if (msg.usage) {
              res.outputTokens = msg.usage.completion_tokens ?? res.outputTokens;
              if (msg.usage.prompt_tokens) res.promptTokens = msg.usage.prompt_tokens;
              const c = msg.usage.prompt_tokens_details?.cached_tokens;
              if (typeof c === 'number') res.cachedTokens = c;
            }
          }
        }
      }
      if (!done) throw new Error('stream ended without [DONE]');
      if (res.outputTokens === 0) res.outputTokens = chunkTokens;
      res.e2eMs = performance.now() - sent;
      res.ok = true;
    } catch (err) {
      res.error = (err as Error).message;
    }
    return res;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

interface StreamChunk {
  choices?: { text?: string | null; delta?: { content?: string | null } }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } | null };
  error?: unknown;
}
