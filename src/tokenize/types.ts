// Request and result shapes of the tokenize subsystem (mirrors vLLM's /tokenize).

export interface ChatContentPart {
  type: string;
  text?: string;
  [k: string]: unknown;
}

export interface ChatMessage {
  role: string;
  content?: string | ChatContentPart[] | null;
  [k: string]: unknown;
}

export interface TokenizeRequest {
  model: string;
  prompt?: string | number[];
  messages?: ChatMessage[];
  add_special_tokens?: boolean;
  add_generation_prompt?: boolean;
  continue_final_message?: boolean;
  chat_template_kwargs?: Record<string, unknown>;
  tools?: unknown[];
}

export interface TokenizeResult {
  count: number;
  max_model_len: number;
  tokens: number[];
}

export interface ChatOptions {
  add_generation_prompt?: boolean;
  continue_final_message?: boolean;
  chat_template_kwargs?: Record<string, unknown>;
  tools?: unknown[];
}

/** An error with the HTTP status and OpenAI error type it maps to. */
export class TokenizeError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly type: string = status === 404 ? 'NotFoundError' : 'BadRequestError',
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = 'TokenizeError';
  }
}

/** Thrown when no tokenizer can be found for a model name. */
export class UnknownModelError extends TokenizeError {
  constructor(
    readonly model: string,
    readonly looked: string[],
  ) {
    super(
      `no tokenizer for model "${model}"; looked in: ${looked.length ? looked.join('; ') : '(nowhere: no search locations configured)'}`,
      404,
      'NotFoundError',
      'model',
    );
    this.name = 'UnknownModelError';
  }
}

/** Options of one encode call on the request path. */
export interface EncodeOptions {
  /** Abandons the work when aborted (the client went away): TokenizeAbortedError. */
  signal?: AbortSignal;
  /**
   * The model's context in tokens: a text that provably becomes more tokens (token-bound.ts)
   * is refused before tokenizing with ContextLengthError.
   */
  maxTokens?: number;
}

/** The request was abandoned (its signal aborted) before its tokenization finished. */
export class TokenizeAbortedError extends TokenizeError {
  constructor() {
    super('tokenization abandoned: the client closed the request', 499, 'ClientClosedRequest');
    this.name = 'TokenizeAbortedError';
  }
}

/** The text becomes at least `atLeast` tokens, more than the model's `maxTokens`. */
export class ContextLengthError extends TokenizeError {
  constructor(
    readonly maxTokens: number,
    readonly atLeast: number,
  ) {
    super(`This model's maximum context length is ${maxTokens} tokens. However, the input would have at least ${atLeast} tokens.`, 400, 'BadRequestError', 'prompt');
    this.name = 'ContextLengthError';
  }
}
