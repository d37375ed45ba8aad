// The simulated vLLM engine core: a V1-style scheduler (continuous batching, chunked prefill,
// running requests first, preemption by recompute), the block pool, and a step clock whose
// duration comes from the timing model. Per-step work is proportional to what changed: block
// hashes are computed once per block as tokens are appended, decode tokens are batched.
import { BlockPool, type EventFieldValues } from './blockPool.js';
import type { BlockHasher, ExtraKey } from './hashing.js';
import type { SimClock, Timer } from './clock.js';
import type { KvEvent } from './events.js';
import { stepSeconds, type TimingModel } from './timing.js';
import { OutputArena } from './output-arena.js';
import { TokenSeq, type PromptTokens } from './tokens.js';
import { BoundedMemo, PROMPT_MEMO_BYTES } from '../util/bounded-memo.js';

export interface EngineConfig {
  blockSize: number;
  numGpuBlocks: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number;
  timing: TimingModel;
  hasher: BlockHasher;
  eventsEnabled: boolean;
  eventFields: EventFieldValues;
  /** The block pool keeps each cached block's token ids for snapshot() (tests); off by default. */
  keepBlockTokens?: boolean;
  clock: SimClock;
  /** Output token ids: random ids from a seeded generator, or the prompt echoed back. */
  outputMode: 'random' | 'echo';
  seed?: number;
}

export interface EngineListener {
  /** One engine step's events, in occurrence order (called only when non-empty). */
  onEvents?(events: KvEvent[]): void;
  /** A request entered scheduling with no computed tokens (prefix cache query). */
  onPrefixQuery?(queries: number, hits: number): void;
  onPreemption?(req: EngineRequest): void;
  onFinish?(req: EngineRequest): void;
  /** Tokens were appended to `req` at model time `now` (before its own onTokens). */
  onTokens?(req: EngineRequest, now: number): void;
  onStep?(prefillTokens: number, decodeSeqs: number, seconds: number): void;
}

export interface SubmitOptions {
  /** Not to be mutated after submit (the engine remembers a prompt array's block hashes). */
  promptTokens: PromptTokens;
  maxTokens: number;
  cacheSalt?: string | null;
  loraName?: string | null;
  /** The adapter's numeric id (vLLM lora_int_id), reported as lora_id in BlockStored. */
  loraId?: number | null;
  /** Called at the end of each step that appended output tokens to this request. */
  onTokens?(req: EngineRequest, newTokens: number): void;
  /** Called at the end of the step that produced the first output token. */
  onFirstToken?(req: EngineRequest): void;
  onFinish?(req: EngineRequest): void;
}

export type FinishReason = 'length' | 'stop' | 'abort';

let nextRequestSeq = 0;

/**
 * The prompt blocks' hashes per prompt array (no LoRA, no salt) and hasher identity: a benchmark
 * re-sends the same arrays to many engines, and a prompt's hashes depend only on its tokens and
 * the hasher (algorithm, NONE_HASH, block size), so each is hashed once per process, not once per
 * engine. Bounded (PROMPT_MEMO_BYTES of the hash objects, string keys and arrays it keeps), so
 * memory stays flat however many distinct prompts a run sends; prompts beyond it are hashed per
 * request, from the hashes of the prefix they share with a memoized prompt (below).
 */
interface PromptHashes {
  identity: string;
  hashes: Buffer[];
  keys: string[];
}
const promptHashMemo = new BoundedMemo<PromptTokens, PromptHashes>(PROMPT_MEMO_BYTES);

/**
 * The latest memoized prompt per first-block hash key. A prompt first seen hashes its block 0,
 * and if a memoized prompt starts with the same block, the blocks the two share token for token
 * take that prompt's hashes (the chain up to a block depends only on the tokens up to its end and
 * the hasher): the prompts of a shared_prefix group hash their common system prompt once, and
 * their memo entries share its hash objects. Weak references, and cleared past a bound.
 */
const byFirstBlock = new Map<string, WeakRef<PromptTokens>>();
const FIRST_BLOCK_ENTRIES = 65_536;
/** What a memo entry keeps per block it hashed itself (digest, its Buffer view, latin1 key) and per block it only references. */
const OWN_BLOCK_BYTES = 200;
const SHARED_BLOCK_BYTES = 16;
const ENTRY_BYTES = 256;

