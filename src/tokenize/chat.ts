// Chat template rendering as vLLM does it by default: messages normalized the way vLLM's
// chat_utils parses them, tools as vLLM's pydantic model dumps them, then the template
// rendered with @huggingface/jinja the way transformers' apply_chat_template renders it.
// Known templates also get a direct renderer (same string, ~50x cheaper than interpreting the
// template) for the conversations it covers; anything else goes through jinja.
import { createHash } from 'node:crypto';
import { Template } from '@huggingface/jinja';
import { TokenizeError, type ChatMessage, type ChatOptions } from './types.js';

/** How the template expects `content`: a plain string, or OpenAI-style part lists. */
export type ContentFormat = 'string' | 'openai';

/**
 * vLLM's "auto" detection: a template that loops over a message's content expects
 * part lists ("openai"); any other template gets strings.
 */
export function detectContentFormat(template: string): ContentFormat {
  return /\{%-?\s*for\s+\w+\s+in\s+\w+(?:\.content|\[\s*['"]content['"]\s*\])/.test(template) ? 'openai' : 'string';
}

const TEXT_PART_TYPES = new Set(['text', 'input_text', 'output_text', 'refusal']);

function partText(part: unknown, i: number, m: number): string {
  if (typeof part === 'string') return part;
  if (!part || typeof part !== 'object') throw new TokenizeError(`messages[${m}].content[${i}] must be an object`, 400, 'BadRequestError', 'messages');
  const p = part as Record<string, unknown>;
  if (typeof p.type !== 'string') throw new TokenizeError(`messages[${m}].content[${i}].type must be a string`, 400, 'BadRequestError', 'messages');
  if (!TEXT_PART_TYPES.has(p.type))
    throw new TokenizeError(`messages[${m}].content[${i}]: content part type "${p.type}" is not supported (text parts only)`, 400, 'BadRequestError', 'messages');
  const text = p.type === 'refusal' ? p.refusal : p.text;
  if (typeof text !== 'string') throw new TokenizeError(`messages[${m}].content[${i}] has no string "${p.type === 'refusal' ? 'refusal' : 'text'}"`, 400, 'BadRequestError', 'messages');
  return text;
}

/**
 * vLLM turns tool-call arguments into objects before rendering: a JSON string is parsed;
 * empty, malformed or non-object arguments become {} (vLLM logs and carries on, so a bad
 * turn in the history does not fail every later request).
 */
function parseArguments(args: unknown): Record<string, unknown> {
  let parsed: unknown = args;
  if (typeof args === 'string') {
    if (args === '') return {};
    try {
      parsed = JSON.parse(args);
    } catch {
      return {};
    }
  }
  return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
}

/** The conversation vLLM hands to apply_chat_template. */
export function toConversation(messages: unknown, format: ContentFormat): Record<string, unknown>[] {
  if (!Array.isArray(messages) || messages.length === 0) throw new TokenizeError('messages must be a non-empty array', 400, 'BadRequestError', 'messages');
  const turn = (raw: unknown, m: number): Record<string, unknown> => {
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new TokenizeError(`messages[${m}] must be an object`, 400, 'BadRequestError', 'messages');
    const msg = raw as ChatMessage;
    if (typeof msg.role !== 'string') throw new TokenizeError(`messages[${m}].role must be a string`, 400, 'BadRequestError', 'messages');
    const c = msg.content;
    let texts: string[];
    if (c === undefined || c === null) texts = [];
    else if (typeof c === 'string') texts = [c];
    else if (Array.isArray(c)) texts = c.map((p, i) => partText(p, i, m));
    else throw new TokenizeError(`messages[${m}].content must be a string, an array of parts or null`, 400, 'BadRequestError', 'messages');
    const out: Record<string, unknown> = {
      role: msg.role,
      content: format === 'string' ? texts.join('\n') : texts.map((text) => ({ type: 'text', text })),
    };
    if (msg.role === 'assistant') {
      if (Array.isArray(msg.tool_calls) && msg.tool_calls.length > 0) {
        out.tool_calls = msg.tool_calls.map((tc, k) => {
          if (!tc || typeof tc !== 'object' || Array.isArray(tc))
            throw new TokenizeError(`messages[${m}].tool_calls[${k}] must be an object`, 400, 'BadRequestError', 'messages');
          const call = { ...(tc as Record<string, unknown>) };
          if ((call.type ?? 'function') !== 'function' || !call.function || typeof call.function !== 'object' || Array.isArray(call.function))
            throw new TokenizeError(`messages[${m}].tool_calls[${k}]: only tool calls of type "function" with a function object are supported`, 400, 'BadRequestError', 'messages');
          const fn = { ...(call.function as Record<string, unknown>) };
          fn.arguments = parseArguments(fn.arguments);
          call.function = fn;
          return call;
        });
      } else if (msg.tool_calls !== undefined && msg.tool_calls !== null && !Array.isArray(msg.tool_calls)) {
        throw new TokenizeError(`messages[${m}].tool_calls must be an array`, 400, 'BadRequestError', 'messages');
      }
      const reasoning = msg.reasoning ?? msg.reasoning_content;
      if (reasoning !== undefined && reasoning !== null) {
        out.reasoning = reasoning;
        out.reasoning_content = reasoning;
      }
    } else if (msg.role === 'tool' && msg.tool_call_id !== undefined) {
      out.tool_call_id = msg.tool_call_id;
    }
    if (typeof msg.name === 'string') out.name = msg.name;
    return out;
  };
  // Pushed onto [] (one elements kind), not messages.map: map's result array had another map
  // once TurboFan inlined it, deoptimizing renderQwen3 at `messages.length` (--trace-deopt).
  const conversation: Record<string, unknown>[] = [];
  for (let m = 0; m < messages.length; m++) conversation.push(turn(messages[m], m));
  return conversation;
}

/** Tools as vLLM's pydantic `model_dump()` gives them: declared fields first, unset ones null. */
export function normalizeTools(tools: unknown): Record<string, unknown>[] | undefined {
  if (tools === undefined || tools === null) return undefined;
  if (!Array.isArray(tools)) throw new TokenizeError('tools must be an array', 400, 'BadRequestError', 'tools');
  return tools.map((raw, i) => {
    if (!raw || typeof raw !== 'object') throw new TokenizeError(`tools[${i}] must be an object`, 400, 'BadRequestError', 'tools');
    const { type, function: fn, ...rest } = raw as Record<string, unknown>;
    if (type !== undefined && type !== 'function') throw new TokenizeError(`tools[${i}].type must be "function"`, 400, 'BadRequestError', 'tools');
    if (!fn || typeof fn !== 'object') throw new TokenizeError(`tools[${i}].function must be an object`, 400, 'BadRequestError', 'tools');
    const { name, description, parameters, ...fnRest } = fn as Record<string, unknown>;
    if (typeof name !== 'string') throw new TokenizeError(`tools[${i}].function.name must be a string`, 400, 'BadRequestError', 'tools');
    return { type: 'function', function: { name, description: description ?? null, parameters: parameters ?? null, ...fnRest }, ...rest };
  });
}

const RESERVED_KWARGS = new Set(['chat_template', 'tokenize', 'messages', 'conversation']);

export interface TemplateContext {
  template: Template;
  contentFormat: ContentFormat;
  /** bos_token, eos_token, ... and additional_special_tokens, as transformers passes them. */
  specialTokens: Record<string, unknown>;
}

export function compileTemplate(source: string): Template {
  let template: Template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new TokenizeError(`chat template does not parse: ${(e as Error).message}`, 400);
  }
  const direct = DIRECT_RENDERERS.get(createHash('sha256').update(source).digest('hex'));
  if (direct) directRenderers.set(template, direct);
  return template;
}

/**
 * A hand-written equivalent of one chat template: the exact string the jinja render gives, or
 * undefined when the variables fall outside what it covers (the caller then uses jinja).
 */
type DirectRenderer = (vars: Record<string, unknown>) => string | undefined;

const directRenderers = new WeakMap<Template, DirectRenderer>();

/** Whether `template` has a direct renderer (tests check that the fast path is really taken). */
export function hasDirectRenderer(template: Template): boolean {
  return directRenderers.has(template);
}

/** Variables renderChat may pass that the Qwen3 template ignores or reads as checked below. */
const QWEN3_VARS = new Set([
  'bos_token',
  'eos_token',
  'unk_token',
  'sep_token',
  'pad_token',
  'cls_token',
  'mask_token',
  'additional_special_tokens',
  'messages',
  'add_generation_prompt',
  'enable_thinking',
]);

/**
 * Qwen3's template (Qwen/Qwen3-*: tokenizer_config.json's chat_template) without tools, for
 * system/user/tool turns and assistant turns before the last user query that carry no
 * reasoning and no tool calls. The rest (tools, thinking turns, which strip whitespace) goes
 * through jinja.
 */
function renderQwen3(vars: Record<string, unknown>): string | undefined {
  // Object.keys, not for-in: for-in's fast path checks the object's map, and vars' map varies
  // with the request's kwargs (--trace-deopt: "wrong map" here).
  const keys = Object.keys(vars);
  for (let i = 0; i < keys.length; i++) if (!QWEN3_VARS.has(keys[i])) return undefined;
  const messages = vars.messages as Record<string, unknown>[];
  const n = messages.length;
  if (n === 0) return undefined;
  for (let i = 0; i < n; i++) {
    const m = messages[i];
    if (typeof m.role !== 'string' || typeof m.content !== 'string') return undefined;
  }
  // The last user turn that is not a bare tool response (ns.last_query_index).
  let lastQuery = n - 1;
  for (let i = n - 1; i >= 0; i--) {
    const m = messages[i];
    const c = m.content as string;
    if (m.role === 'user' && !(c.startsWith('<tool_response>') && c.endsWith('</tool_response>'))) {
      lastQuery = i;
      break;
    }
  }
  let out = messages[0].role === 'system' ? '<|im_start|>system\n' + (messages[0].content as string) + '<|im_end|>\n' : '';
  for (let i = 0; i < n; i++) {
    const m = messages[i];
    const role = m.role as string;
    const content = m.content as string;
    if (role === 'user' || (role === 'system' && i > 0)) {
      out += '<|im_start|>' + role + '\n' + content + '<|im_end|>\n';
    } else if (role === 'assistant') {
      if (i > lastQuery || m.tool_calls || m.reasoning_content !== undefined || content.includes('</think>')) return undefined;
      out += '<|im_start|>assistant\n' + content + '<|im_end|>\n';
    } else if (role === 'tool') {
      if (i === 0 || messages[i - 1].role !== 'tool') out += '<|im_start|>user';
      out += '\n<tool_response>\n' + content + '\n</tool_response>';
      if (i === n - 1 || messages[i + 1].role !== 'tool') out += '<|im_end|>\n';
    }
  }
  if (vars.add_generation_prompt) {
    out += '<|im_start|>assistant\n';
    if (vars.enable_thinking === false) out += '<think>\n\n</think>\n\n';
  }
  return out;
}

/** Direct renderers by the SHA-256 of the template source they reproduce. */
const DIRECT_RENDERERS = new Map<string, DirectRenderer>([
  // Qwen/Qwen3-0.6B ... Qwen3-32B (one template).
  ['87a2728cb8dc9fe424d624542f6060ec05a1d285ebbec578bb078900e33396b5', renderQwen3],
]);

/** Render the chat exactly as `apply_chat_template(conversation, tokenize=False, ...)`. */
export function renderChat(ctx: TemplateContext, messages: unknown, opts: ChatOptions = {}): string {
  return renderChatWith(ctx, messages, opts, true)!;
}

/**
 * renderChat when a direct renderer covers the chat; undefined when only jinja can render it
 * (~90 us per message: the caller renders it off the event loop, see render-worker.ts).
 */
export function renderChatDirect(ctx: TemplateContext, messages: unknown, opts: ChatOptions = {}): string | undefined {
  return renderChatWith(ctx, messages, opts, false);
}

function renderChatWith(ctx: TemplateContext, messages: unknown, opts: ChatOptions, jinja: boolean): string | undefined {
  const conversation = toConversation(messages, ctx.contentFormat);
  const kwargs: Record<string, unknown> = {};
  if (opts.chat_template_kwargs !== undefined && opts.chat_template_kwargs !== null) {
    if (typeof opts.chat_template_kwargs !== 'object' || Array.isArray(opts.chat_template_kwargs))
      throw new TokenizeError('chat_template_kwargs must be an object', 400, 'BadRequestError', 'chat_template_kwargs');
    const unexpected = Object.keys(opts.chat_template_kwargs).filter((k) => RESERVED_KWARGS.has(k));
    // vLLM refuses these too (the template is already chosen; the result must stay text).
    if (unexpected.length) throw new TokenizeError(`Found unexpected chat template kwargs from request: ${unexpected.join(', ')}`, 400, 'BadRequestError', 'chat_template_kwargs');
    Object.assign(kwargs, opts.chat_template_kwargs);
  }
  // vLLM merges chat_template_kwargs over its own arguments.
  const addGenerationPrompt = Boolean(kwargs.add_generation_prompt ?? opts.add_generation_prompt ?? true);
  const continueFinal = Boolean(kwargs.continue_final_message ?? opts.continue_final_message ?? false);
  const tools = normalizeTools(kwargs.tools ?? opts.tools);
  if (addGenerationPrompt && continueFinal)
    throw new TokenizeError('Cannot set both `continue_final_message` and `add_generation_prompt` to True.', 400, 'BadRequestError', 'continue_final_message');
  // Built by assignment onto {} (same keys in the same order, so one map from V8's transition tree):
  // an object spread of specialTokens here made a new map on every call (%HaveSameMap), so every
  // property read in renderQwen3 missed and deoptimized. No `delete` (it makes a dictionary-mode
  // object): those two keys are left out instead.
  const { continue_final_message: _cfm, tools: _tools, ...rest } = kwargs;
  const vars: Record<string, unknown> = Object.assign({}, ctx.specialTokens, rest);
  vars.messages = conversation;
  vars.add_generation_prompt = addGenerationPrompt;
  if (tools && tools.length) vars.tools = tools;
  let rendered: string | undefined = directRenderers.get(ctx.template)?.(vars);
  if (rendered === undefined && !jinja) return undefined;
  if (rendered === undefined) {
    try {
      rendered = ctx.template.render(vars);
    } catch (e) {
      throw new TokenizeError(`chat template failed to render: ${(e as Error).message}`, 400);
    }
  }
  return continueFinal ? cutAfterFinalMessage(rendered, conversation[conversation.length - 1]) : rendered;
}

/** transformers' continue_final_message: end the text right after the last message's content. */
function cutAfterFinalMessage(rendered: string, last: Record<string, unknown>): string {
  let final: unknown = last.content;
  if (Array.isArray(final)) {
    const withText = [...final].reverse().find((p) => p && typeof p === 'object' && 'text' in p) as { text?: unknown } | undefined;
    if (!withText) throw new TokenizeError('continue_final_message is set but the final message has no text content', 400);
    final = withText.text;
  }
  const text = String(final ?? '');
  const stripped = text.trim();
  if (!rendered.includes(stripped))
    throw new TokenizeError('continue_final_message is set but the final message does not appear in the rendered chat', 400);
  const loc = rendered.lastIndexOf(stripped);
  const lstripLen = text.trimStart().length;
  return rendered.slice(loc, loc + lstripLen) === text ? rendered.slice(0, loc + lstripLen) : rendered.slice(0, loc + stripped.length);
}
