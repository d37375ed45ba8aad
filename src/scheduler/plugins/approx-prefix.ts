// `prefix-cache-scorer`: GIE's approximate prefix-cache scorer, the baseline the precise
// scorer is measured against (kubernetes-sigs/gateway-api-inference-extension prefix-cache-scorer, proposal 0602; llm-d/llm-d-router approx-prefix-cache-producer, 2026). It never sees
// vLLM's cache: it hashes the request *text* in fixed character blocks and remembers which
// endpoint it sent each block chain to, in a per-endpoint LRU.
//
// The block hash is a chained 53-bit string hash rather than xxhash64: only its collision
// rate matters here, and staying in doubles keeps the baseline cheap in JavaScript.
import { z } from 'zod';
import { parseParams } from './params.js';
import {
  PREFIX_MATCH_STATE,
  type CycleState,
  type Endpoint,
  type EndpointLifecycle,
  type InferenceRequest,
  type PreRequest,
  type PrefixMatchInfo,
  type Scorer,
  type SchedulingResult,
} from '../types.js';

const CHARS_PER_TOKEN = 4;

/** cyrb53-style hash of `s[from, to)` seeded with the parent hash; a non-negative integer < 2^53. */
export function hashChunk(s: string, from: number, to: number, seed: number): number {
  let h1 = 0xdeadbeef ^ (seed >>> 0);
  let h2 = 0x41c6ce57 ^ Math.floor(seed / 4294967296);
  for (let i = from; i < to; i++) {
    const ch = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** Text GIE hashes: the prompt for completions, JSON of the messages for chat. */
export function requestText(req: InferenceRequest): string {
  if (req.api === 'chat') return JSON.stringify(req.messages ?? []);
  const p = req.prompt;
  // Token ids packed by the body parser hash as the JSON array they were sent as.
  return typeof p === 'string' ? p : JSON.stringify(p ?? '', (_k, v: unknown) => (v instanceof Uint32Array ? Array.from(v) : v));
}

const paramsSchema = z
  .object({
    autoTune: z.boolean().default(true),
    blockSizeTokens: z.number().int().positive().optional(),
    /** GIE v1.0 name: block size in characters. */
    blockSize: z.number().int().positive().optional(),
    hashBlockSize: z.number().int().positive().optional(),
    maxPrefixBlocksToMatch: z.number().int().positive().default(256),
    lruCapacityPerServer: z.number().int().positive().default(31_250),
  })
  .strict();

interface Pending {
  hashes: number[];
}

export class ApproxPrefixCacheScorer implements Scorer, PreRequest, EndpointLifecycle {
  private readonly p: z.infer<typeof paramsSchema>;
  /** block hash -> endpoints that were sent it */
  private readonly holders = new Map<number, Set<string>>();
  /** endpoint -> its LRU of hashes (insertion order = recency) */
  private readonly lrus = new Map<string, Map<number, true>>();
  private readonly pending = new WeakMap<InferenceRequest, Pending>();

  constructor(
    readonly type: string,
    readonly name: string,
    params: unknown,
  ) {
    this.p = parseParams(paramsSchema, params);
  }

  private blockChars(endpoints: Endpoint[]): number {
    if (this.p.blockSize ?? this.p.hashBlockSize) return (this.p.blockSize ?? this.p.hashBlockSize)!;
    const tuned = this.p.autoTune ? endpoints.find((e) => e.metrics.blockSize)?.metrics.blockSize : undefined;
    return (tuned ?? this.p.blockSizeTokens ?? 16) * CHARS_PER_TOKEN;
  }

  /** Chained hashes of the request text, trailing partial block included. */
  hashes(req: InferenceRequest, endpoints: Endpoint[]): number[] {
    const text = requestText(req);
    const bs = this.blockChars(endpoints);
    const maxChars = Math.min(text.length, bs * this.p.maxPrefixBlocksToMatch);
    const root = req.targetModel + '\u0000' + (req.cacheSalt ?? '');
    let h = hashChunk(root, 0, root.length, 0);
    const out: number[] = [];
    for (let i = 0; i < maxChars; i += bs) {
      h = hashChunk(text, i, Math.min(i + bs, maxChars), h);
      out.push(h);
    }
    return out;
  }

  score(state: CycleState, req: InferenceRequest, endpoints: Endpoint[]): number[] {
    const hs = this.hashes(req, endpoints);
    this.pending.set(req, { hashes: hs });
    const counts = new Map<string, number>();
    // Walk from block 0 until a block nobody holds; every holder of a hit block gets +1.
    for (const h of hs) {
      const who = this.holders.get(h);
      if (!who || who.size === 0) break;
      for (const a of who) counts.set(a, (counts.get(a) ?? 0) + 1);
    }
    const info: PrefixMatchInfo = { matched: counts, totalBlocks: hs.length };
    state.set(PREFIX_MATCH_STATE, info);
    if (hs.length === 0) return endpoints.map(() => 0);
    return endpoints.map((e) => (counts.get(e.address) ?? 0) / hs.length);
  }

  /** Learn: the chosen endpoint (and a prefill target, if any) now "holds" the blocks. */
  preRequest(req: InferenceRequest, result: SchedulingResult): void {
    const pend = this.pending.get(req);
    if (!pend) return;
    const targets = [result.targets[0], result.profileResults.get('prefill')?.targets[0]].filter((e): e is Endpoint => !!e);
    for (const t of targets) this.learn(t, pend.hashes);
  }

  private learn(e: Endpoint, hashes: number[]): void {
    let lru = this.lrus.get(e.address);
    if (!lru) this.lrus.set(e.address, (lru = new Map()));
    const cap = this.p.autoTune && e.metrics.numGpuBlocks ? e.metrics.numGpuBlocks : this.p.lruCapacityPerServer;
    for (const h of hashes) {
      lru.delete(h);
      lru.set(h, true);
      let who = this.holders.get(h);
      if (!who) this.holders.set(h, (who = new Set()));
      who.add(e.address);
    }
    while (lru.size > cap) {
      const old = lru.keys().next().value!;
      lru.delete(old);
      const who = this.holders.get(old);
      who?.delete(e.address);
      if (who && who.size === 0) this.holders.delete(old);
    }
  }

  /** Forget an endpoint that left the pool. */
  endpointRemoved(e: Endpoint): void {
    const address = e.address;
    const lru = this.lrus.get(address);
    if (!lru) return;
    for (const h of lru.keys()) {
      const who = this.holders.get(h);
      who?.delete(address);
      if (who && who.size === 0) this.holders.delete(h);
    }
    this.lrus.delete(address);
  }
}
