// The router's decision path on the virtual clock, with no HTTP: the strategy's
// EndpointPickerConfig built into plugins (the precise scorer's block index, the approximate
// scorer's LRUs, the peers), an EndpointPool of the simulated pods, the Director (candidates,
// producers, Scheduler, PreRequest hooks, in-flight counters, response hooks), and the
// src/events KvEventSubscriber fed the pods' messages through `onFrames`, the method its ZeroMQ
// receive loop calls: the same bytes are decoded and applied as in production.
import pino from 'pino';
import { Registry } from 'prom-client';
import { EndpointPool, type PoolEndpoint } from '../../endpoints/pool.js';
import { KvEventSubscriber } from '../../events/subscriber.js';
import { Director } from '../../gateway/director.js';
import { buildSchedulerConfig, parseEndpointPickerConfig, type LoadedSchedulerConfig } from '../../scheduler/config.js';
import { KV_EVENT_SOURCE_FACTORY, type KvEventSource, type KvEventSourceFactory } from '../../scheduler/kv-services.js';
import { withPreciseScorerOverrides } from '../../scheduler/plugins/precise-prefix.js';
import { ServiceRegistry } from '../../scheduler/services.js';
import type { PluginContext } from '../../scheduler/types.js';
import { BlockKeyer, type KeyOptions } from '../../index/keys.js';
import type { BlockKeys } from '../../index/types.js';
import type { Clock } from '../../util/clock.js';
import { BoundedMemo, PROMPT_MEMO_BYTES } from '../../util/bounded-memo.js';

/** Where pods "connect" in the strategy configs; nothing binds it. */
export const VIRTUAL_EVENTS_ENDPOINT = 'inproc://kvrouter-virtual-bench';

export interface VirtualRouter {
  readonly pool: EndpointPool;
  readonly director: Director;
  readonly config: LoadedSchedulerConfig;
  /** One subscriber per precise scorer (usually 0 or 1). */
  readonly subscribers: KvEventSubscriber[];
  /** Hands one published message to every subscriber; resolves once applied. */
  deliver(frames: Uint8Array[]): Promise<void> | undefined;
  /** Scenarios: an endpoint enters or leaves the pool (plugins hear it, as startRouter's do). */
  addEndpoint(address: string): void;
  removeEndpoint(address: string): void;
  close(): Promise<void>;
}

