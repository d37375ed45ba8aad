// Request size limits, checked while parsing (before any rendering or tokenization), so a
// hostile request costs the router a bounded amount of work. Shared by the HTTP gateway and
// the ext-proc picker through ParseOptions. Each refusal is an OpenAI-style error and counts
// in kvrouter_request_limit_rejections_total{reason}.
//
//   message count   413 too_many_messages       this router's own bound on chat length
//   prompt size     413 prompt_too_large        this router's own bound on prompt characters
//   token ids       400 context_length_exceeded the model's context (vLLM refuses it too)
//
// The token cap of a model is the `max_model_len` its endpoints report in /v1/models (vLLM
// reports it per model; an adapter without one uses its base model's), else `maxPromptTokens`.
// Text prompts are held to it before tokenizing by a provable lower bound on their token
// count (src/tokenize/token-bound.ts), checked on the rendered text for chats.
import type { Registry } from 'prom-client';
import { Tally } from '../util/fast-metrics.js';
import type { EndpointPool } from '../endpoints/pool.js';
import { GatewayError, promptTooLarge, tooManyMessages } from './errors.js';

export interface RequestLimitOptions {
  /** Most chat messages in one request (413 beyond). Default 4096. */
  maxMessages?: number;
  /**
   * Largest prompt, in "prompt units" (413 beyond): the characters (UTF-16 code units) of every
   * string in the prompt or in the messages and tools, plus one per JSON value, so a token id
   * or an empty string costs one. Default 4,194,304 (4 Mi: a 1M-token context of English text).
   */
  maxPromptChars?: number;
  /**
   * Token cap of a model whose endpoints report no max_model_len (400 beyond). Default
   * 1,048,576. With `useModelMaxLen` (default true) the reported max_model_len wins.
   */
  maxPromptTokens?: number;
  /** Use the endpoints' max_model_len as the token cap when they report one. Default true. */
  useModelMaxLen?: boolean;
  /**
   * Most JSON values in a request body (413 beyond), a token-id prompt counting one: bounds what a
   * body parsed in the worker thread costs the event loop to receive (json-body.ts). Default 65,536.
   */
  maxJsonValues?: number;
}

export const DEFAULT_REQUEST_LIMITS: Required<RequestLimitOptions> = {
  maxMessages: 4096,
  maxPromptChars: 4_194_304,
  maxPromptTokens: 1_048_576,
  useModelMaxLen: true,
  maxJsonValues: 65_536,
};

export type LimitReason = 'messages' | 'prompt_chars' | 'prompt_tokens' | 'json_values';

const rejectionsByRegistry = new WeakMap<Registry, Tally<'reason'>>();

function rejectionCounter(registry: Registry | undefined): Tally<'reason'> | undefined {
  if (!registry) return undefined;
  let t = rejectionsByRegistry.get(registry);
  if (!t) {
    t = new Tally('kvrouter_request_limit_rejections_total', 'Requests refused by a request limit before rendering or tokenizing, by limit', ['reason'], registry);
    rejectionsByRegistry.set(registry, t);
  }
  return t;
}

/** The largest max_model_len the pool's endpoints report for `model` (or its base model). */
export function poolMaxModelLen(pool: EndpointPool, model: string): number | undefined {
  let best: number | undefined;
  for (const e of pool.all()) {
    const models = e.models;
    if (!models) continue;
    for (const m of models) {
      if (m.id !== model) continue;
      let len = m.maxModelLen;
      if (len === undefined && m.parent !== undefined) len = models.find((p) => p.id === m.parent)?.maxModelLen;
      if (len !== undefined && (best === undefined || len > best)) best = len;
    }
  }
  return best;
}

export class RequestLimits {
  readonly maxMessages: number;
  readonly maxPromptChars: number;
  readonly maxPromptTokens: number;
  readonly maxJsonValues: number;
  private readonly useModelMaxLen: boolean;
  private readonly rejections: Tally<'reason'> | undefined;

