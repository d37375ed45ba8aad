// Per-model tokenizers, loaded on first use and shared by every caller.
import { Registry } from 'prom-client';
import { FastHistogram, Tally, type HistogramSeries } from '../util/fast-metrics.js';
import { downloadTokenizer } from './download.js';
import { defaultHfCacheDir, locateTokenizer, type Located } from './locate.js';
import { ModelTokenizer, type EncodeStats, type EngineChoice } from './model-tokenizer.js';
import type { PrefixCacheOptions, PrefixCacheStats } from './prefix-cache.js';
import {
  TokenizeAbortedError,
  TokenizeError,
  UnknownModelError,
  type ChatMessage,
  type ChatOptions,
  type EncodeOptions,
  type TokenizeRequest,
  type TokenizeResult,
} from './types.js';

export interface TokenizerRegistryOptions {
  /** model name -> directory holding tokenizer.json (+ tokenizer_config.json, config.json). */
  modelDirs?: Record<string, string>;
  /** Directories searched as dir/<org>/<name> and dir/<org--name>. */
  searchDirs?: string[];
  /** Hugging Face hub cache; default $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub. */
  hfCacheDir?: string;
  /** Fetch unknown tokenizers from the hub into hfCacheDir. Default false. */
  allowDownload?: boolean;
  /** Hub base URL for downloads; default $HF_ENDPOINT or the public hub. */
  hubEndpoint?: string;
  prefixCache?: PrefixCacheOptions;
  /**
   * 'auto' (default): the in-process BPE encoder for tokenizers it reproduces exactly
   * (byte-level BPE with the Qwen2 or Llama-3 split), the native HF engine otherwise;
   * 'native': always the native engine. Default: $KVROUTER_TOKENIZER_ENGINE if set, else 'auto'.
   */
  engine?: EngineChoice;
  /** Override max_model_len per model (default: from config.json). */
  maxModelLen?: Record<string, number>;
  /** Model used by /tokenize when a request names none. */
  defaultModel?: string;
  registry?: Registry;
}

const DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
type Kind = 'completion' | 'chat';

/** Tokenizer metrics; observing one tokenization is a few additions (no label hashing). */
class Metrics {
  readonly requests: Tally<'kind' | 'outcome'>;
  readonly tokens: Tally<'cache'>;
  readonly duration: Record<Kind, HistogramSeries>;
  constructor(registry: Registry) {
    this.requests = new Tally('kvrouter_tokenize_requests_total', 'Tokenizations by kind (completion, chat) and outcome', ['kind', 'outcome'], registry);
    this.tokens = new Tally('kvrouter_tokenize_tokens_total', 'Tokens produced, by whether the prefix token cache supplied them (hit) or the tokenizer did (miss)', ['cache'], registry);
    const h = new FastHistogram<'kind'>('kvrouter_tokenize_duration_seconds', 'Time to tokenize one prompt or chat (template rendering included)', DURATION_BUCKETS, registry);
    this.duration = { completion: h.labelled('completion', () => ({ kind: 'completion' })), chat: h.labelled('chat', () => ({ kind: 'chat' })) };
  }
}

/** Several TokenizerRegistry instances may share one prom Registry: they share its metrics. */
const metricsByRegistry = new WeakMap<Registry, Metrics>();
function metricsFor(registry: Registry | undefined): Metrics {
  if (!registry) return new Metrics(new Registry());
  let m = metricsByRegistry.get(registry);
  if (!m) metricsByRegistry.set(registry, (m = new Metrics(registry)));
  return m;
}

export class TokenizerRegistry {
  private readonly models = new Map<string, Promise<ModelTokenizer>>();
  /** The tokenizers loaded so far: a request for one of them is served without awaiting its load. */
  private readonly loaded = new Map<string, ModelTokenizer>();
  private readonly metrics: Metrics;
  private closed = false;

  private constructor(private readonly opts: TokenizerRegistryOptions) {
    this.metrics = metricsFor(opts.registry);
  }

  /** The engine choice in force (option, else $KVROUTER_TOKENIZER_ENGINE, else 'auto'). */
  get engine(): EngineChoice {
    const env = process.env.KVROUTER_TOKENIZER_ENGINE;
    if (this.opts.engine) return this.opts.engine;
    if (env === undefined || env === '') return 'auto';
    if (env !== 'auto' && env !== 'native') throw new TokenizeError(`KVROUTER_TOKENIZER_ENGINE must be 'auto' or 'native', not ${JSON.stringify(env)}`, 500);
    return env;
  }

