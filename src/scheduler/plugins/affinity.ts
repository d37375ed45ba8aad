// Session affinity and the no-hit LRU spreader.
import { z } from 'zod';
import { parseParams } from './params.js';
import {
  PREFIX_MATCH_STATE,
  type CycleState,
  type Endpoint,
  type InferenceRequest,
  type ResponseHooks,
  type Scorer,
  type PreRequest,
  type SchedulingResult,
} from '../types.js';

export const SESSION_HEADER = 'x-session-token';

/** 1.0 for the endpoint named (base64) in `x-session-token`, else 0; sets the header on responses. */
export class SessionAffinityScorer implements Scorer, ResponseHooks {
  constructor(
    readonly type: string,
    readonly name: string,
    params: unknown,
  ) {
    parseParams(z.object({}).strict(), params);
  }
  score(_s: CycleState, req: InferenceRequest, endpoints: Endpoint[]): number[] {
    const token = req.headers[SESSION_HEADER];
    if (!token) return endpoints.map(() => 0);
    let target = '';
    try {
      target = Buffer.from(token, 'base64').toString('utf8');
    } catch {
      return endpoints.map(() => 0);
    }
    return endpoints.map((e) => (e.address === target || e.name === target ? 1 : 0));
  }
  responseHeaders(_req: InferenceRequest, endpoint: Endpoint): Record<string, string> {
    return { [SESSION_HEADER]: Buffer.from(endpoint.address, 'utf8').toString('base64') };
  }
}

/**
 * Spreads cold requests (no prefix hit anywhere, per the prefix scorer's match info) over the
 * least recently used endpoints: never used 1.0, then older-used higher. Warm requests: 0.5.
 * The chosen endpoint of a cold request becomes the most recently used.
 */
export class NoHitLruScorer implements Scorer, PreRequest {
  private readonly lru = new Map<string, true>(); // insertion order = least -> most recent
  private readonly size: number;
  private readonly coldRequests = new WeakSet<InferenceRequest>();
  constructor(
    readonly type: string,
    readonly name: string,
    params: unknown,
  ) {
    const p = parseParams(z.object({ lruSize: z.number().int().positive().default(1024), prefixPluginName: z.string().optional() }).strict(), params);
    this.size = p.lruSize;
  }
  score(state: CycleState, req: InferenceRequest, endpoints: Endpoint[]): number[] {
    const info = state.get(PREFIX_MATCH_STATE);
    const warm = info ? [...info.matched.values()].some((m) => m > 0) : false;
    if (warm) return endpoints.map(() => 0.5);
    this.coldRequests.add(req);
    const n = endpoints.length;
    // Rank used endpoints from least to most recent.
    const used = endpoints.filter((e) => this.lru.has(e.address));
    const order = new Map<string, number>();
    let i = 0;
    for (const addr of this.lru.keys()) order.set(addr, i++);
    used.sort((a, b) => order.get(a.address)! - order.get(b.address)!);
    const rank = new Map<string, number>();
    used.forEach((e, j) => rank.set(e.address, j));
    const neverUsed = n - used.length;
    return endpoints.map((e) => {
      const r = rank.get(e.address);
      if (r === undefined) return 1;
      const total = used.length;
      // Older (lower r) scores higher; below every never-used endpoint when there are some.
      const top = neverUsed > 0 ? 0.99 : 1;
      return total <= 1 ? top : top * (1 - r / total);
    });
  }
  preRequest(req: InferenceRequest, result: SchedulingResult): void {
    if (!this.coldRequests.has(req)) return;
    const chosen = result.targets[0];
    if (!chosen) return;
    this.lru.delete(chosen.address);
    this.lru.set(chosen.address, true);
    if (this.lru.size > this.size) this.lru.delete(this.lru.keys().next().value!);
  }
}
