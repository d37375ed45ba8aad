// One model's tokenizer: the in-process BPE encoder (fast-bpe.ts) when it supports the
// tokenizer.json, else the native HF engine; its chat template, special tokens and prefix cache.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileTemplate, detectContentFormat, renderChat, renderChatDirect, type TemplateContext } from './chat.js';
import { HfTokenizerEngine } from './engine.js';
import { DEFAULT_WORK_BUDGET, FastBpeTokenizer } from './fast-bpe.js';
import { readTokenizerJson, tokenizerJsonPath } from './locate.js';
import { ChatRenderWorker } from './render-worker.js';
import { ChunkTokenCache, type PrefixCacheOptions, type PrefixCacheStats } from './prefix-cache.js';
import { cutSafety, type CutSafety } from './safe-cuts.js';
import { sliceEnd, TokenLowerBound, tokenBoundOf, type TokenBound } from './token-bound.js';
import { ContextLengthError, TokenizeAbortedError, TokenizeError, type ChatOptions, type EncodeOptions } from './types.js';

export interface EncodeStats {
  hitTokens: number;
  missTokens: number;
}

/** Which engine encodes text: 'auto' uses the in-process encoder when it supports the model. */
export type EngineChoice = 'auto' | 'native';

/**
 * Longest text encoded synchronously on the main thread (~1 ms for ordinary text); longer
 * texts that cannot be cut into chunks go to the native engine off the event loop.
 */
const SYNC_MAX_CHARS = 32_768;
/** Main-thread time spent encoding chunks before yielding to the event loop. */
const YIELD_MS = 2;
/**
 * Characters of chunks handed to the native engine in one call: an abandoned request stops
 * after the call in progress (~10-50 ms of a tokenizer thread), not after the whole text.
 */
const NATIVE_GROUP_CHARS = 64 * 1024;

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new TokenizeAbortedError();
}

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

/** Chats up to this many messages render inline through jinja (~90 us per message). */
const INLINE_JINJA_MESSAGES = 8;
/** Chats up to this many messages render inline when a direct renderer covers them (~2 us per message). */
const INLINE_DIRECT_MESSAGES = 1024;

let renderWorker: ChatRenderWorker | undefined;
/** The process-wide chat render worker (started on first use). */
export function chatRenderWorker(): ChatRenderWorker {
  return (renderWorker ??= new ChatRenderWorker());
}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];

function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

/** max_model_len as vLLM derives it from config.json; falls back to tokenizer_config. */
function deriveMaxModelLen(dir: string, tokConfig: Record<string, unknown>, known?: number): number {
  if (known) return known;
  const cfgPath = join(dir, 'config.json');
  if (existsSync(cfgPath)) {
    const cfg = readJson(cfgPath);
    const text = (cfg.text_config as Record<string, unknown> | undefined) ?? cfg;
    for (const k of ['max_position_embeddings', 'n_positions', 'max_seq_len', 'seq_length', 'max_sequence_length', 'max_seq_length', 'model_max_length']) {
      const v = text[k] ?? cfg[k];
      if (typeof v === 'number' && v > 0) return v;
    }
  }
  const m = tokConfig.model_max_length;
  return typeof m === 'number' && m > 0 && m < 1e12 ? m : 0;
}

export class ModelTokenizer {
  readonly name: string;
  readonly dir: string;
  readonly maxModelLen: number;
  /** The native engine: the reference, the fallback, and decode / vocabulary lookups. */
  readonly engine: HfTokenizerEngine;
  /** The in-process encoder, when it supports this tokenizer.json and engine is 'auto'. */
  readonly fast: FastBpeTokenizer | undefined;
  /** Why the in-process encoder is not used, if it is not. */
  readonly fastUnsupported: string | undefined;
  readonly chatTemplate: string | undefined;
  /** Why the prefix cache is off for this tokenizer, if it is. */
  readonly cacheDisabledReason: string | undefined;
  private readonly cache: ChunkTokenCache | undefined;
  private readonly templateCtx: TemplateContext | undefined;
  /** Ids the post-processor puts around a single sequence (e.g. a BOS), found at load. */
  private specialPrefix: number[] = [];
  private specialSuffix: number[] = [];
  private specialsAreAffixes = true;
  /** The token lower bound's maxima (token-bound.ts); undefined when the vocabulary is not byte-level. */
  readonly bound: TokenBound | undefined;
  /** Chunks of long texts encoded so far, by either engine (shows that abandoned work stops). */
  chunksEncoded = 0;

