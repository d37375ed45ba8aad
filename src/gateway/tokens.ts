// Request tokenization for routing: the exact tokens vLLM will see (chat template for chat,
// special tokens per add_special_tokens for completions), through src/tokenize.
import type { Logger } from 'pino';
import type { InferenceRequest } from '../scheduler/types.js';

/** What the router needs from a tokenizer registry (src/tokenize's TokenizerRegistry fits). */
export interface RouterTokenizers {
  encodeCompletion(model: string, prompt: string | number[], addSpecialTokens?: boolean): Promise<ArrayLike<number>>;
  encodeChat(
    model: string,
    messages: unknown[],
    opts: { add_generation_prompt?: boolean; continue_final_message?: boolean; chat_template_kwargs?: Record<string, unknown>; tools?: unknown[] },
  ): Promise<ArrayLike<number>>;
  handleTokenize?(body: unknown): Promise<{ status: number; body: unknown }>;
  close?(): Promise<void> | void;
}

/** Returns the tokenize function for ParseOptions; null tokens when the model has no tokenizer. */
export function createRequestTokenizer(tok: RouterTokenizers, logger: Logger): (req: InferenceRequest) => Promise<Uint32Array | null> {
  const warned = new Set<string>();
  return async (req) => {
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
        });
      } else {
        const p = req.prompt;
        const text = typeof p === 'string' ? p : Array.isArray(p) && typeof p[0] === 'string' ? (p[0] as string) : null;
        if (text === null) return null;
        ids = await tok.encodeCompletion(req.baseModel, text, typeof b.add_special_tokens === 'boolean' ? b.add_special_tokens : true);
      }
      return ids instanceof Uint32Array ? ids : Uint32Array.from(ids);
    } catch (err) {
      const key = `${req.baseModel}:${(err as Error).name}`;
      if (!warned.has(key)) {
        warned.add(key);
        logger.warn({ model: req.baseModel, err: (err as Error).message }, 'cannot tokenize requests for this model; prefix scores will be 0');
      }
      return null;
    }
  };
}
