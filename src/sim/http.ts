// The vLLM OpenAI-compatible HTTP surface of one simulated pod: completions and chat (JSON
// and SSE exactly as vLLM streams them), models, health, tokenize, reset_prefix_cache, metrics.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { Engine, EngineRequest } from './engine.js';
import { outputText } from './text.js';
import { asTokenIds, type TokenizerRegistryLike } from './tokenizer.js';
import type { ChatMessage } from '../tokenize/types.js';
import { pickFault, type FaultConfig, type InjectedError } from './faults.js';

export interface HttpCore {
  readonly model: string;
  readonly servedModelName: string;
  readonly maxModelLen: number;
  /** LoRA adapter names; adapter i has lora_int_id i + 1. */
  readonly loraModules: string[];
  engine(): Engine;
  registry(): Registry;
  tokenizers(): Promise<TokenizerRegistryLike | null>;
  tokenizeHandler(): Promise<((registry: TokenizerRegistryLike, body: unknown) => Promise<unknown> | unknown) | null>;
  ready(): boolean;
  faults: FaultConfig;
  /** Fill usage.prompt_tokens_details.cached_tokens (vLLM --enable-prompt-tokens-details). */
  promptTokensDetails: boolean;
  outputMode: 'random' | 'echo';
  now(): number;
}

const MAX_BODY = 64 * 1024 * 1024;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = status === 404 ? 'NotFoundError' : status >= 500 ? 'InternalServerError' : 'BadRequestError',
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

function sendError(res: ServerResponse, e: { status: number; message: string; type: string; param: string | null }): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, e.status, { error: { message: e.message, type: e.type, param: e.param, code: e.status } });
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > MAX_BODY) throw new HttpError(413, 'request body too large');
    chunks.push(c as Buffer);
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `invalid JSON body: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new HttpError(400, 'request body must be a JSON object');
  return v as Record<string, unknown>;
}

/** Largest token id accepted (int32, as vLLM's token tensors). */
const MAX_TOKEN_ID = 0x7fffffff;

function isTokenArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && x >= 0 && x <= MAX_TOKEN_ID);
}

function optInt(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (!Number.isInteger(v) || (v as number) < 0) throw new HttpError(400, `${key} must be a non-negative integer`, 'BadRequestError', key);
  return v as number;
}

interface Prompt {
  tokens: number[];
  /** Words to echo back in echo mode. */
  echoWords: string[] | null;
}

function wordsOf(s: string): string[] {
  return s.split(/\s+/).filter((w) => w.length > 0);
}

export function createHandler(core: HttpCore): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(core, req, res).catch((err: unknown) => {
      if (err instanceof HttpError) sendError(res, err);
      else sendError(res, { status: 500, message: (err as Error)?.message ?? String(err), type: 'InternalServerError', param: null });
    });
  };
}

async function handle(core: HttpCore, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  if (path === '/metrics' && method === 'GET') {
    const reg = core.registry();
    const text = await reg.metrics();
    res.writeHead(200, { 'content-type': reg.contentType });
    res.end(text);
    return;
  }
  if (!core.ready()) {
    // Still starting up (faults.startupDelayMs): the engine is not serving yet.
    throw new HttpError(503, 'the server is starting up', 'ServiceUnavailableError');
  }
  if (path === '/health' && method === 'GET') {
    res.writeHead(200, { 'content-length': 0 });
    res.end();
    return;
  }
  if (path === '/sim/stats' && method === 'GET') {
    // Simulator-only: engine state and counters in model time (not a vLLM endpoint).
    const e = core.engine();
    sendJson(res, 200, {
      model_time_s: core.now(),
      steps: e.steps,
      busy_model_s: e.busySeconds,
      running: e.numRunning,
      waiting: e.numWaiting,
      kv_cache_usage: e.pool.usage(),
      cached_blocks: e.pool.cachedBlocks,
      free_blocks: e.pool.numFree,
      evictions: e.pool.evictions,
      preemptions: e.preemptionsTotal,
      prefix_cache_queries: e.prefixQueries,
      prefix_cache_hits: e.prefixHits,
      prompt_tokens: e.promptTokensTotal,
      generation_tokens: e.generationTokensTotal,
    });
    return;
  }
  if (path === '/v1/models' && method === 'GET') {
    sendJson(res, 200, {
      object: 'list',
      data: [
        { id: core.servedModelName, object: 'model', created: Math.floor(Date.now() / 1000), owned_by: 'vllm', root: core.model, parent: null, max_model_len: core.maxModelLen, permission: [] },
        ...core.loraModules.map((name) => ({ id: name, object: 'model', created: Math.floor(Date.now() / 1000), owned_by: 'vllm', root: name, parent: core.servedModelName, max_model_len: null, permission: [] })),
      ],
    });
    return;
  }
  if (method !== 'POST') throw new HttpError(path.startsWith('/v1/') || path === '/tokenize' ? 405 : 404, `${method} ${path} not found`, path.startsWith('/v1/') ? 'MethodNotAllowed' : 'NotFoundError');
  switch (path) {
    case '/v1/completions':
      return completions(core, req, res, false);
    case '/v1/chat/completions':
      return completions(core, req, res, true);
    case '/tokenize':
      return tokenize(core, req, res);
    case '/reset_prefix_cache': {
      const ok = core.engine().resetPrefixCache(url.searchParams.get('reset_running_requests') === 'true');
      if (!ok) throw new HttpError(409, 'Failed to reset prefix cache: blocks are in use by running requests', 'ConflictError');
      res.writeHead(200, { 'content-length': 0 });
      res.end();
      return;
    }
    default:
      throw new HttpError(404, `${path} not found`, 'NotFoundError');
  }
}

function checkModel(core: HttpCore, body: Record<string, unknown>): string {
  const m = body.model;
  if (m === undefined || m === null) return core.servedModelName;
  if (typeof m !== 'string') throw new HttpError(400, 'model must be a string', 'BadRequestError', 'model');
  if (m !== core.servedModelName && m !== core.model && !core.loraModules.includes(m)) throw new HttpError(404, `The model \`${m}\` does not exist.`, 'NotFoundError', 'model');
  return m;
}