/** Tokens a and b share from the start (up to `max`). */
function commonPrefix(a: PromptTokens, b: PromptTokens, max: number): number {
  let i = 0;
  while (i < max && a[i] === b[i]) i++;
  return i;
}

export class EngineRequest {
  // The fields every decode step reads come first, so a step touches one cache line of each
  // running request (fields are laid out in declaration order): at 64 pods thousands of
  // requests run, and the per-token loop was bound by memory, not by its arithmetic.
  state: 'waiting' | 'running' | 'done' = 'waiting';
  aborted = false;
  numComputed = 0;
  /** Output tokens so far; the sequence holds promptLen + outputCount tokens. */
  outputCount = 0;
  readonly promptLen: number;
  readonly maxTokens: number;
  /** How many of `blocks` are registered in the cache (vLLM num_cached_block). */
  numCachedBlocks = 0;
  /**
   * allocate_slots is a no-op (no new block, no block becoming full) while numComputed + new
   * tokens stays at or below this; 0 forces the full check.
   */
  slotsNoopUntil = 0;
  /** The engine's output-arena chunk holding this request's tokens (null: the sequence's own array). */
  outChunk: Uint32Array | null = null;
  /** Offset of the request's region in outChunk, its size, and its arena id. */
  outAt = 0;
  outCap = 0;
  outId = -1;
  /** Prompt (the caller's array, shared) then output token ids. */
  readonly seq: TokenSeq;
  /** opts.onTokens, or null (read per token without touching opts). */
  readonly onTokens: ((req: EngineRequest, newTokens: number) => void) | null;
  readonly id: string;
  blockHashes: Buffer[] = [];
  blockHashKeys: string[] = [];
  /**
   * The two arrays above are the prompt-hash memo's, shared by every request with that prompt
   * (copied before the first output block extends them): a queued request held two private
   * copies of one entry per prompt block, and at 256 pods ~20,000 requests wait in queues.
   */
  hashesShared = false;
  readonly cacheSalt: string | null;
  readonly loraName: string | null;
  readonly loraId: number | null;
  /** Block ids held, in sequence order. */
  blocks: number[] = [];
  /** Prompt tokens served from the prefix cache at first scheduling (-1 until then). */
  cachedTokens = -1;
  arrival: number;
  firstScheduled = -1;
  firstToken = -1;
  /** Model time of the latest output token (metrics: inter-token latency). */
  lastTokenTime = -1;
  finished = -1;
  finishReason: FinishReason | null = null;
  preemptions = 0;
  readonly opts: SubmitOptions;

  constructor(opts: SubmitOptions, arrival: number, arena?: OutputArena) {
    this.id = `req-${nextRequestSeq++}`;
    const id = arena === undefined ? -1 : arena.alloc(opts.maxTokens);
    if (arena !== undefined && id >= 0) {
      this.outChunk = arena.chunkOf(id);
      this.outAt = arena.offsetOf(id);
      this.outCap = opts.maxTokens;
      this.outId = id;
      this.seq = new TokenSeq(opts.promptTokens, opts.maxTokens, this.outChunk.subarray(this.outAt, this.outAt + this.outCap), this);
    } else this.seq = new TokenSeq(opts.promptTokens, opts.maxTokens, undefined, this);
    this.promptLen = opts.promptTokens.length;
    this.maxTokens = opts.maxTokens;
    this.onTokens = opts.onTokens ?? null;
    this.cacheSalt = opts.cacheSalt ?? null;
    this.loraName = opts.loraName ?? null;
    this.loraId = opts.loraId ?? null;
    this.arrival = arrival;
    this.opts = opts;
  }

  /** vLLM's generate_block_hash_extra_keys: LoRA name, then cache_salt on block 0 only. */
  extraKeysOf(blockIndex: number): readonly ExtraKey[] | null {
    if (this.loraName === null && (blockIndex !== 0 || this.cacheSalt === null)) return null;
    const keys: ExtraKey[] = [];
    if (this.loraName !== null) keys.push(this.loraName);
    if (blockIndex === 0 && this.cacheSalt !== null) keys.push(this.cacheSalt);
    return keys.length === 0 ? null : keys;
  }