  static async create(opts: TokenizerRegistryOptions = {}): Promise<TokenizerRegistry> {
    const reg = new TokenizerRegistry(opts);
    void reg.engine; // a bad KVROUTER_TOKENIZER_ENGINE fails here, at startup
    return reg;
  }

  get defaultModel(): string | undefined {
    return this.opts.defaultModel;
  }

  private locate(model: string): Located | { looked: string[] } {
    return locateTokenizer(model, { modelDirs: this.opts.modelDirs, searchDirs: this.opts.searchDirs, hfCacheDir: this.opts.hfCacheDir });
  }

  /** The loaded tokenizer of a model (throws UnknownModelError listing every place looked). */
  async get(model: string): Promise<ModelTokenizer> {
    if (this.closed) throw new Error('TokenizerRegistry is closed');
    if (typeof model !== 'string' || model === '') throw new TokenizeError('model must be a non-empty string', 400, 'BadRequestError', 'model');
    let p = this.models.get(model);
    if (!p) {
      p = this.load(model);
      this.models.set(model, p);
      // A failed load is not cached: the files may appear later.
      p.then(
        (mt) => void (this.models.get(model) === p && !this.closed && this.loaded.set(model, mt)),
        () => this.models.delete(model),
      );
    }
    return p;
  }

  private async load(model: string): Promise<ModelTokenizer> {
    const found = this.locate(model);
    let dir: string;
    let known: number | undefined;
    if ('dir' in found) {
      dir = found.dir;
      known = found.maxModelLen;
    } else if (this.opts.allowDownload) {
      dir = await downloadTokenizer(model, this.opts.hfCacheDir ?? defaultHfCacheDir(), this.opts.hubEndpoint);
    } else {
      throw new UnknownModelError(model, [...found.looked, 'hub download (off: allowDownload is false)']);
    }
    return ModelTokenizer.load(model, dir, { maxModelLen: this.opts.maxModelLen?.[model] ?? known, prefixCache: this.opts.prefixCache, engine: this.engine });
  }

  /** Whether a tokenizer for the model is loaded or can be found locally. */
  async has(model: string): Promise<boolean> {
    if (this.models.has(model)) {
      try {
        await this.models.get(model);
        return true;
      } catch {
        return false;
      }
    }
    return 'dir' in this.locate(model);
  }

  private count(stats: EncodeStats): void {
    if (stats.hitTokens) this.metrics.tokens.add('hit', () => ({ cache: 'hit' }), stats.hitTokens);
    if (stats.missTokens) this.metrics.tokens.add('miss', () => ({ cache: 'miss' }), stats.missTokens);
  }