async function tokenize(core: HttpCore, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(req);
  checkModel(core, body);
  if (isTokenArray(body.prompt)) {
    sendJson(res, 200, { count: body.prompt.length, max_model_len: core.maxModelLen, tokens: body.prompt });
    return;
  }
  const reg = await core.tokenizers();
  const handler = await core.tokenizeHandler();
  if (reg === null || handler === null) throw new HttpError(501, 'no tokenizer available in this simulator (send token-id prompts)', 'NotImplementedError');
  const out = await handler(reg, { ...body, model: core.model });
  const o = out as { status?: number; body?: unknown };
  if (o && typeof o === 'object' && typeof o.status === 'number' && 'body' in o) sendJson(res, o.status, o.body);
  else sendJson(res, 200, out);
}

async function encodePrompts(core: HttpCore, body: Record<string, unknown>, chat: boolean): Promise<Prompt[]> {
  const reg = async (): Promise<TokenizerRegistryLike> => {
    const r = await core.tokenizers();
    if (r === null) throw new HttpError(400, 'string prompts need a tokenizer; none is available in this simulator (send token ids)', 'BadRequestError', chat ? 'messages' : 'prompt');
    return r;
  };
  const wrap = async (f: () => Promise<number[]>): Promise<number[]> => {
    try {
      return await f();
    } catch (err) {
      if (err instanceof HttpError) throw err;
      const e = err as { status?: number; message?: string; type?: string; param?: string | null };
      throw new HttpError(typeof e.status === 'number' ? e.status : 400, e.message ?? String(err), e.type, e.param ?? null);
    }
  };
  if (chat) {
    const messages = body.messages;
    if (!Array.isArray(messages) || messages.length === 0) throw new HttpError(400, 'messages must be a non-empty array', 'BadRequestError', 'messages');
    const r = await reg();
    const tokens = await wrap(async () =>
      asTokenIds(
        await r.encodeChat(core.model, messages as ChatMessage[], {
          add_generation_prompt: (body.add_generation_prompt as boolean | undefined) ?? true,
          continue_final_message: body.continue_final_message as boolean | undefined,
          chat_template_kwargs: body.chat_template_kwargs as Record<string, unknown> | undefined,
          tools: body.tools as unknown[] | undefined,
        }),
      ),
    );
    const last = messages[messages.length - 1] as ChatMessage;
    const text = typeof last?.content === 'string' ? last.content : Array.isArray(last?.content) ? last.content.map((p) => p.text ?? '').join(' ') : '';
    return [{ tokens, echoWords: wordsOf(text) }];
  }
  const p = body.prompt;
  const addSpecial = (body.add_special_tokens as boolean | undefined) ?? true;
  const one = async (x: unknown): Promise<Prompt> => {
    if (typeof x === 'string') {
      const r = await reg();
      return { tokens: await wrap(async () => asTokenIds(await r.encodeCompletion(core.model, x, addSpecial))), echoWords: wordsOf(x) };
    }
    if (isTokenArray(x)) return { tokens: x, echoWords: null };
    throw new HttpError(400, 'prompt must be a string, an array of strings, an array of token ids or an array of token-id arrays', 'BadRequestError', 'prompt');
  };
  if (typeof p === 'string' || isTokenArray(p)) return [await one(p)];
  if (Array.isArray(p) && p.length > 0) return Promise.all(p.map(one));
  throw new HttpError(400, 'prompt is required', 'BadRequestError', 'prompt');
}

