// vLLM-compatible POST /tokenize for the router and simulator HTTP servers.
import type { TokenizerRegistry } from './registry.js';
import { TokenizeError, type TokenizeRequest } from './types.js';

export interface HandlerResponse {
  status: number;
  body: unknown;
}

/** OpenAI-style error body (the newer vLLM shape). */
export function errorBody(message: string, type: string, code: number, param: string | null = null) {
  return { error: { message, type, param, code } };
}

function bad(message: string, param: string | null = null): HandlerResponse {
  return { status: 400, body: errorBody(message, 'BadRequestError', 400, param) };
}

const BOOL_FIELDS = ['add_special_tokens', 'add_generation_prompt', 'continue_final_message', 'return_token_strs'] as const;

/**
 * Handle a /tokenize body (already JSON-parsed, or a raw string/Buffer to parse).
 * 200 {count, max_model_len, tokens[, token_strs]}; 400 on bad input; 404 for an unknown model.
 */
export async function handleTokenize(registry: TokenizerRegistry, body: unknown): Promise<HandlerResponse> {
  let req: unknown = body;
  if (typeof req === 'string' || Buffer.isBuffer(req)) {
    try {
      req = JSON.parse(req.toString());
    } catch (e) {
      return bad(`request body is not valid JSON: ${(e as Error).message}`);
    }
  }
  if (!req || typeof req !== 'object' || Array.isArray(req)) return bad('request body must be a JSON object');
  const r = req as Record<string, unknown>;
  const model = r.model ?? registry.defaultModel;
  if (typeof model !== 'string' || model === '') return bad('"model" is required and must be a non-empty string', 'model');
  for (const f of BOOL_FIELDS) if (r[f] !== undefined && r[f] !== null && typeof r[f] !== 'boolean') return bad(`"${f}" must be a boolean`, f);
  const hasPrompt = r.prompt !== undefined && r.prompt !== null;
  const hasMessages = r.messages !== undefined && r.messages !== null;
  if (hasPrompt === hasMessages) return bad('exactly one of "prompt" or "messages" is required', hasPrompt ? 'messages' : 'prompt');
  if (hasPrompt && typeof r.prompt !== 'string' && !Array.isArray(r.prompt)) return bad('"prompt" must be a string or an array of token ids', 'prompt');
  if (hasMessages && !Array.isArray(r.messages)) return bad('"messages" must be an array', 'messages');
  if (r.tools !== undefined && r.tools !== null && !Array.isArray(r.tools)) return bad('"tools" must be an array', 'tools');
  const kw = r.chat_template_kwargs;
  if (kw !== undefined && kw !== null && (typeof kw !== 'object' || Array.isArray(kw))) return bad('"chat_template_kwargs" must be an object', 'chat_template_kwargs');
  const treq: TokenizeRequest = {
    model,
    prompt: hasPrompt ? (r.prompt as string | number[]) : undefined,
    messages: hasMessages ? (r.messages as TokenizeRequest['messages']) : undefined,
    add_special_tokens: (r.add_special_tokens ?? undefined) as boolean | undefined,
    add_generation_prompt: (r.add_generation_prompt ?? undefined) as boolean | undefined,
    continue_final_message: (r.continue_final_message ?? undefined) as boolean | undefined,
    chat_template_kwargs: (kw ?? undefined) as Record<string, unknown> | undefined,
    tools: (r.tools ?? undefined) as unknown[] | undefined,
  };
  try {
    const result = await registry.tokenize(treq);
    if (r.return_token_strs === true) return { status: 200, body: { ...result, token_strs: await registry.tokenStrings(model, result.tokens) } };
    return { status: 200, body: result };
  } catch (e) {
    if (e instanceof TokenizeError) return { status: e.status, body: errorBody(e.message, e.type, e.status, e.param) };
    return { status: 500, body: errorBody(`tokenization failed: ${(e as Error).message}`, 'InternalServerError', 500) };
  }
}
