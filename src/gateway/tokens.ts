// Request tokenization for routing: the exact tokens vLLM will see (chat template for chat,
// special tokens per add_special_tokens for completions), through src/tokenize.
import type { Logger } from 'pino';
import type { InferenceRequest } from '../scheduler/types.js';
import { ContextLengthError, TokenizeAbortedError, type EncodeOptions } from '../tokenize/types.js';
import type { TokenizeContext } from './parse.js';

/**
 * What the router needs from a tokenizer registry (src/tokenize's TokenizerRegistry fits).
 * `encode` carries the client's abort signal (TokenizeAbortedError once it aborts) and the
 * model's token cap (ContextLengthError for a text provably over it, before tokenizing).
 */
export interface RouterTokenizers {
  encodeCompletion(model: string, prompt: string | number[], addSpecialTokens?: boolean, encode?: EncodeOptions): Promise<ArrayLike<number>>;
  encodeChat(
    model: string,
    messages: unknown[],
    opts: { add_generation_prompt?: boolean; continue_final_message?: boolean; chat_template_kwargs?: Record<string, unknown>; tools?: unknown[] },
    encode?: EncodeOptions,
  ): Promise<ArrayLike<number>>;
  handleTokenize?(body: unknown): Promise<{ status: number; body: unknown }>;
  close?(): Promise<void> | void;
}

/**
 * Returns the tokenize function for ParseOptions; null tokens when the model has no tokenizer.
 * Abandonment and context-length refusals propagate (the parser turns them into 499 / 400).
 */
export function createRequestTokenizer(tok: RouterTokenizers, logger: Logger): (req: InferenceRequest, ctx?: TokenizeContext) => Promise<Uint32Array | null> {
  const warned = new Set<string>();
  return async (req, ctx = {}) => {
    const encode: EncodeOptions = { signal: ctx.signal, maxTokens: ctx.maxTokens };
    const b = req.body;
    try {
      let ids: ArrayLike<number>;
      if (req.api === 'chat') {
        const addGen = typeof b.add_generation_prompt === 'boolean' ? b.add_generation_prompt : true;
        ids = await tok.encodeChat(req.baseModel, req.messages ?? [], {
          add_generation_prompt: addGen,
          continue_final_message: b.continue_final_message === true,
          chat_template_kwargs: (b.chat_template_kwargs as Record<string, unknown> | undefined) ?? undefined,
          tools: Array.isArray(b.tools) ? b.tools : undefined,
        }, encode);
      } else {
        const p = req.prompt;
        const text = typeof p === 'string' ? p : Array.isArray(p) && typeof p[0] === 'string' ? (p[0] as string) : null;
        if (text === null) return null;
        ids = await tok.encodeCompletion(req.baseModel, text, typeof b.add_special_tokens === 'boolean' ? b.add_special_tokens : true, encode);
      }
      return ids instanceof Uint32Array ? ids : Uint32Array.from(ids);
    } catch (err) {
      if (err instanceof TokenizeAbortedError || err instanceof ContextLengthError) throw err;
      const key = `${req.baseModel}:${(err as Error).name}`;
      if (!warned.has(key)) {
        warned.add(key);
        logger.warn({ model: req.baseModel, err: (err as Error).message }, 'cannot tokenize requests for this model; prefix scores will be 0');
      }
      return null;
    }
  };
}
