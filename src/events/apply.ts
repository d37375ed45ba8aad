// Applies decoded KV events of one pod to a KvBlockIndex.
//
// BlockStored: the router computes its own request keys from the event's token ids, chained
// from the request key of the parent engine block, and maps each engine block to the
// request blocks it overlaps. When the router block size is not the engine's, a span can
// end inside a router block: those leftover tokens are remembered per engine block
// ("pending tails") so a later event continuing from that block still chains correctly.
// An event whose parent is unknown is returned to the caller (it may recover it by replay).
import type { BlockKeys, KvBlockIndex, PodEntry } from '../index/types.js';
import type { BlockKeyer } from '../index/keys.js';
import type { BlockStored, KvEvent } from './types.js';

interface Tail {
  /** Request key the leftover tokens continue from (undefined = the model root). */
  parent: bigint | undefined;
  tokens: number[];
  extras: unknown[][];
}

export type ApplyOutcome = 'applied' | 'skipped' | 'orphan';

const MAX_TAILS = 200_000;

/** Per-pod ingestion state (pending tails) plus the shared index and keyer. */
export class PodEventApplier {
  private tails = new Map<bigint, Tail>();

  constructor(
    readonly index: KvBlockIndex,
    readonly keyer: BlockKeyer,
    readonly pod: string,
  ) {}

  /** Forgets per-pod state (after AllBlocksCleared, a restart or an unrecoverable gap). */
  reset(): void {
    this.tails.clear();
  }

  /**
   * Applies one event. With a synchronous index (in memory) nothing awaits and the outcome comes
   * back as a value: a promise per event was most of what ingest allocated. An asynchronous
   * index (Redis) gets a promise.
   */
  apply(ev: KvEvent, model: string): ApplyOutcome | Promise<ApplyOutcome> {
    switch (ev.type) {
      case 'AllBlocksCleared': {
        this.tails.clear();
        const done = this.index.clear(this.pod);
        return done instanceof Promise ? done.then(() => 'applied' as const) : 'applied';
      }
      case 'BlockRemoved': {
        if (ev.groupIdx !== null && ev.groupIdx > 0) return 'skipped';
        const entry: PodEntry = { pod: this.pod, tier: tierOf(ev.medium) };
        const hs = ev.blockHashes;
        for (let i = 0; i < hs.length; i++) {
          this.tails.delete(hs[i]);
          const done = this.index.evict(hs[i], 'engine', entry);
          if (done instanceof Promise) return done.then(() => this.evictRest(hs, i + 1, entry));
        }
        return 'applied';
      }
      case 'BlockStored':
        return this.stored(ev, model);
    }
  }

  /** The rest of a BlockRemoved on an asynchronous index, in order. */
  private async evictRest(hs: readonly bigint[], from: number, entry: PodEntry): Promise<ApplyOutcome> {
    for (let i = from; i < hs.length; i++) {
      this.tails.delete(hs[i]);
      await this.index.evict(hs[i], 'engine', entry);
    }
    return 'applied';
  }

  /** Whether an engine block of this pod is known (indexed mapping or pending tail). */
  async knows(engineKey: bigint): Promise<boolean> {
    return this.tails.has(engineKey) || (await this.index.getRequestKey(engineKey, this.pod)) !== undefined;
  }

  private stored(ev: BlockStored, model: string): ApplyOutcome | Promise<ApplyOutcome> {
    // Hybrid models: only full-attention groups describe a reusable prefix.
    if (ev.kvCacheSpecKind !== null && ev.kvCacheSpecKind !== 'full_attention') return 'skipped';
    const entry: PodEntry = { pod: this.pod, tier: tierOf(ev.medium) };
    if (ev.blockHashes.length === 0) return 'skipped';
    if (ev.tokenIds.length === 0) return this.moved(ev, entry);
    if (ev.parentBlockHash !== null && ev.parentBlockHash !== 0n) {
      const tail = this.tails.get(ev.parentBlockHash);
      if (tail) return this.storedFrom(ev, model, entry, tail.parent, tail.tokens, tail.extras);
      const got = this.index.getRequestKey(ev.parentBlockHash, this.pod);
      if (got instanceof Promise) return got.then((parent) => (parent === undefined ? 'orphan' : this.storedFrom(ev, model, entry, parent, [], [])));
      if (got === undefined) return 'orphan';
      return this.storedFrom(ev, model, entry, got, [], []);
    }
    return this.storedFrom(ev, model, entry, undefined, [], []);
  }