  private constructor(name: string, dir: string, maxModelLen: number, cacheOpts: PrefixCacheOptions | undefined, engine: EngineChoice) {
    this.name = name;
    this.dir = dir;
    const tokJsonPath = tokenizerJsonPath(dir) ?? join(dir, 'tokenizer.json');
    const cfgPath = join(dir, 'tokenizer_config.json');
    const tokConfig = existsSync(cfgPath) ? readJson(cfgPath) : {};
    const shared = loadShared(tokJsonPath, bosEosFromConfig(tokConfig));
    this.engine = shared.engine;
    this.bound = shared.bound;
    if (engine === 'native') this.fastUnsupported = 'native engine requested';
    else if (shared.fast instanceof FastBpeTokenizer) this.fast = shared.fast;
    else this.fastUnsupported = shared.fast.unsupported;
    this.maxModelLen = deriveMaxModelLen(dir, tokConfig, maxModelLen);
    this.chatTemplate = loadChatTemplate(dir, tokConfig);
    if (this.chatTemplate !== undefined) {
      const specialTokens: Record<string, unknown> = {};
      for (const k of SPECIAL_KEYS) {
        const c = tokenContent(tokConfig[k]);
        if (c !== undefined) specialTokens[k] = c;
      }
      if (Array.isArray(tokConfig.additional_special_tokens))
        specialTokens.additional_special_tokens = tokConfig.additional_special_tokens.map(tokenContent).filter((x) => x !== undefined);
      this.templateCtx = {
        template: compileTemplate(this.chatTemplate),
        contentFormat: detectContentFormat(this.chatTemplate),
        specialTokens,
      };
    }
    const safety = shared.safety;
    if (!safety.ok) this.cacheDisabledReason = safety.reason;
    else if (cacheOpts?.enabled === false) this.cacheDisabledReason = 'disabled by configuration';
    // Without exact cuts nothing can be split; with them, long texts are split (and cached if enabled).
    this.cache = !safety.ok || (cacheOpts?.enabled === false && cacheOpts.split === false) ? undefined : new ChunkTokenCache(cacheOpts, safety.newlineRule);
  }

  static async load(name: string, dir: string, opts: { maxModelLen?: number; prefixCache?: PrefixCacheOptions; engine?: EngineChoice } = {}): Promise<ModelTokenizer> {
    const mt = new ModelTokenizer(name, dir, opts.maxModelLen ?? 0, opts.prefixCache, opts.engine ?? 'auto');
    await mt.probeSpecials();
    return mt;
  }

  private async probeSpecials(): Promise<void> {
    const probe = 'kvrouter probe';
    const [plain, withSpecial] = await Promise.all([this.engine.encode(probe, false), this.engine.encode(probe, true)]);
    const at = indexOfSeq(withSpecial, plain);
    if (at < 0) {
      this.specialsAreAffixes = false;
      return;
    }
    this.specialPrefix = withSpecial.slice(0, at);
    this.specialSuffix = withSpecial.slice(at + plain.length);
  }

  /** 'fast-bpe' (in-process) or 'native' (HF tokenizers through napi). */
  get engineName(): 'fast-bpe' | 'native' {
    return this.fast ? 'fast-bpe' : 'native';
  }

  get hasChatTemplate(): boolean {
    return this.templateCtx !== undefined;
  }

  /** Tokenize text as `tokenizer(text, add_special_tokens=...)` does. */
  async encodeText(text: string, addSpecialTokens: boolean, stats?: EncodeStats): Promise<number[]> {
    const ids = await this.encodeIds(text, addSpecialTokens, stats);
    return Array.from(ids);
  }