function injected(e: InjectedError): HttpError {
  return new HttpError(e.status, e.message, e.type, e.param);
}

async function completions(core: HttpCore, req: IncomingMessage, res: ServerResponse, chat: boolean): Promise<void> {
  const fault = pickFault(core.faults, req.headers);
  if (fault !== null) {
    // Drain the body so the connection stays usable, then fail.
    for await (const _ of req) void _;
    throw injected(fault);
  }
  const body = await readJson(req);
  const model = checkModel(core, body);
  const loraIndex = core.loraModules.indexOf(model);
  const n = optInt(body, 'n') ?? 1;
  if (n !== 1) throw new HttpError(400, 'the simulator supports n=1 only', 'BadRequestError', 'n');
  const stream = body.stream === true;
  const so = (body.stream_options ?? null) as { include_usage?: boolean; continuous_usage_stats?: boolean } | null;
  if (so !== null && !stream) throw new HttpError(400, 'Stream options can only be defined when `stream=True`.', 'BadRequestError', 'stream_options');
  const includeUsage = stream && so?.include_usage === true;
  const continuousUsage = includeUsage && so?.continuous_usage_stats === true;
  const cacheSalt = body.cache_salt;
  if (cacheSalt !== undefined && cacheSalt !== null && (typeof cacheSalt !== 'string' || cacheSalt.length === 0)) {
    throw new HttpError(400, 'Parameter `cache_salt` must be a non-empty string if provided.', 'BadRequestError', 'cache_salt');
  }
  const prompts = await encodePrompts(core, body, chat);
  const explicitMax = chat ? (optInt(body, 'max_completion_tokens') ?? optInt(body, 'max_tokens')) : optInt(body, 'max_tokens');
  if (explicitMax === 0) throw new HttpError(400, 'max_tokens must be at least 1, got 0.', 'BadRequestError', 'max_tokens');
  const engine = core.engine();
  const maxTokensFor = (p: Prompt): number => explicitMax ?? (chat ? Math.max(1, core.maxModelLen - p.tokens.length) : 16);
  for (const p of prompts) {
    const err = engine.validate(p.tokens.length, maxTokensFor(p));
    if (err !== null) throw new HttpError(400, err, 'BadRequestError', chat ? 'messages' : 'prompt');
  }
  const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomBytes(16).toString('hex')}`;
  const created = Math.floor(Date.now() / 1000);
  const object = chat ? 'chat.completion' : 'text_completion';
  const chunkObject = chat ? 'chat.completion.chunk' : 'text_completion';
  const usageOf = (rs: EngineRequest[]) => {
    let pt = 0;
    let ct = 0;
    let cached = 0;
    for (const r of rs) {
      pt += r.promptLen;
      ct += r.outputCount;
      cached += Math.max(0, r.cachedTokens);
    }
    return { prompt_tokens: pt, total_tokens: pt + ct, completion_tokens: ct, prompt_tokens_details: core.promptTokensDetails ? { cached_tokens: cached } : null };
  };

  const reqs: EngineRequest[] = [];
  let done = 0;
  let closed = false;
  const finished = new Promise<void>((resolve) => {
    const onFinish = () => {
      if (++done === prompts.length) resolve();
    };
    if (stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      if (chat) {
        // vLLM's first chat chunk carries the role and empty content.
        writeChunk({ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }, null);
      }
    }
    const envelope = `data: {"id":${JSON.stringify(id)},"object":"${chunkObject}","created":${created},"model":${JSON.stringify(model)},"choices":[{"index":`;
    const chunkHead = prompts.map((_, i) => `${envelope}${i},${chat ? '"delta":{"content":' : '"text":'}`);
    const chunkTail = chat ? '},"logprobs":null,"finish_reason":null}]}\n\n' : ',"logprobs":null,"finish_reason":null,"stop_reason":null}]}\n\n';
    for (let i = 0; i < prompts.length; i++) {
      const p = prompts[i];
      let sent = 0;
      const onTokens = stream
        ? (r: EngineRequest) => {
            if (closed) return;
            const text = outputText(r.seq.output, 0, sent, r.outputCount, core.outputMode === 'echo' ? p.echoWords : null);
            sent = r.outputCount;
            const last = r.outputCount >= r.maxTokens;
            if (!last && !continuousUsage) {
              // Hot path (one chunk per token): a template equal to JSON.stringify of the chunk.
              res.write(chunkHead[i] + JSON.stringify(text) + chunkTail);
              return;
            }
            const fr = last ? 'length' : null;
            const choice = chat
              ? { index: i, delta: { content: text }, logprobs: null, finish_reason: fr, ...(last ? { stop_reason: null } : {}) }
              : { index: i, text, logprobs: null, finish_reason: fr, stop_reason: null };
            writeChunk(choice, continuousUsage ? usageOf([r]) : null);
          }
        : undefined;
      reqs.push(
        engine.submit({
          promptTokens: p.tokens,
          maxTokens: maxTokensFor(p),
          cacheSalt: (cacheSalt as string | undefined) ?? null,
          loraName: loraIndex >= 0 ? model : null,
          loraId: loraIndex >= 0 ? loraIndex + 1 : null,
          onTokens,
          onFinish,
        }),
      );
    }
  });

  function writeChunk(choice: unknown, usage: unknown): void {
    const o: Record<string, unknown> = { id, object: chunkObject, created, model, choices: [choice] };
    if (usage !== null) o.usage = usage;
    res.write(`data: ${JSON.stringify(o)}\n\n`);
  }

  res.on('close', () => {
    if (done < prompts.length) {
      closed = true;
      for (const r of reqs) engine.abort(r);
    }
  });
  await finished;
  if (closed) return;
  if (reqs.some((r) => r.finishReason === 'abort')) {
    // The pod was killed or restarted under the request.
    if (stream) res.destroy();
    else sendError(res, { status: 503, message: 'the engine stopped while serving the request', type: 'ServiceUnavailableError', param: null });
    return;
  }
  if (stream) {
    if (includeUsage) res.write(`data: ${JSON.stringify({ id, object: chunkObject, created, model, choices: [], usage: usageOf(reqs) })}\n\n`);
    res.end('data: [DONE]\n\n');
    return;
  }
  const choices = reqs.map((r, i) => {
    const text = outputText(r.seq.output, 0, 0, r.outputCount, core.outputMode === 'echo' ? prompts[i].echoWords : null);
    return chat
      ? { index: i, message: { role: 'assistant', content: text, refusal: null, tool_calls: [], reasoning_content: null }, logprobs: null, finish_reason: r.finishReason, stop_reason: null }
      : { index: i, text, logprobs: null, finish_reason: r.finishReason, stop_reason: null, prompt_logprobs: null };
  });
  sendJson(res, 200, { id, object, created, model, choices, usage: usageOf(reqs) });
}