  /** Prompt then output token ids (a copy; the engine keeps them in `seq`). */
  get tokens(): number[] {
    return this.seq.slice(0, this.seq.length);
  }

  get outputTokens(): number[] {
    return Array.from(this.seq.output.subarray(0, this.seq.outputLen));
  }
}

/** A double-ended queue (waiting requests; preempted ones go back to the front). */
class Deque<T> {
  private items: (T | undefined)[] = new Array(16);
  private head = 0;
  size = 0;

  private grow(): void {
    const n = this.items.length;
    const next = new Array<T | undefined>(n * 2);
    for (let i = 0; i < this.size; i++) next[i] = this.items[(this.head + i) % n];
    this.items = next;
    this.head = 0;
  }
  push(x: T): void {
    if (this.size === this.items.length) this.grow();
    this.items[(this.head + this.size) % this.items.length] = x;
    this.size++;
  }
  unshift(x: T): void {
    if (this.size === this.items.length) this.grow();
    this.head = (this.head - 1 + this.items.length) % this.items.length;
    this.items[this.head] = x;
    this.size++;
  }
  peek(): T | undefined {
    return this.size === 0 ? undefined : this.items[this.head];
  }
  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const x = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.size--;
    return x;
  }
  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.size; i++) out.push(this.items[(this.head + i) % this.items.length] as T);
    return out;
  }
  /** Removes every element matching `pred` (O(size)). */
  removeWhere(pred: (x: T) => boolean): T[] {
    const kept: T[] = [];
    const removed: T[] = [];
    while (this.size > 0) {
      const x = this.shift() as T;
      (pred(x) ? removed : kept).push(x);
    }
    for (const x of kept) this.push(x);
    return removed;
  }
}

export class Engine {
  readonly cfg: EngineConfig;
  readonly pool: BlockPool;
  private readonly waiting = new Deque<EngineRequest>();
  private running: EngineRequest[] = [];
  private stepTimer: Timer | null = null;
  private stepping = false;
  private hasAborts = false;
  private rng: number;
  listener: EngineListener = {};
  /**
   * When it returns true the engine does not start a step (vLLM's scheduler blocks in
   * publish() while the event queue holds max_queue_size batches); it retries 1 ms later.
   */
  stalled: (() => boolean) | null = null;
  stallRetries = 0;
  stopped = false;
  // Counters since start (metrics read them).
  steps = 0;
  busySeconds = 0;
  promptTokensTotal = 0;
  generationTokensTotal = 0;
  preemptionsTotal = 0;
  prefixQueries = 0;
  prefixHits = 0;

  constructor(cfg: EngineConfig) {
    if (cfg.numGpuBlocks * cfg.blockSize < cfg.maxModelLen) {
      // vLLM refuses to start when one max-length sequence cannot fit the KV cache.
      throw new Error(`max_model_len ${cfg.maxModelLen} exceeds KV cache capacity ${cfg.numGpuBlocks * cfg.blockSize} tokens`);
    }
    this.cfg = cfg;
    this.hashIdentity = `${cfg.hasher.algo}:${cfg.blockSize}:${cfg.hasher.noneHash.toString('latin1')}`;
    this.pool = new BlockPool(cfg.numGpuBlocks, cfg.blockSize, cfg.eventsEnabled, cfg.eventFields, cfg.keepBlockTokens);
    this.rng = (cfg.seed ?? 0x9e3779b9) >>> 0 || 1;
  }

  get numRunning(): number {
    return this.running.length;
  }

  get numWaiting(): number {
    return this.waiting.size;
  }

  /** Distinct LoRA adapters of running and waiting requests (vllm:lora_requests_info). */
  loraAdapters(): { running: string[]; waiting: string[] } {
    const running = new Set<string>();
    const waiting = new Set<string>();
    for (const r of this.running) if (r.loraName !== null) running.add(r.loraName);
    for (const r of this.waiting.toArray()) if (r.loraName !== null) waiting.add(r.loraName);
    return { running: [...running], waiting: [...waiting] };
  }