  /**
   * encodeText's ids as a Uint32Array (the router's form: no JS array of numbers on the request
   * path). With `opts.signal`, work stops at the next chunk once it aborts (TokenizeAbortedError);
   * with `opts.maxTokens`, a text that provably exceeds it is refused first (ContextLengthError).
   */
  async encodeIds(text: string, addSpecialTokens: boolean, stats?: EncodeStats, opts: EncodeOptions = {}): Promise<Uint32Array> {
    return this.encodeIdsSync(text, addSpecialTokens, stats, opts) ?? this.encodeIdsOffLoop(text, addSpecialTokens, stats, opts);
  }

  /** encodeIds without the on-the-spot attempt (for a caller whose encodeIdsSync gave up). */
  async encodeIdsOffLoop(text: string, addSpecialTokens: boolean, stats?: EncodeStats, opts: EncodeOptions = {}): Promise<Uint32Array> {
    const signal = opts.signal;
    throwIfAborted(signal);
    if (opts.maxTokens !== undefined) await this.checkBound(text, opts.maxTokens, signal);
    const affixable = !addSpecialTokens || this.specialsAreAffixes;
    if (!this.cache || text.length < this.cache.minChars || !affixable) {
      const fastIds = this.fast && affixable && text.length <= SYNC_MAX_CHARS ? this.fast.encode(text) : null;
      throwIfAborted(signal);
      const ids = fastIds ? this.withAffixes(fastIds, addSpecialTokens) : Uint32Array.from(await this.engine.encode(text, addSpecialTokens));
      if (stats) stats.missTokens += ids.length;
      return ids;
    }
    const r = await this.cache.encode(text, (texts) => (this.fast ? this.encodeChunks(this.fast, texts, signal) : this.encodeNative(texts, signal)));
    if (stats) {
      stats.hitTokens += r.hitTokens;
      stats.missTokens += r.missTokens;
    }
    return this.withAffixes(r.ids, addSpecialTokens);
  }

  /**
   * encodeIds on the spot, for a text whose whole cost is bounded: the in-process encoder, at most
   * SYNC_MAX_CHARS, uncached BPE work within one work budget (DEFAULT_WORK_BUDGET, ~3 ms) across all
   * its chunks, and no context bound to check (not longer than `opts.maxTokens`). Undefined when
   * any of that fails: encodeIds then does the rest off the event loop. A 1k-token chat is
   * tokenized here with no promise, timer or cache bookkeeping for other requests.
   */
  encodeIdsSync(text: string, addSpecialTokens: boolean, stats?: EncodeStats, opts: EncodeOptions = {}): Uint32Array | undefined {
    const fast = this.fast;
    if (!fast || text.length > SYNC_MAX_CHARS || (opts.maxTokens !== undefined && text.length > opts.maxTokens)) return undefined;
    if (addSpecialTokens && !this.specialsAreAffixes) return undefined;
    throwIfAborted(opts.signal);
    const cache = this.cache;
    if (!cache || text.length < cache.minChars) {
      const ids = fast.encode(text);
      if (!ids) return undefined;
      if (stats) stats.missTokens += ids.length;
      return this.withAffixes(ids, addSpecialTokens);
    }
    let budget = DEFAULT_WORK_BUDGET;
    const r = cache.encodeSync(text, (chunk) => {
      const ids = budget > 0 ? fast.encode(chunk, budget) : null;
      budget -= fast.work;
      if (ids) this.chunksEncoded++;
      return ids;
    });
    if (!r) return undefined;
    if (stats) {
      stats.hitTokens += r.hitTokens;
      stats.missTokens += r.missTokens;
    }
    return this.withAffixes(r.ids, addSpecialTokens);
  }

  /** ContextLengthError when `text` provably becomes more than `maxTokens` tokens (counted in ~1 ms slices). */
  private async checkBound(text: string, maxTokens: number, signal: AbortSignal | undefined): Promise<void> {
    const b = this.bound;
    if (!b || text.length <= maxTokens) return; // short texts: not worth a pass (vLLM checks exactly)
    const lb = new TokenLowerBound(b);
    for (let start = 0; start < text.length; ) {
      if (start > 0) {
        await nextTurn();
        throwIfAborted(signal);
      }
      const end = sliceEnd(text, start);
      lb.add(text, start, end);
      start = end;
      const least = lb.value();
      if (least > maxTokens) throw new ContextLengthError(maxTokens, least);
    }
  }

