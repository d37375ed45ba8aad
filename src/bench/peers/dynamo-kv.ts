// `dynamo-kv-scorer`: NVIDIA Dynamo's KV router cost function, re-implemented from its published
// description for side-by-side benchmarks (shared/reference/peers-and-benchmarks.md §2).
// NOT Dynamo code.
//
//   adj_prefill = max(active_prefill_blocks + request_blocks - credit * overlap_blocks, 0)
//   cost        = prefill_load_scale * adj_prefill + (active_decode_blocks + new_request_blocks)
//   temperature 0 -> argmin (random tie-break); > 0 -> softmax sampling over normalized costs.
//
// overlap_blocks come from the precise KV-event index: a prefix scorer that publishes
// PrefixMatchInfo (precise-prefix-cache-scorer) must run earlier in the same profile, typically
// with weight 0. Active blocks are Dynamo's router-side predictions, tracked here from this
// router's own in-flight requests: a request's uncached blocks count as prefill load until its
// response starts, and its prompt blocks count as decode load until it completes. As in Dynamo's
// ActiveSequences, decode blocks are counted once per endpoint by block identity (requests that
// share a prefix share its blocks), and an incoming request adds only the blocks the endpoint is
// not already holding for another active request; a partial last block is always its own.
// Dynamo's host/disk tier credits (0.75 / 0.25) do not apply: the index reports device blocks.
import { z } from 'zod';
import { BlockKeyer } from '../../index/keys.js';
import { parseParams } from '../../scheduler/plugins/params.js';
import {
  PREFIX_MATCH_STATE,
  type CycleState,
  type Endpoint,
  type InferenceRequest,
  type PreRequest,
  type ResponseHooks,
  type ResponseInfo,
  type Scorer,
  type SchedulingResult,
} from '../../scheduler/types.js';

export const dynamoParamsSchema = z
  .object({
    /** Credit per overlapping device block (Dynamo's overlap_score_weight / credit). */
    overlapScoreCredit: z.number().nonnegative().default(1.0),
    prefillLoadScale: z.number().nonnegative().default(1.0),
    routerTemperature: z.number().nonnegative().default(0),
    /** Block size for request_blocks; default: the endpoints' scraped block size, else 16. */
    blockSize: z.number().int().positive().optional(),
  })
  .strict();
export type DynamoParams = z.infer<typeof dynamoParamsSchema>;

/** One in-flight request's predicted footprint on its endpoint. */
export interface Active {
  prefillBlocks: number;
  /** Identities of its full prompt blocks (chained, so equal keys mean an equal prefix). */
  keys: ArrayLike<bigint>;
  /** 1 when the prompt ends in a partial block (never shared), else 0. */
  partial: number;
  prefillDone: boolean;
}

interface EndpointLoad {
  requests: Map<string, Active>;
  /** Full blocks held by active requests, with how many requests hold each. */
  blocks: Map<bigint, number>;
  partials: number;
}

/** Router-side predicted load per endpoint (Dynamo's active-block tracking). */
export class ActiveBlocks {
  private perEndpoint = new Map<string, EndpointLoad>();
  prefill(address: string): number {
    let n = 0;
    for (const a of this.perEndpoint.get(address)?.requests.values() ?? []) if (!a.prefillDone) n += a.prefillBlocks;
    return n;
  }
  /** Distinct blocks the endpoint's active requests hold. */
  decode(address: string): number {
    const e = this.perEndpoint.get(address);
    return e ? e.blocks.size + e.partials : 0;
  }
  /** Blocks a request would add to the endpoint's decode load (those not already active there). */
  newBlocks(address: string, keys: ArrayLike<bigint>, partial: number): number {
    const held = this.perEndpoint.get(address)?.blocks;
    if (!held || held.size === 0) return keys.length + partial;
    let n = partial;
    for (let i = 0; i < keys.length; i++) if (!held.has(keys[i])) n++;
    return n;
  }
  add(address: string, id: string, a: Active): void {
    let e = this.perEndpoint.get(address);
    if (!e) this.perEndpoint.set(address, (e = { requests: new Map(), blocks: new Map(), partials: 0 }));
    if (e.requests.has(id)) this.free(address, id);
    e.requests.set(id, a);
    for (let i = 0; i < a.keys.length; i++) e.blocks.set(a.keys[i], (e.blocks.get(a.keys[i]) ?? 0) + 1);
    e.partials += a.partial;
  }
  prefillCompleted(address: string, id: string): void {
    const a = this.perEndpoint.get(address)?.requests.get(id);
    if (a) a.prefillDone = true;
  }
  free(address: string, id: string): void {
    const e = this.perEndpoint.get(address);
    const a = e?.requests.get(id);
    if (!e || !a) return;
    e.requests.delete(id);
    for (let i = 0; i < a.keys.length; i++) {
      const n = (e.blocks.get(a.keys[i]) ?? 1) - 1;
      if (n > 0) e.blocks.set(a.keys[i], n);
      else e.blocks.delete(a.keys[i]);
    }
    e.partials -= a.partial;
  }
}

