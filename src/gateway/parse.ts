// Parses an OpenAI-style request (completions or chat) into the scheduler's InferenceRequest.
// Shared by the HTTP gateway and the Envoy ext-proc picker so both see requests identically.
import { randomUUID } from 'node:crypto';
import type { ApiKind, ChatMessage, InferenceRequest } from '../scheduler/types.js';
import { badRequest, notFound } from './errors.js';

export const REQUEST_ID_HEADER = 'x-request-id';
export const SUBSET_HEADER = 'x-gateway-destination-endpoint-subset';

/** API kind by path suffix (llm-d's parser); undefined for paths the router does not schedule. */
export function apiForPath(path: string): ApiKind | undefined {
  const p = path.split('?')[0].replace(/\/+$/, '');
  if (p.endsWith('/chat/completions')) return 'chat';
  if (p.endsWith('/completions')) return 'completions';
  return undefined;
}

export type HeaderBag = Record<string, string | string[] | undefined>;

/** Lower-cased header names, first value of each. */
export function normalizeHeaders(h: HeaderBag): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v[0] : v;
  }
  return out;
}

export interface ParseOptions {
  /** Resolves a model name: its base model and whether it is a LoRA adapter; null = unknown (404). */
  resolveModel?: (model: string) => { baseModel: string; lora?: string } | null;
  /** Tokenizes lazily; defaults to token-id prompts only. */
  tokenize?: (req: InferenceRequest) => Promise<Uint32Array | null>;
}

/** Rough prompt size in tokens before tokenization (chars/4), for in-flight accounting. */
function estimateTokens(prompt: unknown, messages: ChatMessage[] | undefined): number {
  if (typeof prompt === 'string') return Math.ceil(prompt.length / 4);
  if (Array.isArray(prompt)) {
    if (prompt.length && typeof prompt[0] === 'number') return prompt.length;
    return prompt.reduce<number>((n, p) => n + estimateTokens(p, undefined), 0);
  }
  if (messages) {
    let chars = 0;
    for (const m of messages) chars += typeof m.content === 'string' ? m.content.length : JSON.stringify(m.content ?? '').length;
    return Math.ceil(chars / 4);
  }
  return 0;
}

/** Token ids when the prompt already is token ids (int[] or the first of int[][]). */
export function promptTokenIds(prompt: unknown): Uint32Array | null {
  if (!Array.isArray(prompt) || prompt.length === 0) return null;
  const first = Array.isArray(prompt[0]) ? prompt[0] : prompt;
  if (!first.every((t: unknown) => Number.isInteger(t) && (t as number) >= 0)) return null;
  return Uint32Array.from(first as number[]);
}

function validPrompt(p: unknown): boolean {
  if (typeof p === 'string') return true;
  if (!Array.isArray(p) || p.length === 0) return false;
  if (p.every((x) => typeof x === 'string')) return true;
  if (p.every((x) => Number.isInteger(x))) return true;
  return p.every((x) => Array.isArray(x) && x.every((t) => Number.isInteger(t)));
}

/**
 * Parse path + headers + body bytes. Throws GatewayError 400 (bad JSON, missing model, bad
 * prompt/messages) or 404 (unknown model, when `resolveModel` knows the served models).
 */
export function parseOpenAIRequest(path: string, rawHeaders: HeaderBag, bodyBytes: Uint8Array | string, opts: ParseOptions = {}): InferenceRequest {
  const headers = normalizeHeaders(rawHeaders);
  const api = apiForPath(path);
  if (!api) throw notFound(`no route for ${path}`, 'unknown_path');
  let body: unknown;
  try {
    const text = typeof bodyBytes === 'string' ? bodyBytes : Buffer.from(bodyBytes.buffer, bodyBytes.byteOffset, bodyBytes.byteLength).toString('utf8');
    body = JSON.parse(text);
  } catch (err) {
    throw badRequest(`request body is not valid JSON: ${(err as Error).message}`, 'invalid_json');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('request body must be a JSON object', 'invalid_json');
  const b = body as Record<string, unknown>;
  const model = b.model;
  if (typeof model !== 'string' || model.length === 0) throw badRequest('the "model" field is required', 'missing_model', 'model');

  let prompt: unknown;
  let messages: ChatMessage[] | undefined;
  if (api === 'chat') {
    if (!Array.isArray(b.messages) || b.messages.length === 0) throw badRequest('"messages" must be a non-empty array', 'invalid_messages', 'messages');
    for (const m of b.messages) {
      if (typeof m !== 'object' || m === null || typeof (m as ChatMessage).role !== 'string') {
        throw badRequest('every message needs a string "role"', 'invalid_messages', 'messages');
      }
    }
    messages = b.messages as ChatMessage[];
  } else {
    if (!validPrompt(b.prompt)) {
      throw badRequest('"prompt" must be a string, an array of strings, or token ids', 'invalid_prompt', 'prompt');
    }
    prompt = b.prompt;
  }
  if (b.stream !== undefined && typeof b.stream !== 'boolean') throw badRequest('"stream" must be a boolean', 'invalid_stream', 'stream');
  if (b.cache_salt !== undefined && typeof b.cache_salt !== 'string') throw badRequest('"cache_salt" must be a string', 'invalid_cache_salt', 'cache_salt');

  const resolved = opts.resolveModel ? opts.resolveModel(model) : { baseModel: model };
  if (!resolved) throw notFound(`The model \`${model}\` does not exist.`, 'model_not_found');

  let requestId = headers[REQUEST_ID_HEADER];
  if (!requestId) {
    requestId = randomUUID();
    headers[REQUEST_ID_HEADER] = requestId;
  }
  const subsetHeader = headers[SUBSET_HEADER];
  const subset = subsetHeader !== undefined ? subsetHeader.split(',').map((s) => s.trim()).filter(Boolean) : null;

  const tokenize = opts.tokenize;
  let pending: Promise<Uint32Array | null> | undefined;
  const req: InferenceRequest = {
    requestId,
    model,
    targetModel: model,
    baseModel: resolved.baseModel,
    lora: resolved.lora,
    api,
    path,
    body: b,
    headers,
    stream: b.stream === true,
    cacheSalt: typeof b.cache_salt === 'string' ? b.cache_salt : undefined,
    prompt,
    messages,
    subset,
    estimatedTokens: estimateTokens(prompt, messages),
    getTokens() {
      if (req.tokens) return Promise.resolve(req.tokens);
      pending ??= (async () => {
        const direct = api === 'completions' ? promptTokenIds(prompt) : null;
        const t = direct ?? (tokenize ? await tokenize(req) : null);
        if (t) {
          req.tokens = t;
          req.estimatedTokens = t.length;
        }
        return t;
      })();
      return pending;
    },
  };
  return req;
}