  /** Chunks through the native engine in groups of ~NATIVE_GROUP_CHARS, stopping between groups once aborted. */
  private async encodeNative(texts: string[], signal: AbortSignal | undefined): Promise<number[][]> {
    const out: number[][] = [];
    for (let i = 0; i < texts.length; ) {
      throwIfAborted(signal);
      let j = i;
      let chars = 0;
      while (j < texts.length && (j === i || chars + texts[j].length <= NATIVE_GROUP_CHARS)) chars += texts[j++].length;
      for (const ids of await this.engine.encodeMany(texts.slice(i, j), false)) out.push(ids);
      this.chunksEncoded += j - i;
      i = j;
    }
    return out;
  }

  private withAffixes(ids: ArrayLike<number>, addSpecialTokens: boolean): Uint32Array {
    const pre = addSpecialTokens ? this.specialPrefix : [];
    const post = addSpecialTokens ? this.specialSuffix : [];
    if (pre.length === 0 && post.length === 0) return ids instanceof Uint32Array ? ids : Uint32Array.from(ids);
    const out = new Uint32Array(pre.length + ids.length + post.length);
    out.set(pre);
    out.set(ids, pre.length);
    out.set(post, pre.length + ids.length);
    return out;
  }

  /**
   * Chunks (cut at exact cuts) through the in-process encoder, yielding to the event loop
   * every YIELD_MS; a chunk it refuses (NFC-risk character) or one too long to encode in one
   * go (a huge unbroken word) goes to the native engine.
   */
  private async encodeChunks(fast: FastBpeTokenizer, texts: string[], signal: AbortSignal | undefined): Promise<number[][]> {
    const out: number[][] = [];
    let since = performance.now();
    for (const t of texts) {
      const ids = t.length <= SYNC_MAX_CHARS ? fast.encode(t) : null;
      if (!ids) throwIfAborted(signal);
      out.push(ids ?? (await this.engine.encode(t, false)));
      this.chunksEncoded++;
      if (performance.now() - since > YIELD_MS) {
        await nextTurn();
        throwIfAborted(signal);
        since = performance.now();
      }
    }
    return out;
  }

  renderChat(messages: unknown, opts: ChatOptions = {}): string {
    return renderChat(this.template(), messages, opts);
  }

  /**
   * renderChat without holding the event loop: short chats (or ones a direct renderer covers)
   * inline, the rest in the render worker, abandoned when `signal` aborts.
   */
  async renderChatAsync(messages: unknown, opts: ChatOptions = {}, signal?: AbortSignal): Promise<string> {
    const inline = this.renderChatInline(messages, opts, signal);
    if (inline !== undefined) return inline;
    const ctx = this.template();
    const job = { template: this.chatTemplate!, contentFormat: ctx.contentFormat, specialTokens: ctx.specialTokens, messages, opts };
    return chatRenderWorker().render(job, signal);
  }

  /** renderChatAsync's inline cases, on the spot; undefined when the chat goes to the render worker. */
  renderChatInline(messages: unknown, opts: ChatOptions = {}, signal?: AbortSignal): string | undefined {
    const ctx = this.template();
    throwIfAborted(signal);
    const n = Array.isArray(messages) ? messages.length : 0;
    if (n <= INLINE_JINJA_MESSAGES) return renderChat(ctx, messages, opts);
    if (n <= INLINE_DIRECT_MESSAGES) return renderChatDirect(ctx, messages, opts);
    return undefined;
  }

  private template(): TemplateContext {
    if (!this.templateCtx)
      throw new TokenizeError(`model "${this.name}" has no chat template (no chat_template in ${join(this.dir, 'tokenizer_config.json')} and no chat_template.jinja)`, 400);
    return this.templateCtx;
  }