/** Costs per endpoint for one request (lower is better). */
export function dynamoCosts(
  p: DynamoParams,
  requestBlocks: number,
  overlap: (address: string) => number,
  active: ActiveBlocks,
  endpoints: Endpoint[],
  blocks?: { keys: ArrayLike<bigint>; partial: number },
): number[] {
  return endpoints.map((e) => {
    const adjPrefill = Math.max(active.prefill(e.address) + requestBlocks - p.overlapScoreCredit * overlap(e.address), 0);
    const incoming = blocks ? active.newBlocks(e.address, blocks.keys, blocks.partial) : requestBlocks;
    return p.prefillLoadScale * adjPrefill + active.decode(e.address) + incoming;
  });
}

/** Index of the chosen endpoint: argmin with random ties, or softmax sampling at temperature > 0. */
export function chooseByCost(costs: number[], temperature: number, rand = Math.random): number {
  if (costs.length === 0) return -1;
  if (temperature <= 0) {
    let best = 0;
    let ties = 1;
    for (let i = 1; i < costs.length; i++) {
      if (costs[i] < costs[best]) {
        best = i;
        ties = 1;
      } else if (costs[i] === costs[best] && rand() * ++ties < 1) best = i;
    }
    return best;
  }
  const min = Math.min(...costs);
  const max = Math.max(...costs);
  const span = max - min || 1;
  const w = costs.map((c) => Math.exp(-((c - min) / span) / temperature));
  const total = w.reduce((a, b) => a + b, 0);
  let r = rand() * total;
  for (let i = 0; i < w.length; i++) {
    r -= w[i];
    if (r <= 0) return i;
  }
  return w.length - 1;
}

export class DynamoKvScorer implements Scorer, PreRequest, ResponseHooks {
  readonly p: DynamoParams;
  readonly active = new ActiveBlocks();
  private pending = new WeakMap<InferenceRequest, { prefillBlocks: Map<string, number>; blocks: number; keys: ArrayLike<bigint>; partial: number }>();
  /** Block identities for active-block tracking (fast64: router-internal, never compared with llm-d's). */
  private keyers = new Map<number, BlockKeyer>();
  private warnedNoIndex = false;

  constructor(
    readonly type: string,
    readonly name: string,
    params: unknown,
    private readonly warn: (msg: string) => void = () => {},
  ) {
    this.p = parseParams(dynamoParamsSchema, params);
  }

  async score(state: CycleState, req: InferenceRequest, endpoints: Endpoint[]): Promise<number[]> {
    if (endpoints.length === 0) return [];
    const info = state.get(PREFIX_MATCH_STATE);
    if (!info && !this.warnedNoIndex) {
      this.warnedNoIndex = true;
      this.warn('dynamo-kv-scorer: no prefix match info in the cycle; put precise-prefix-cache-scorer (weight 0) before it');
    }
    const bs = this.p.blockSize ?? endpoints.find((e) => e.metrics.blockSize)?.metrics.blockSize ?? 16;
    const ids = await req.getTokens();
    const tokens = ids?.length ?? req.estimatedTokens;
    const requestBlocks = Math.ceil(tokens / bs);
    const overlap = (a: string) => Math.min(info?.matched.get(a) ?? 0, requestBlocks);
    // Without token ids the request's blocks cannot be identified: count them all as its own.
    const blocks = ids ? { keys: this.keyer(bs).keys(ids, { model: req.model }), partial: requestBlocks - Math.floor(tokens / bs) } : { keys: [], partial: requestBlocks };
    const costs = dynamoCosts(this.p, requestBlocks, overlap, this.active, endpoints, blocks);
    const i = chooseByCost(costs, this.p.routerTemperature);
    const prefillBlocks = new Map(endpoints.map((e) => [e.address, Math.max(requestBlocks - overlap(e.address), 0)]));
    this.pending.set(req, { prefillBlocks, blocks: requestBlocks, ...blocks });
    return endpoints.map((_e, j) => (j === i ? 1 : 0));
  }

  private keyer(blockSize: number): BlockKeyer {
    let k = this.keyers.get(blockSize);
    if (!k) this.keyers.set(blockSize, (k = new BlockKeyer({ blockSize, hashSeed: '', algorithm: 'fast64' })));
    return k;
  }

  preRequest(req: InferenceRequest, result: SchedulingResult): void {
    const pend = this.pending.get(req);
    const t = result.targets[0];
    if (!pend || !t) return;
    this.active.add(t.address, req.requestId, { prefillBlocks: pend.prefillBlocks.get(t.address) ?? pend.blocks, keys: pend.keys, partial: pend.partial, prefillDone: false });
  }

  responseStart(req: InferenceRequest, endpoint: Endpoint): void {
    this.active.prefillCompleted(endpoint.address, req.requestId);
  }

  responseComplete(req: InferenceRequest, endpoint: Endpoint, _info: ResponseInfo): void {
    this.active.free(endpoint.address, req.requestId);
  }
}