  private async timed<T>(kind: Kind, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      const r = await fn();
      this.succeeded(kind, t0);
      return r;
    } catch (e) {
      this.failed(kind, t0, e);
      throw e;
    }
  }

  private succeeded(kind: Kind, t0: number): void {
    this.metrics.requests.add(kind === 'chat' ? 'chat\u0000ok' : 'completion\u0000ok', () => ({ kind, outcome: 'ok' }));
    this.metrics.duration[kind].observe((performance.now() - t0) / 1000);
  }

  private failed(kind: Kind, t0: number, e: unknown): void {
    const outcome = e instanceof TokenizeAbortedError ? 'aborted' : 'error';
    this.metrics.requests.add(`${kind}\u0000${outcome}`, () => ({ kind, outcome }));
    this.metrics.duration[kind].observe((performance.now() - t0) / 1000);
  }

  /** Prompt ids as vLLM's completions path computes them; token-id prompts pass through. */
  async encodeCompletion(model: string, prompt: string | number[], addSpecialTokens = true): Promise<number[]> {
    if (Array.isArray(prompt)) {
      return this.timed('completion', async () => validateIds(prompt, (await this.get(model)).engine.vocabSize()));
    }
    return Array.from(await this.encodeCompletionIds(model, prompt, addSpecialTokens));
  }

  /** A loaded model's text: encoded on the spot when short enough (ModelTokenizer.encodeIdsSync: no awaits), else off the loop. */
  private async encodeLoaded(kind: Kind, mt: ModelTokenizer, text: string, addSpecialTokens: boolean, opts: EncodeOptions | undefined, t0: number): Promise<Uint32Array> {
    const stats: EncodeStats = { hitTokens: 0, missTokens: 0 };
    try {
      const ids = mt.encodeIdsSync(text, addSpecialTokens, stats, opts) ?? (await mt.encodeIdsOffLoop(text, addSpecialTokens, stats, opts));
      this.count(stats);
      this.succeeded(kind, t0);
      return ids;
    } catch (e) {
      this.failed(kind, t0, e);
      throw e;
    }
  }

  /** encodeCompletion of a text prompt, as a Uint32Array (the router's form); `opts`: abort signal, context cap. */
  async encodeCompletionIds(model: string, prompt: string, addSpecialTokens = true, opts?: EncodeOptions): Promise<Uint32Array> {
    const mt = this.loaded.get(model);
    if (mt && typeof prompt === 'string') return this.encodeLoaded('completion', mt, prompt, addSpecialTokens, opts, performance.now());
    return this.timed('completion', async () => {
      const mt = await this.get(model);
      if (typeof prompt !== 'string') throw new TokenizeError('prompt must be a string or an array of token ids', 400, 'BadRequestError', 'prompt');
      const stats: EncodeStats = { hitTokens: 0, missTokens: 0 };
      const ids = await mt.encodeIds(prompt, addSpecialTokens, stats, opts);
      this.count(stats);
      return ids;
    });
  }

  async encodeChat(model: string, messages: ChatMessage[], opts: ChatOptions = {}): Promise<number[]> {
    return Array.from(await this.encodeChatWith(model, messages, opts, false));
  }

  /** encodeChat as a Uint32Array (the router's form); `encode`: abort signal, context cap. */
  async encodeChatIds(model: string, messages: ChatMessage[], opts: ChatOptions = {}, encode?: EncodeOptions): Promise<Uint32Array> {
    return this.encodeChatWith(model, messages, opts, false, encode);
  }

  /** Render then encode; vLLM's chat path uses add_special_tokens=false unless asked. */
  private async encodeChatWith(model: string, messages: ChatMessage[], opts: ChatOptions, addSpecialTokens: boolean, encode?: EncodeOptions): Promise<Uint32Array> {
    const mt = this.loaded.get(model);
    if (mt) {
      // Loaded and rendered inline (a 1k-token chat): encoded as a loaded completion is
      const t0 = performance.now();
      let text: string | undefined;
      try {
        text = mt.renderChatInline(messages, opts, encode?.signal);
      } catch (e) {
        this.failed('chat', t0, e);
        throw e;
      }
      if (text !== undefined) return this.encodeLoaded('chat', mt, text, addSpecialTokens, encode, t0);
    }
    return this.timed('chat', async () => {
      const mt = await this.get(model);
      const stats: EncodeStats = { hitTokens: 0, missTokens: 0 };
      const ids = await mt.encodeIds(await mt.renderChatAsync(messages, opts, encode?.signal), addSpecialTokens, stats, encode);
      this.count(stats);
      return ids;
    });
  }

  async renderChat(model: string, messages: ChatMessage[], opts: ChatOptions = {}): Promise<string> {
    return (await this.get(model)).renderChat(messages, opts);
  }

  /** vLLM's /tokenize semantics for an already-validated request. */
  async tokenize(req: TokenizeRequest): Promise<TokenizeResult> {
    const mt = await this.get(req.model);
    let tokens: number[];
    if (req.messages !== undefined) {
      if (req.prompt !== undefined) throw new TokenizeError('give either prompt or messages, not both', 400, 'BadRequestError', 'prompt');
      // Chat requests default to no extra special tokens (the template has them).
      tokens = Array.from(await this.encodeChatWith(req.model, req.messages, req, req.add_special_tokens ?? false));
    } else if (req.prompt !== undefined) {
      tokens = await this.encodeCompletion(req.model, req.prompt, req.add_special_tokens ?? true);
    } else {
      throw new TokenizeError('either prompt or messages is required', 400, 'BadRequestError', 'prompt');
    }
    return { count: tokens.length, max_model_len: mt.maxModelLen, tokens };
  }

  /** Vocabulary strings of ids (vLLM's token_strs, e.g. "Ġworld"). */
  async tokenStrings(model: string, ids: number[]): Promise<(string | null)[]> {
    const mt = await this.get(model);
    return ids.map((id) => mt.engine.idToToken(id));
  }

  /** Prefix token cache counters of a loaded model (undefined when its cache is off). */
  async cacheStats(model: string): Promise<PrefixCacheStats | undefined> {
    return (await this.get(model)).cacheStats();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.models.clear();
    this.loaded.clear();
  }
}

function validateIds(ids: unknown[], vocabSize: number): number[] {
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
      throw new TokenizeError(`prompt[${i}] is not a token id (non-negative integer)`, 400, 'BadRequestError', 'prompt');
    if (v >= vocabSize) throw new TokenizeError(`prompt[${i}] = ${v} is out of vocabulary (size ${vocabSize})`, 400, 'BadRequestError', 'prompt');
  }
  return ids as number[];
}