  /** Validates a request against max_model_len; returns an error message or null. */
  validate(promptLen: number, maxTokens: number): string | null {
    if (promptLen === 0) return 'The prompt cannot be empty.';
    if (promptLen + maxTokens > this.cfg.maxModelLen) {
      return `This model's maximum context length is ${this.cfg.maxModelLen} tokens. However, you requested ${promptLen + maxTokens} tokens (${promptLen} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`;
    }
    return null;
  }

  submit(opts: SubmitOptions): EngineRequest {
    if (this.stopped) throw new Error('engine stopped');
    const err = this.validate(opts.promptTokens.length, opts.maxTokens);
    if (err !== null) throw new Error(err);
    const req = new EngineRequest(opts, this.cfg.clock.now(), this.arena);
    this.updateHashes(req);
    this.waiting.push(req);
    this.kick();
    return req;
  }

  abort(req: EngineRequest): void {
    if (req.state === 'done' || req.aborted) return;
    req.aborted = true;
    this.hasAborts = true;
    this.kick();
  }

  /** This engine's entry in the shared prompt-hash memo: hash algorithm, NONE_HASH and block size. */
  private readonly hashIdentity: string;

  /** Extends the request's block hash chain to every full block of its known tokens. */
  private updateHashes(req: EngineRequest): void {
    const B = this.cfg.blockSize;
    const full = Math.floor(req.seq.length / B);
    if (req.blockHashes.length === 0 && req.loraName === null && req.cacheSalt === null && req.seq.length === req.promptLen) {
      const prompt = req.opts.promptTokens;
      const memo = promptHashMemo.get(prompt);
      if (memo !== undefined && memo.identity === this.hashIdentity && memo.hashes.length === full) {
        req.blockHashes = memo.hashes;
        req.blockHashKeys = memo.keys;
        req.hashesShared = true;
        return;
      }
      const shared = this.hashFromSibling(req, prompt, full);
      const entry: PromptHashes = { identity: this.hashIdentity, hashes: req.blockHashes, keys: req.blockHashKeys };
      const weight = ENTRY_BYTES + SHARED_BLOCK_BYTES * full + OWN_BLOCK_BYTES * (full - shared);
      if (promptHashMemo.set(prompt, entry, weight) && full > 0) {
        if (byFirstBlock.size >= FIRST_BLOCK_ENTRIES) byFirstBlock.clear();
        byFirstBlock.set(entry.keys[0], new WeakRef(prompt));
      }
      req.hashesShared = true;
      return;
    }
    this.hashFrom(req, req.blockHashes.length, full);
  }

  /**
   * Hashes a prompt's `full` blocks into the request's (empty, private) arrays, taking the
   * blocks it shares with a memoized prompt of the same first block from that prompt's entry;
   * returns how many were taken.
   */
  private hashFromSibling(req: EngineRequest, prompt: PromptTokens, full: number): number {
    if (full === 0) return 0;
    this.hashFrom(req, 0, 1);
    const other = byFirstBlock.get(req.blockHashKeys[0])?.deref();
    const sib = other === undefined || other === prompt ? undefined : promptHashMemo.get(other);
    let shared = 0;
    if (sib !== undefined && sib.identity === this.hashIdentity) {
      const B = this.cfg.blockSize;
      shared = Math.min(Math.floor(commonPrefix(prompt, other as PromptTokens, Math.min(prompt.length, (other as PromptTokens).length)) / B), sib.hashes.length, full);
      for (let i = 0; i < shared; i++) {
        req.blockHashes[i] = sib.hashes[i];
        req.blockHashKeys[i] = sib.keys[i];
      }
    }
    this.hashFrom(req, Math.max(1, shared), full);
    return shared;
  }