  /** A token-less store: the blocks moved to another tier (e.g. CPU offload). */
  private async moved(ev: BlockStored, entry: PodEntry): Promise<ApplyOutcome> {
    const reqs: bigint[] = [];
    for (const h of ev.blockHashes) {
      const got = this.index.getRequestKey(h, this.pod);
      const r = got instanceof Promise ? await got : got;
      if (r !== undefined) reqs.push(r);
    }
    if (reqs.length) {
      const added = this.add(null, toKeys(reqs, 0, reqs.length), entry);
      if (added) await added;
    }
    return 'applied';
  }

  /** A BlockStored whose parent resolved to request key `parent` (undefined: the model root). */
  private storedFrom(ev: BlockStored, model: string, entry: PodEntry, parent: bigint | undefined, prefix: number[], prefixExtras: unknown[][]): ApplyOutcome | Promise<ApplyOutcome> {
    const B = ev.blockSize;
    const nE = ev.blockHashes.length;
    const name = ev.loraName || model;
    // token_ids may cover already-cached blocks that block_hashes leaves out (vllm #44451):
    // the hashed blocks are the last nE*B tokens.
    const toks = ev.tokenIds;
    const skipped = Math.max(0, toks.length - nE * B);
    const all = prefix.length ? prefix.concat(toks) : toks;
    const R = this.keyer.blockSize;
    const nR = Math.floor(all.length / R);
    // engine block i covers [eStart + i*B, eStart + (i+1)*B) in `all`
    const eStart = prefix.length + skipped;
    // vLLM sends extra_keys as one nil per block for plain text: nothing to carry then
    const engineExtras = ev.extraKeys && ev.extraKeys.some((x) => x !== null) ? ev.extraKeys.map((x) => requestExtras(x, ev.loraName)) : null;
    let extra: (unknown[] | null)[] | null = null;
    if ((engineExtras && engineExtras.some((x) => x.length > 0)) || prefixExtras.some((x) => x.length > 0)) {
      extra = [];
      for (let j = 0; j < nR; j++) {
        const items: unknown[] = [];
        const s = j * R;
        const e = s + R;
        if (s < prefix.length) for (const x of prefixExtras) pushUnique(items, x);
        if (engineExtras) {
          for (let i = firstOverlap(s, eStart, B); i < nE && eStart + i * B < e; i++) pushUnique(items, engineExtras[i] ?? []);
        }
        extra.push(items.length ? items : null);
      }
    }
    const reqKeys = this.keyer.keys(all, { model: name, parent, extra });
    // group request blocks by the engine blocks (of this event) they overlap
    const E = ev.blockHashes;
    if (B === R && prefix.length === 0 && skipped === 0) {
      const added = this.add(toKeys(E, 0, nE), reqKeys, entry); // the common aligned case
      return added ? added.then(() => 'applied' as const) : 'applied';
    }
    return this.storedSpans(ev, entry, parent, prefix, prefixExtras, all, skipped, engineExtras, reqKeys);
  }

