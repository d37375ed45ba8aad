// Parses an OpenAI-style request (completions or chat) into the scheduler's InferenceRequest.
// Shared by the HTTP gateway and the Envoy ext-proc picker so both see requests identically.
import { randomUUID } from 'node:crypto';
import type { ApiKind, ChatMessage, InferenceRequest } from '../scheduler/types.js';
import { ContextLengthError, TokenizeAbortedError } from '../tokenize/types.js';
import { badRequest, clientClosed, notFound } from './errors.js';
import { decodeJsonBody, parseJsonBody } from './json-body.js';
import { promptUnits, RequestLimits } from './request-limits.js';

export const REQUEST_ID_HEADER = 'x-request-id';
export const SUBSET_HEADER = 'x-gateway-destination-endpoint-subset';

/** API kind by path suffix (llm-d's parser); undefined for paths the router does not schedule. */
export function apiForPath(path: string): ApiKind | undefined {
  // The two paths the gateway routes, without the split and regex below (every request pays them).
  if (path === '/v1/chat/completions') return 'chat';
  if (path === '/v1/completions') return 'completions';
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

/** What the tokenizer gets besides the request: the client's abort signal and the model's token cap. */
export interface TokenizeContext {
  signal?: AbortSignal;
  maxTokens?: number;
}

export interface ParseOptions {
  /** Resolves a model name: its base model and whether it is a LoRA adapter; null = unknown (404). */
  resolveModel?: (model: string) => { baseModel: string; lora?: string } | null;
  /**
   * Tokenizes lazily; defaults to token-id prompts only. May throw TokenizeAbortedError (the
   * signal aborted) or ContextLengthError (provably over ctx.maxTokens); null = no tokenizer.
   */
  tokenize?: (req: InferenceRequest, ctx: TokenizeContext) => Promise<Uint32Array | null>;
  /** Message count, prompt size and token caps (request-limits.ts); default: the documented defaults. */
  limits?: RequestLimits;
}

/** Token ids when the prompt already is token ids (int[] or the first of int[][]). */
export function promptTokenIds(prompt: unknown): Uint32Array | null {
  if (!Array.isArray(prompt) || prompt.length === 0) return null;
  const first = Array.isArray(prompt[0]) ? prompt[0] : prompt;
  if (!first.every((t: unknown) => Number.isInteger(t) && (t as number) >= 0)) return null;
  return Uint32Array.from(first as number[]);
}

export { clientClosed };

const defaultLimits = new RequestLimits();

/**
 * Shape and size of a completions prompt, in O(number of prompts) plus O(prompt units) for
 * string batches: string, string[], or token ids (int[] / int[][], packed into Uint32Arrays and
 * checked by the body parser, json-body.ts). Returns the prompt units; throws 400 (shape, context) or 413.
 */
function checkPrompt(p: unknown, limits: RequestLimits, model: string): number {
  const bad = () => badRequest('"prompt" must be a string, an array of strings, or token ids', 'invalid_prompt', 'prompt');
  if (typeof p === 'string') {
    limits.checkPromptUnits(p.length, 'prompt');
    return p.length;
  }
  if (p instanceof Uint32Array) {
    // Token ids packed by the body parser (json-body.ts), each already a valid id.
    limits.checkTokens(model, p.length, 'prompt');
    limits.checkPromptUnits(p.length, 'prompt');
    return p.length;
  }
  if (!Array.isArray(p) || p.length === 0) throw bad();
  let units = 0;
  if (typeof p[0] === 'number') {
    limits.checkTokens(model, p.length, 'prompt');
    units = p.length;
  } else if (typeof p[0] === 'string') {
    limits.checkPromptUnits(p.length, 'prompt');
    for (const x of p) {
      if (typeof x !== 'string') throw bad();
      units += x.length + 1;
      if (units > limits.maxPromptChars) break;
    }
  } else {
    limits.checkPromptUnits(p.length, 'prompt');
    for (const x of p) {
      if (!(Array.isArray(x) || x instanceof Uint32Array) || typeof x[0] !== 'number') throw bad();
      limits.checkTokens(model, x.length, 'prompt');
      units += x.length;
      if (units > limits.maxPromptChars) break;
    }
  }
  limits.checkPromptUnits(units, 'prompt');
  return units;
}

/**
 * Parse path + headers + body bytes. Throws GatewayError 400 (bad JSON, missing model, bad
 * prompt/messages, token ids over the model's context), 413 (over a request limit) or 404
 * (unknown model, when `resolveModel` knows the served models). Every check is bounded by the
 * request limits (no rendering, tokenizing or O(body) walks beyond them). `signal` aborts the
 * request's tokenization (the client went away).
 */
export function parseOpenAIRequest(path: string, rawHeaders: HeaderBag, bodyBytes: Uint8Array | string, opts: ParseOptions = {}, signal?: AbortSignal): InferenceRequest {
  const api = routeOf(path);
  const limits = opts.limits ?? defaultLimits;
  let body: unknown;
  try {
    body = decodeJsonBody({ bytes: bodyBytes, ...limits.bodyCaps, packPrompt: true }).result;
  } catch (err) {
    throw limits.counted(err);
  }
  return requestFromBody(path, api, rawHeaders, body, opts, signal);
}

/**
 * parseOpenAIRequest that parses a large body in a worker thread (json-body.ts), so no request
 * holds the event loop for its JSON. Also 499 when `signal` aborts during the parse.
 */
export async function parseOpenAIRequestAsync(path: string, rawHeaders: HeaderBag, bodyBytes: Uint8Array | string, opts: ParseOptions = {}, signal?: AbortSignal): Promise<InferenceRequest> {
  const api = routeOf(path);
  const limits = opts.limits ?? defaultLimits;
  let body: unknown;
  try {
    body = await parseJsonBody(bodyBytes, limits.bodyCaps, true, signal);
  } catch (err) {
    throw limits.counted(err);
  }
  return requestFromBody(path, api, rawHeaders, body, opts, signal);
}

function routeOf(path: string): ApiKind {
  const api = apiForPath(path);
  if (!api) throw notFound(`no route for ${path}`, 'unknown_path');
  return api;
}

function requestFromBody(path: string, api: ApiKind, rawHeaders: HeaderBag, body: unknown, opts: ParseOptions, signal: AbortSignal | undefined): InferenceRequest {
  const headers = normalizeHeaders(rawHeaders);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('request body must be a JSON object', 'invalid_json');
  const b = body as Record<string, unknown>;
  const model = b.model;
  if (typeof model !== 'string' || model.length === 0) throw badRequest('the "model" field is required', 'missing_model', 'model');

  const limits = opts.limits ?? defaultLimits;
  let prompt: unknown;
  let messages: ChatMessage[] | undefined;
  let units: number;
  if (api === 'chat') {
    if (!Array.isArray(b.messages) || b.messages.length === 0) throw badRequest('"messages" must be a non-empty array', 'invalid_messages', 'messages');
    limits.checkMessageCount(b.messages);
    for (const m of b.messages) {
      if (typeof m !== 'object' || m === null || typeof (m as ChatMessage).role !== 'string') {
        throw badRequest('every message needs a string "role"', 'invalid_messages', 'messages');
      }
    }
    // Everything the chat template reads: the messages, tools and template arguments.
    units = promptUnits([b.messages, b.tools, b.chat_template_kwargs], limits.maxPromptChars);
    limits.checkPromptUnits(units, 'messages');
    messages = b.messages as ChatMessage[];
  } else {
    units = checkPrompt(b.prompt, limits, model);
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
  const param = api === 'chat' ? 'messages' : 'prompt';
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
    // Rough prompt size in tokens before tokenization (ids, or characters / 4), for in-flight accounting.
    estimatedTokens: prompt instanceof Uint32Array || (Array.isArray(prompt) && typeof prompt[0] !== 'string') ? units : Math.ceil(units / 4),
    getTokens() {
      if (req.tokens) return Promise.resolve(req.tokens);
      pending ??= (async () => {
        if (signal?.aborted) throw clientClosed();
        let t: Uint32Array | null;
        // Token ids were validated and packed with the body (json-body.ts).
        if (prompt instanceof Uint32Array) t = prompt;
        else if (Array.isArray(prompt) && prompt[0] instanceof Uint32Array) t = prompt[0] as Uint32Array;
        else if (!tokenize) t = null;
        else {
          try {
            t = await tokenize(req, { signal, maxTokens: limits.maxTokens(req.targetModel) });
          } catch (err) {
            if (err instanceof TokenizeAbortedError) throw clientClosed();
            if (err instanceof ContextLengthError) throw limits.contextExceeded(err.maxTokens, err.atLeast, param, true);
            throw err;
          }
        }
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