  private hashFrom(req: EngineRequest, from: number, full: number): void {
    const B = this.cfg.blockSize;
    const h = this.cfg.hasher;
    if (req.hashesShared && from < full) {
      req.blockHashes = req.blockHashes.slice();
      req.blockHashKeys = req.blockHashKeys.slice();
      req.hashesShared = false;
    }
    for (let i = from; i < full; i++) {
      const parent = i === 0 ? null : req.blockHashes[i - 1];
      const r = req.seq.range(i * B, (i + 1) * B);
      const d = h.hashBlock(parent, r.tokens, r.start, r.start + B, req.extraKeysOf(i));
      req.blockHashes.push(d);
      req.blockHashKeys.push(d.toString('latin1'));
    }
  }

  private kick(): void {
    if (this.stepping || this.stopped) return;
    this.stepping = true;
    this.stepTimer = this.cfg.clock.at(this.cfg.clock.now(), () => this.step());
  }

  private nextRandom(): number {
    // xorshift32
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x >>> 0;
    return this.rng;
  }

  private sampleToken(req: EngineRequest): number {
    if (this.cfg.outputMode === 'echo') return req.seq.prompt[req.outputCount % req.promptLen];
    return 100 + (this.nextRandom() % 30000);
  }

  /** Longest run of cached full blocks, capped so at least one prompt token is computed. */
  private findCacheHit(req: EngineRequest): number[] {
    const maxBlocks = Math.floor((req.seq.length - 1) / this.cfg.blockSize);
    const hits: number[] = [];
    const n = Math.min(maxBlocks, req.blockHashKeys.length);
    for (let i = 0; i < n; i++) {
      const b = this.pool.lookup(req.blockHashKeys[i]);
      if (b === undefined) break;
      hits.push(b);
    }
    return hits;
  }

  /** vLLM allocate_slots: reserve blocks for numNew more tokens, then cache the full ones. */
  private allocateSlots(req: EngineRequest, numNew: number, hits: number[] | null): boolean {
    const B = this.cfg.blockSize;
    const total = req.numComputed + numNew;
    if (hits === null && total <= req.slotsNoopUntil) return true;
    const pool = this.pool;
    const numHit = hits === null ? 0 : hits.length;
    const needed = Math.ceil(total / B) - req.blocks.length - numHit;
    const hitFree = hits === null ? 0 : pool.countFree(hits);
    if (needed + hitFree > pool.numFree) return false;
    if (hits !== null && numHit > 0) {
      pool.touch(hits);
      for (const b of hits) req.blocks.push(b);
      req.numCachedBlocks = numHit;
    }
    if (needed > 0) pool.getNewBlocks(needed, req.blocks);
    const numFull = Math.min(Math.floor(Math.min(total, req.seq.length) / B), req.blockHashes.length);
    if (numFull > req.numCachedBlocks) {
      pool.cacheFullBlocks(req, req.blocks, req.numCachedBlocks, numFull);
      req.numCachedBlocks = numFull;
    }
    // Until more tokens need a new block or fill the next uncached one, nothing above changes.
    req.slotsNoopUntil = Math.min(req.blocks.length * B, (req.numCachedBlocks + 1) * B - 1);
    return true;
  }

  private freeRequest(req: EngineRequest): void {
    this.pool.free(req.blocks);
    req.blocks = [];
    req.numCachedBlocks = 0;
    req.slotsNoopUntil = 0;
  }

  private preempt(req: EngineRequest): void {
    this.freeRequest(req);
    req.numComputed = 0;
    req.preemptions++;
    req.state = 'waiting';
    this.preemptionsTotal++;
    this.waiting.unshift(req);
    this.listener.onPreemption?.(req);
  }

  private purgeAborted(): void {
    if (!this.hasAborts) return;
    this.hasAborts = false;
    const now = this.cfg.clock.now();
    const done: EngineRequest[] = [];
    this.running = this.running.filter((r) => {
      if (!r.aborted) return true;
      done.push(r);
      return false;
    });
    for (const r of this.waiting.removeWhere((r) => r.aborted)) done.push(r);
    for (const r of done) {
      this.freeRequest(r);
      this.complete(r, 'abort', now);
    }
  }

  // Parallel arrays describing the step being executed: its first `schedN` entries. They are
  // overwritten, never emptied: `length = 0` drops V8's backing store, and regrowing it every
  // step was a steady stream of garbage (slots past schedN may still name finished requests).
  private readonly schedReqs: EngineRequest[] = [];
  private readonly schedNew: number[] = [];
  private schedN = 0;