  /** Router and engine block sizes differ (or a pending prefix): request blocks grouped by the engine blocks they overlap. */
  private async storedSpans(
    ev: BlockStored, entry: PodEntry, parent: bigint | undefined, prefix: number[], prefixExtras: unknown[][],
    all: number[], skipped: number, engineExtras: unknown[][] | null, reqKeys: BlockKeys,
  ): Promise<ApplyOutcome> {
    const B = ev.blockSize;
    const nE = ev.blockHashes.length;
    const R = this.keyer.blockSize;
    const nR = Math.floor(all.length / R);
    const eStart = prefix.length + skipped;
    const E = ev.blockHashes;
    let j = 0;
    while (j < nR) {
      const s = j * R;
      const i0 = firstOverlap(s, eStart, B);
      const i1 = Math.min(nE, lastOverlapExclusive(s + R, eStart, B));
      if (i0 >= i1) {
        // only tokens of already-cached blocks (or a pending prefix)
        const added = this.add(null, reqKeys.subarray(j, j + 1), entry);
        if (added) await added;
        j++;
        continue;
      }
      if (i1 - i0 > 1) {
        const added = this.add(toKeys(E, i0, i1), reqKeys.subarray(j, j + 1), entry);
        if (added) await added;
        j++;
        continue;
      }
      // one engine block spans this and maybe following request blocks
      let k = j + 1;
      while (k < nR && firstOverlap(k * R, eStart, B) === i0 && lastOverlapExclusive(k * R + R, eStart, B) === i0 + 1) k++;
      const added = this.add(toKeys(E, i0, i0 + 1), reqKeys.subarray(j, k), entry);
      if (added) await added;
      j = k;
    }
    // engine blocks ending inside a router block leave a pending tail
    if (B % R !== 0 || prefix.length % R !== 0 || skipped % R !== 0) {
      for (let i = 0; i < nE; i++) {
        const end = eStart + (i + 1) * B;
        const full = Math.floor(end / R);
        if (end % R === 0) continue;
        const tailParent = full > 0 ? reqKeys[full - 1] : parent;
        const tokens = all.slice(full * R, end);
        const extras: unknown[][] = [];
        if (engineExtras) for (let q = firstOverlap(full * R, eStart, B); q <= i; q++) extras.push(engineExtras[q] ?? []);
        if (full * R < prefix.length) extras.unshift(...prefixExtras);
        this.setTail(E[i], { parent: tailParent, tokens, extras });
      }
    }
    return 'applied';
  }

  /** index.add, awaited only when the index is asynchronous (an in-memory add costs no microtask turn). */
  private add(engineKeys: BlockKeys | null, requestKeys: BlockKeys, entry: PodEntry): Promise<void> | undefined {
    const done = this.index.add(engineKeys, requestKeys, entry);
    return done instanceof Promise ? done : undefined;
  }

  private setTail(h: bigint, t: Tail): void {
    this.tails.delete(h);
    this.tails.set(h, t);
    if (this.tails.size > MAX_TAILS) {
      const oldest = this.tails.keys().next().value;
      if (oldest !== undefined) this.tails.delete(oldest);
    }
  }
}

/** keys[from..to) as BlockKeys (an indexed copy: BigUint64Array.from goes through the iterator protocol). */
function toKeys(keys: readonly bigint[], from: number, to: number): BigUint64Array {
  const out = new BigUint64Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = keys[i];
  return out;
}

function firstOverlap(s: number, eStart: number, B: number): number {
  // first engine block whose end is > s
  return Math.max(0, Math.floor((s - eStart) / B));
}

function lastOverlapExclusive(e: number, eStart: number, B: number): number {
  // engine blocks starting before e
  return Math.max(0, Math.ceil((e - eStart) / B));
}

function pushUnique(items: unknown[], xs: readonly unknown[]): void {
  for (const x of xs) if (!items.some((y) => sameItem(x, y))) items.push(x);
}

function sameItem(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) return a.length === b.length && a.every((v, i) => v === b[i]);
  return false;
}

/** Lower-cased medium; vLLM's block pool sends "GPU", offload connectors "CPU" etc. */
export function tierOf(medium: string | null | undefined): string {
  return medium ? medium.toLowerCase() : 'gpu';
}

/**
 * The request-side extra items for one engine block's extra_keys: the LoRA name is dropped
 * (it lives in the chain root), legacy (mm_hash, offset) tuples become their hash, strings
 * (MM identifiers, cache_salt) stay strings (the keyer wraps them as {"Hash": id}, as llm-d
 * does on the read side), bytes (prompt-embeds digests) are kept as bytes.
 */
export function requestExtras(x: unknown[] | null, loraName: string | null): unknown[] {
  if (!x) return [];
  const out: unknown[] = [];
  for (const it of x) {
    if (typeof it === 'string') {
      if (loraName && it === loraName) continue;
      out.push(it);
    } else if (Array.isArray(it) && typeof it[0] === 'string') out.push(it[0]);
    else if (it instanceof Uint8Array) out.push(it);
  }
  return out;
}

export type { BlockKeys };