/** A KvEventSource that never opens a socket: the runner calls the subscriber's onFrames. */
class SocketlessSource implements KvEventSource {
  constructor(readonly sub: KvEventSubscriber) {}
  start(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}

export async function startVirtualRouter(configYaml: string, addresses: string[], clock: Clock): Promise<VirtualRouter> {
  const logger = pino({ level: process.env.KVROUTER_VIRTUAL_LOG ?? 'silent' });
  const registry = new Registry();
  const subscribers: KvEventSubscriber[] = [];
  const topicFilters: string[] = [];
  const factory: KvEventSourceFactory = (o) => {
    // No ingest slices: they bound how long one message holds the real event loop, measured on
    // the subscriber's clock; on the virtual clock ingest takes no model time, and a 2 ms slice
    // of model time ran out whenever the clock had moved, so nearly every message waited for a
    // real setImmediate turn (which changes no decision: each delivery is awaited alone).
    const sub = new KvEventSubscriber({ index: o.index, keyer: o.keyer, topicFilter: o.topicFilter, registry: o.registry, logger: o.logger, clock, limits: { sliceMs: Infinity } });
    subscribers.push(sub);
    topicFilters.push(o.topicFilter);
    return new SocketlessSource(sub);
  };
  const services = new ServiceRegistry();
  services.provide(KV_EVENT_SOURCE_FACTORY, factory, 'the virtual bench');
  const ctx: PluginContext = { logger, registry, services, clock };
  // As startRouter does: the router's flags written into the precise scorers' parameters (no
  // metrics beat: it only logs).
  const source = withPreciseScorerOverrides(parseEndpointPickerConfig(configYaml), { zmqEndpoint: VIRTUAL_EVENTS_ENDPOINT, speculativeIndexing: true, metricsBeatMs: 0 });
  const config = buildSchedulerConfig(source, ctx);
  const plugins = [...config.plugins.values()];
  for (const p of plugins) memoizePromptKeys((p as { keyer?: unknown }).keyer);
  for (const p of plugins) await p.start?.();
  // Scraping off: the runner copies each engine's load into the endpoints every scrape interval.
  const pool = new EndpointPool(addresses.map((address) => ({ address })), { logger, scrapeIntervalMs: 0, clock });
  // Plugins with per-endpoint state hear about every endpoint (central mode: the subscriber
  // accepts their topics), as startRouter's lifecycle notifications do.
  for (const e of pool.all()) for (const p of config.endpointLifecycle) await p.endpointAdded?.(e);
  // Endpoints that come and go later (scenarios) are announced as startRouter announces them.
  const notify = (hook: 'endpointAdded' | 'endpointRemoved', e: PoolEndpoint): Promise<unknown> =>
    Promise.all(config.endpointLifecycle.map((p) => Promise.resolve().then(() => p[hook]?.(e)).catch((err: unknown) => logger.warn({ err, endpoint: e.address }, `${hook} failed`))));
  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  pool.on('added', (e: PoolEndpoint) => track(notify('endpointAdded', e)));
  pool.on('removed', (e: PoolEndpoint) => track(notify('endpointRemoved', e)));
  const director = new Director({ config, pool, logger, clock });
  return {
    pool,
    director,
    config,
    subscribers,
    deliver(frames) {
      if (subscribers.length === 0) return undefined;
      const f0 = frames[0];
      const topic = Buffer.from(f0.buffer, f0.byteOffset, f0.byteLength).toString('latin1');
      // ZeroMQ's prefix subscription, then what the subscriber's receive loop does per message.
      // Each message is awaited alone: every earlier one was applied before time moved on, so
      // nothing else is pending (flush() would walk every pod's stream, per message).
      const applied: Promise<void>[] = [];
      for (let i = 0; i < subscribers.length; i++) {
        if (!topic.startsWith(topicFilters[i])) continue;
        const p = subscribers[i].onFrames(frames);
        if (p instanceof Promise) applied.push(p);
      }
      if (applied.length === 1) return applied[0];
      return applied.length === 0 ? undefined : Promise.all(applied).then(() => undefined);
    },
    addEndpoint(address) {
      pool.add({ address, labels: {} });
    },
    removeEndpoint(address) {
      pool.remove(address);
    },
    async close() {
      await Promise.all(pending);
      for (const p of plugins.reverse()) await Promise.resolve(p.close?.()).catch(() => {});
      await pool.close();
    },
  };
}

/**
 * The virtual client sends each workload prompt many times as the same Uint32Array, and a
 * prompt's request keys depend only on its tokens and the key options: compute them once per
 * array, up to PROMPT_MEMO_BYTES (the production router tokenizes every request afresh and has nothing to reuse). Only
 * root chains without extras are memoized; KV-event chains (number[] token ids) pass through.
 * An entry keeps 8 bytes per block (64 tokens at llm-d's block size) and a small record: the
 * prompts of a 256-pod run's whole pool fit (24,000 x 7,200 tokens: ~22 MB), where a bound in
 * prompt tokens kept only part of the 64-pod pool and re-keyed the rest on every send.
 */
/** A memo record's own heap (record, key array object, WeakMap and registry entries), roughly. */
const MEMO_ENTRY_BYTES = 256;

function memoizePromptKeys(keyer: unknown): void {
  if (!(keyer instanceof BlockKeyer)) return;
  const memo = new BoundedMemo<Uint32Array, { model: string; lora: string | null; salt: string | null; keys: BlockKeys }>(PROMPT_MEMO_BYTES);
  const compute = keyer.keys.bind(keyer);
  keyer.keys = (tokens: ArrayLike<number>, opts: KeyOptions): BlockKeys => {
    if (!(tokens instanceof Uint32Array) || (opts.parent !== undefined && opts.parent !== 0n) || (opts.extra !== undefined && opts.extra !== null)) return compute(tokens, opts);
    const lora = opts.lora ?? null;
    const salt = opts.cacheSalt ?? null;
    const m = memo.get(tokens);
    if (m !== undefined && m.model === opts.model && m.lora === lora && m.salt === salt) return m.keys;
    const keys = compute(tokens, opts);
    memo.set(tokens, { model: opts.model, lora, salt, keys }, 8 * keys.length + MEMO_ENTRY_BYTES);
    return keys;
  };
}

export type { PoolEndpoint };