  /** vLLM's chat path: render, then encode with add_special_tokens=false. */
  async encodeChat(messages: unknown, opts: ChatOptions = {}, stats?: EncodeStats): Promise<number[]> {
    return this.encodeText(this.renderChat(messages, opts), false, stats);
  }

  cacheStats(): PrefixCacheStats | undefined {
    return this.cache?.caching ? this.cache.stats() : undefined;
  }

  clearCache(): void {
    this.cache?.clear();
  }
}

/**
 * transformers' LlamaTokenizerFast / GemmaTokenizerFast (and CodeLlama) rebuild the
 * post-processor from add_bos_token (default true) and add_eos_token (default false), so a
 * tokenizer_config can add or drop BOS/EOS whatever tokenizer.json says. Other classes keep
 * tokenizer.json's post-processor.
 */
function bosEosFromConfig(cfg: Record<string, unknown>): { bos: string | null; eos: string | null } | undefined {
  if (typeof cfg.tokenizer_class !== 'string' || !/^(Llama|CodeLlama|Gemma)Tokenizer(Fast)?$/.test(cfg.tokenizer_class)) return undefined;
  const addBos = cfg.add_bos_token === undefined ? true : Boolean(cfg.add_bos_token);
  const addEos = Boolean(cfg.add_eos_token ?? false);
  const bos = tokenContent(cfg.bos_token);
  const eos = tokenContent(cfg.eos_token);
  if (addBos && bos === undefined) throw new TokenizeError('tokenizer_config sets add_bos_token but has no bos_token', 500);
  if (addEos && eos === undefined) throw new TokenizeError('tokenizer_config sets add_eos_token but has no eos_token', 500);
  return { bos: addBos ? bos! : null, eos: addEos ? eos! : null };
}

/**
 * Loaded engines shared process-wide by file content (a tokenizer.json is ~10 MB and ~1 s to
 * load; a simulator hosting many pods, or several registries, should load it once).
 */
const sharedEngines = new Map<string, { engine: HfTokenizerEngine; safety: CutSafety; fast: FastBpeTokenizer | { unsupported: string }; bound: TokenBound | undefined }>();

function loadShared(path: string, bosEos: { bos: string | null; eos: string | null } | undefined) {
  const raw = readTokenizerJson(path);
  const key = `${createHash('sha1').update(raw).digest('hex')}|${bosEos ? `${bosEos.bos}|${bosEos.eos}` : '-'}`;
  let entry = sharedEngines.get(key);
  if (!entry) {
    const text = raw.toString('utf8');
    const engine = HfTokenizerEngine.fromString(text);
    if (bosEos) engine.setBosEos(bosEos.bos, bosEos.eos);
    const json = JSON.parse(text) as Record<string, unknown>;
    const safety = cutSafety(json);
    // The in-process encoder relies on the same pipeline facts as the exact cuts.
    const fast = safety.ok ? FastBpeTokenizer.fromJson(json) : { unsupported: `prefix cuts unsupported: ${safety.reason}` };
    // The bound's argument holds for the byte-level family the exact cuts are checked for.
    entry = { engine, safety, fast, bound: safety.ok ? tokenBoundOf(json) : undefined };
    sharedEngines.set(key, entry);
  }
  return entry;
}

function loadChatTemplate(dir: string, tokConfig: Record<string, unknown>): string | undefined {
  // Newer transformers save the template as chat_template.jinja beside tokenizer_config.json.
  const jinja = join(dir, 'chat_template.jinja');
  if (existsSync(jinja)) return readFileSync(jinja, 'utf8');
  const t = tokConfig.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    // Named templates: transformers picks "default".
    const def = t.find((x) => x && typeof x === 'object' && (x as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
    if (def && typeof def.template === 'string') return def.template;
  }
  const jsonPath = join(dir, 'chat_template.json');
  if (existsSync(jsonPath)) {
    const j = readJson(jsonPath);
    if (typeof j.chat_template === 'string') return j.chat_template;
  }
  return undefined;
}

function indexOfSeq(hay: number[], needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