  private schedule(): void {
    const reqs = this.schedReqs;
    const nums = this.schedNew;
    let n = 0;
    let budget = this.cfg.maxNumBatchedTokens;
    let preempted = false;
    const now = this.cfg.clock.now();
    // Running requests first (decode and continuing chunked prefills), in priority order.
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const req = this.running[i];
      const numNew = Math.min(req.promptLen + req.outputCount - req.numComputed, budget);
      if (numNew <= 0) continue;
      let scheduled = true;
      while (!this.allocateSlots(req, numNew, null)) {
        const victim = this.running.pop() as EngineRequest;
        this.preempt(victim);
        preempted = true;
        if (victim === req) {
          scheduled = false;
          break;
        }
      }
      if (!scheduled) break;
      reqs[n] = req;
      nums[n++] = numNew;
      budget -= numNew;
    }
    // Then waiting requests, unless this step had to preempt.
    if (!preempted) {
      while (this.waiting.size > 0 && budget > 0 && this.running.length < this.cfg.maxNumSeqs) {
        const req = this.waiting.peek() as EngineRequest;
        const hits = this.findCacheHit(req);
        req.numComputed = hits.length * this.cfg.blockSize;
        const numNew = Math.min(req.seq.length - req.numComputed, budget);
        if (!this.allocateSlots(req, numNew, hits)) {
          req.numComputed = 0;
          break;
        }
        this.waiting.shift();
        this.prefixQueries += req.seq.length;
        this.prefixHits += req.numComputed;
        this.listener.onPrefixQuery?.(req.seq.length, req.numComputed);
        if (req.cachedTokens < 0) req.cachedTokens = req.numComputed;
        if (req.firstScheduled < 0) req.firstScheduled = now;
        req.state = 'running';
        this.running.push(req);
        reqs[n] = req;
        nums[n++] = numNew;
        budget -= numNew;
      }
    }
    this.schedN = n;
  }

  private step(): void {
    this.stepTimer = null;
    if (this.stopped) return;
    if (this.stalled !== null && this.stalled()) {
      this.stallRetries++;
      this.stepTimer = this.cfg.clock.at(this.cfg.clock.now() + 0.001, () => this.step());
      return;
    }
    this.purgeAborted();
    this.schedule();
    const n = this.schedN;
    if (n === 0) {
      this.stepping = false;
      this.flushEvents();
      return;
    }
    let decodeSeqs = 0;
    let tokens = 0;
    // What the step reads and computes beyond its token count: decoding sequences read their
    // whole context's KV; a prefill chunk attends to everything before each of its tokens.
    let decodeContext = 0;
    let attnPairs = 0;
    for (let i = 0; i < n; i++) {
      const r = this.schedReqs[i];
      const k = this.schedNew[i];
      tokens += k;
      if (k === 1 && r.outputCount > 0) {
        decodeSeqs++;
        decodeContext += r.numComputed + 1;
      } else attnPairs += k * (r.numComputed + (k + 1) / 2);
    }
    const prefillTokens = tokens - decodeSeqs;
    const secs = stepSeconds(this.cfg.timing, prefillTokens, decodeSeqs, decodeContext, attnPairs);
    this.steps++;
    this.busySeconds += secs;
    this.listener.onStep?.(prefillTokens, decodeSeqs, secs);
    // schedReqs/schedNew stay as they are until finishStep: only step() reschedules, and it
    // runs again only from finishStep (kick() is a no-op while a step is in flight). Copying
    // them per step made objects that live one step of model time, which at 64 pods outlive
    // several young-generation GCs and were most of the copying the GC did.
    this.stepTimer = this.cfg.clock.at(this.cfg.clock.now() + secs, this.finishStepFn);
  }

  private readonly finishStepFn = (): void => this.finishStep();
  /** Running requests' output tokens (see OutputArena); a request leaves it when it completes. */
  private readonly arena = new OutputArena();
  /** Requests that got a token this step: a prefix of it (reused and overwritten, as schedReqs). */
  private readonly notify: EngineRequest[] = [];

  private finishStep(): void {
    this.stepTimer = null;
    if (this.stopped) return;
    const reqs = this.schedReqs;
    const nums = this.schedNew;
    const now = this.cfg.clock.now();
    let anyFinished = false;
    const notify = this.notify;
    let notified = 0;
    const n = this.schedN;
    for (let i = 0; i < n; i++) {
      const req = reqs[i];
      if (req.aborted || req.state !== 'running') continue;
      req.numComputed += nums[i];
      // promptLen + outputCount is req.seq.length (read without touching the sequence).
      if (req.numComputed < req.promptLen + req.outputCount) continue; // chunked prefill continues
      // All known tokens computed: the step samples one token.
      const token = this.sampleToken(req);
      const count = ++req.outputCount; // also the sequence's length (it reads this counter)
      const chunk = req.outChunk;
      if (chunk !== null && count <= req.outCap) chunk[req.outAt + count - 1] = token;
      else {
        this.leaveArena(req);
        req.seq.store(count - 1, token);
      }
      this.generationTokensTotal++;
      if (count === 1) {
        req.firstToken = now;
        this.promptTokensTotal += req.promptLen;
      }
      if ((req.promptLen + count) % this.cfg.blockSize === 0) this.updateHashes(req);
      notify[notified++] = req;
      if (req.outputCount >= req.maxTokens) {
        req.finishReason = 'length';
        req.state = 'done';
        anyFinished = true;
      }
    }
    if (anyFinished) {
      // In place, in order (the running order is the scheduling priority).
      const running = this.running;
      let kept = 0;
      for (let i = 0; i < running.length; i++) {
        const r = running[i];
        if (r.state !== 'done') running[kept++] = r;
        else this.freeRequest(r);
      }
      running.length = kept;
    }
    // Newer vLLM drains the pool's events after the forward pass: one batch per step.
    this.flushEvents();
    for (let i = 0; i < notified; i++) {
      const req = notify[i];
      this.listener.onTokens?.(req, now);
      if (req.onTokens !== null) req.onTokens(req, 1);
      if (req.outputCount === 1) req.opts.onFirstToken?.(req);
      if (req.state === 'done') this.complete(req, 'length', now);
    }
    if (this.running.length > 0 || this.waiting.size > 0) this.step();
    else this.stepping = false;
  }

  /** The request's tokens move to an array of their own and its arena region is reused. */
  private leaveArena(req: EngineRequest): void {
    if (req.outId < 0) return;
    req.seq.own();
    this.arena.release(req.outId, req.outCap);
    req.outChunk = null;
    req.outId = -1;
  }

  private complete(req: EngineRequest, reason: FinishReason, now: number): void {
    this.leaveArena(req);
    req.seq.detach();
    req.state = 'done';
    req.finishReason = reason;
    req.finished = now;
    this.listener.onFinish?.(req);
    req.opts.onFinish?.(req);
  }

  private flushEvents(): void {
    const ev = this.pool.events;
    if (ev === null || ev.length === 0) return;
    const batch = ev.splice(0, ev.length);
    this.listener.onEvents?.(batch);
  }

  /**
   * vLLM reset_prefix_cache: false while any block is in use. With `resetRunningRequests`
   * (vLLM's reset_running_requests=true) running requests are preempted first, so it succeeds.
   */
  resetPrefixCache(resetRunningRequests = false): boolean {
    if (resetRunningRequests) {
      // Popping from the end and pushing to the front keeps their order in the waiting queue.
      while (this.running.length > 0) this.preempt(this.running.pop() as EngineRequest);
      this.kick();
    }
    const ok = this.pool.resetPrefixCache();
    if (ok) this.flushEvents();
    return ok;
  }

  /** Stops stepping; in-flight requests are aborted (their callbacks see finish reason abort). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.stepTimer !== null) this.cfg.clock.cancel(this.stepTimer);
    this.stepTimer = null;
    const now = this.cfg.clock.now();
    const all = [...this.running];
    while (this.waiting.size > 0) all.push(this.waiting.shift() as EngineRequest);
    this.running = [];
    for (const r of all) this.complete(r, 'abort', now);
  }
}
