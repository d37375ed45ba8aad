// The services around the KV block index, by key and interface only, so that the router and
// the plugins meet here rather than through each other's classes:
//   KV_EVENT_SOURCE_FACTORY  the router provides it (src/events subscriber); the precise
//                            prefix scorer requires it to learn from vLLM's KV events.
//   KV_INDEX_PROVIDER        a plugin that owns a block index provides it; the router reads it
//                            for the scoring API, the embedded pods' event endpoint and the
//                            EPP's pod discovery.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { BlockKeyer } from '../index/keys.js';
import type { BlockKeys, KvBlockIndex, PrefixMatch } from '../index/types.js';
import { ServiceKey } from './services.js';
import type { Endpoint, InferenceRequest } from './types.js';

/** What an index owner needs from a KV-event subscriber (src/events/subscriber.ts). */
export interface KvEventSource {
  start(): Promise<void> | void;
  /** Central mode: the endpoint actually bound (port resolved). */
  readonly boundEndpoint?: string;
  addPod?(podId: string, endpoint: string, replayEndpoint?: string): void | Promise<void>;
  /** Central mode: accept this pod's topic and use its replay endpoint, without dialing. */
  knowPod?(podId: string, replayEndpoint?: string): void | Promise<void>;
  removePod?(podId: string): void | Promise<void>;
  close(): Promise<void> | void;
}

export type KvEventSourceFactory = (opts: {
  index: KvBlockIndex;
  keyer: BlockKeyer;
  topicFilter: string;
  bindEndpoint?: string;
  concurrency: number;
  registry: Registry;
  logger: Logger;
  /** llm-d's replaySocketPort: each pod's replay ROUTER at tcp://<pod host>:<port + rank>. */
  replay?: { port?: number };
}) => KvEventSource;

export const KV_EVENT_SOURCE_FACTORY = new ServiceKey<KvEventSourceFactory>('kv-event-source-factory');

export interface EndpointPrefixScore {
  address: string;
  matchedBlocks: number;
  weightedBlocks: number;
  score: number;
}

export interface PrefixScoreDetail {
  model: string;
  tokens: number;
  totalBlocks: number;
  blockSize: number;
  endpoints: EndpointPrefixScore[];
}

/** A block index fed by KV events, with the prefix lookups the router's APIs need. */
export interface KvIndexProvider {
  /** The providing plugin's name. */
  readonly name: string;
  readonly index: KvBlockIndex;
  /** How request tokens become the index's block keys. */
  readonly keyer: BlockKeyer;
  readonly blockSize: number;
  /** Central mode: where pods publish their KV events (the bound port once started). */
  readonly eventsEndpoint: string | undefined;
  /** Discovery mode: the ports pods publish on (kvEventsConfig.podDiscoveryConfig). */
  readonly podDiscovery: { socketPort?: number; replaySocketPort?: number } | undefined;
  /**
   * Matched blocks per endpoint (pods without block 0 absent), and the request's full blocks;
   * `keys`, when given, are the request's block keys (chained: key i identifies blocks 0..i).
   */
  match(req: InferenceRequest, endpoints: readonly Endpoint[]): Promise<{ matches: Map<string, PrefixMatch>; totalBlocks: number; tokens: number; keys?: BlockKeys | null }>;
  /** The scoring API's view: every endpoint with its matched blocks and normalized score. */
  detail(req: InferenceRequest, endpoints: readonly Endpoint[]): Promise<PrefixScoreDetail>;
}

export const KV_INDEX_PROVIDER = new ServiceKey<KvIndexProvider>('kv-index-provider');