  constructor(
    opts: RequestLimitOptions = {},
    private readonly modelMaxLen?: (model: string) => number | undefined,
    registry?: Registry,
  ) {
    const o = { ...DEFAULT_REQUEST_LIMITS };
    for (const k of Object.keys(opts) as (keyof RequestLimitOptions)[]) if (opts[k] !== undefined) (o as Record<string, unknown>)[k] = opts[k];
    for (const k of ['maxMessages', 'maxPromptChars', 'maxPromptTokens', 'maxJsonValues'] as const) {
      if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`request limit ${k} must be a positive integer, got ${String(o[k])}`);
    }
    this.maxMessages = o.maxMessages;
    this.maxPromptChars = o.maxPromptChars;
    this.maxPromptTokens = o.maxPromptTokens;
    this.maxJsonValues = o.maxJsonValues;
    this.useModelMaxLen = o.useModelMaxLen;
    this.rejections = rejectionCounter(registry);
  }

  /** Token cap for `model`: its endpoints' max_model_len, else the configured maxPromptTokens. */
  maxTokens(model: string): number {
    const reported = this.useModelMaxLen ? this.modelMaxLen?.(model) : undefined;
    return reported !== undefined && reported > 0 ? reported : this.maxPromptTokens;
  }

  /** Counts a refusal and returns the error to throw. */
  reject(reason: LimitReason, err: GatewayError): GatewayError {
    this.rejections?.add(reason, () => ({ reason }));
    return err;
  }

  /** The caps the body parser applies before anything reaches the main thread (json-body.ts). */
  get bodyCaps(): { maxValues: number; maxMessages: number; maxPromptChars: number } {
    return { maxValues: this.maxJsonValues, maxMessages: this.maxMessages, maxPromptChars: this.maxPromptChars };
  }

  /** `err`, counted when it is a refusal of the body parser (json-body.ts: values, messages, prompt size). */
  counted(err: unknown): unknown {
    if (err instanceof GatewayError && err.code === 'too_many_values') this.reject('json_values', err);
    if (err instanceof GatewayError && err.code === 'too_many_messages') this.reject('messages', err);
    if (err instanceof GatewayError && err.code === 'prompt_too_large') this.reject('prompt_chars', err);
    return err;
  }

  /** 413 unless `messages` (an array) is within the message cap. */
  checkMessageCount(messages: unknown[]): void {
    if (messages.length <= this.maxMessages) return;
    throw this.reject(
      'messages',
      tooManyMessages(messages.length, this.maxMessages),
    );
  }

  /** 413 when `units` (from promptUnits) exceeds the prompt cap. */
  checkPromptUnits(units: number, param: 'prompt' | 'messages'): void {
    if (units <= this.maxPromptChars) return;
    throw this.reject(
      'prompt_chars',
      promptTooLarge(param, this.maxPromptChars),
    );
  }

  /** 400 when a prompt of `tokens` token ids (or at least that many) exceeds the model's context. */
  checkTokens(model: string, tokens: number, param: 'prompt' | 'messages', atLeast = false): void {
    const max = this.maxTokens(model);
    if (tokens <= max) return;
    throw this.contextExceeded(max, tokens, param, atLeast);
  }

  contextExceeded(max: number, tokens: number, param: 'prompt' | 'messages', atLeast: boolean): GatewayError {
    return this.reject(
      'prompt_tokens',
      new GatewayError(
        400,
        `This model's maximum context length is ${max} tokens. However, your ${param === 'messages' ? 'messages' : 'prompt'} ${atLeast ? 'would have at least' : 'has'} ${tokens} tokens. Please reduce the length of the input.`,
        'invalid_request_error',
        'context_length_exceeded',
        param,
      ),
    );
  }
}

/**
 * Prompt units of a JSON value (see maxPromptChars): string lengths plus one per value,
 * counted without recursion (any depth) and stopping as soon as the total passes `cap`, so
 * the walk costs at most ~cap steps whatever the body holds. Returns the total (> cap when over).
 */
export function promptUnits(value: unknown, cap: number): number {
  let units = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    units += typeof v === 'string' ? v.length + 1 : ArrayBuffer.isView(v) ? (v as Uint32Array).length : 1;
    if (units > cap) return units;
    if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v)) continue;
    if (Array.isArray(v)) {
      if (units + v.length > cap) return units + v.length;
      for (let i = v.length - 1; i >= 0; i--) stack.push(v[i]);
    } else {
      for (const k in v) {
        units += k.length;
        if (units > cap) return units;
        stack.push((v as Record<string, unknown>)[k]);
      }
    }
  }
  return units;
}

/**
 * The same limits for a vLLM-style /tokenize body (already JSON-parsed): message count, prompt
 * size, token ids against the model's cap. Throws the GatewayError; shapes are the handler's business.
 */
export function checkTokenizeBody(limits: RequestLimits, body: unknown): void {
  if (!body || typeof body !== 'object') return;
  const b = body as Record<string, unknown>;
  if (Array.isArray(b.messages)) {
    limits.checkMessageCount(b.messages);
    limits.checkPromptUnits(promptUnits([b.messages, b.tools, b.chat_template_kwargs], limits.maxPromptChars), 'messages');
  }
  if (b.prompt === undefined || b.prompt === null) return;
  if (Array.isArray(b.prompt) && typeof b.model === 'string') limits.checkTokens(b.model, b.prompt.length, 'prompt');
  limits.checkPromptUnits(promptUnits(b.prompt, limits.maxPromptChars), 'prompt');
}
