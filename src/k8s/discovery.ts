// Pod discovery: list+watch the pods an InferencePool selects (or a plain label selector) and
// turn each ready pod into one endpoint per target port (data-parallel ranks), as GIE's EPP
// does (InferencePool v1: kubernetes-sigs/gateway-api-inference-extension api/v1/inferencepool_types.go; endpoints `<pod>-rank-<i>` as llm-d/llm-d-router pkg/epp names them, 2026). A pod counts when it has
// an IP, its Ready condition is True and it is not being deleted. In discovery mode the KV-event
// subscriber dials each endpoint's publisher as it appears and drops it when it goes.
import { CoreV1Api, CustomObjectsApi, ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export const POOL_GROUP = 'inference.networking.k8s.io';
export const POOL_VERSION = 'v1';
/** Annotation narrowing the live target ports of a pod (llm-d). */
export const ACTIVE_PORTS_ANNOTATION = 'llm-d.ai/active-ports';

export interface DiscoveredEndpoint {
  /** `<pod>-rank-<i>` (GIE naming). */
  name: string;
  /** `podIP:port`: the routing address and the pod identity in KV events. */
  address: string;
  namespace: string;
  podName: string;
  podIP: string;
  port: number;
  /** Index of the port in targetPorts (the data-parallel rank). */
  rank: number;
  labels: Record<string, string>;
}

/** The part of the KV-event subscriber discovery drives (src/events KvEventSubscriber). */
export interface KvEventDialer {
  addPod(podId: string, endpoint: string): unknown;
  removePod(podId: string): unknown;
}

export interface PodDiscoveryOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** InferencePool mode: the pool's name (selector and target ports come from its spec). */
  poolName?: string;
  /** API group of the pool (v1: inference.networking.k8s.io; v1alpha2: inference.networking.x-k8s.io). */
  poolGroup?: string;
  poolVersion?: string;
  /** Label-selector mode: the selector and the ports to route to. */
  selector?: Record<string, string>;
  targetPorts?: number[];
  logger: Logger;
  /** Discovery mode for KV events: dial tcp://<podIP>:<socketPort + rank> per endpoint. */
  kvEvents?: { dialer: KvEventDialer; socketPort: number };
  onAdd?(ep: DiscoveredEndpoint): void;
  onRemove?(ep: DiscoveredEndpoint): void;
  /** Labels of a known endpoint changed. */
  onUpdate?(ep: DiscoveredEndpoint): void;
  /** First time the endpoint set is known (pool found and pods listed). */
  onSynced?(): void;
}

/** `k=v,k2=v2` for the API's labelSelector parameter. */
export function labelSelectorString(sel: Record<string, string>): string {
  return Object.entries(sel)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** Parses `k=v,k2=v2` (as given to --endpoint-selector). */
export function parseLabelSelector(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of s.split(',')) {
    const p = part.trim();
    if (!p) continue;
    const m = /^([^=!\s]+)\s*==?\s*(\S*)$/.exec(p);
    if (!m) throw new Error(`endpoint selector "${s}": only equality terms k=v are supported, got "${p}"`);
    out[m[1]] = m[2];
  }
  return out;
}

export function isPodReady(pod: V1Pod): boolean {
  if (!pod.status?.podIP) return false;
  if (pod.metadata?.deletionTimestamp) return false;
  if (pod.status.phase === 'Succeeded' || pod.status.phase === 'Failed') return false;
  return (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** The endpoints a pod contributes under `targetPorts` (none when not ready). */
export function podEndpoints(pod: V1Pod, targetPorts: number[]): DiscoveredEndpoint[] {
  if (!isPodReady(pod)) return [];
  const podIP = pod.status!.podIP!;
  const name = pod.metadata?.name ?? '';
  const active = pod.metadata?.annotations?.[ACTIVE_PORTS_ANNOTATION];
  const live = active ? new Set(active.split(',').map((p) => Number(p.trim()))) : null;
  const out: DiscoveredEndpoint[] = [];
  targetPorts.forEach((port, rank) => {
    if (live && !live.has(port)) return;
    const host = podIP.includes(':') ? `[${podIP}]` : podIP;
    out.push({ name: `${name}-rank-${rank}`, address: `${host}:${port}`, namespace: pod.metadata?.namespace ?? '', podName: name, podIP, port, rank, labels: { ...(pod.metadata?.labels ?? {}) } });
  });
  return out;
}

interface PoolSpec {
  selector: Record<string, string>;
  targetPorts: number[];
}

/** Reads v1 (`selector.matchLabels`, `targetPorts[].number`) and v1alpha2 (`selector`, `targetPortNumber`). */
export function readPoolSpec(pool: KubernetesObject & { spec?: unknown }): PoolSpec {
  const spec = (pool.spec ?? {}) as {
    selector?: { matchLabels?: Record<string, string> } & Record<string, unknown>;
    targetPorts?: Array<{ number?: number }>;
    targetPortNumber?: number;
  };
  let selector: Record<string, string> = {};
  if (spec.selector?.matchLabels && typeof spec.selector.matchLabels === 'object') selector = { ...spec.selector.matchLabels };
  else if (spec.selector) for (const [k, v] of Object.entries(spec.selector)) if (typeof v === 'string') selector[k] = v;
  let targetPorts = (spec.targetPorts ?? []).map((p) => Number(p.number)).filter((n) => Number.isInteger(n) && n > 0);
  if (targetPorts.length === 0 && spec.targetPortNumber) targetPorts = [Number(spec.targetPortNumber)];
  return { selector, targetPorts };
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

/** Restarts a ListWatch after errors (client-node stops on any error other than 410/timeouts). */
class ResilientWatch<T extends KubernetesObject> {
  private retryMs = RETRY_MIN_MS;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly lw: ListWatch<T>;

  constructor(
    path: string,
    kc: KubeConfig,
    list: () => Promise<KubernetesListObject<T>>,
    handlers: { add(o: T): void; update(o: T): void; remove(o: T): void; listed(items: T[]): void },
    private readonly log: Logger,
    labelSelector?: string,
    fieldSelector?: string,
  ) {
    const wrapped = async () => {
      const res = await list();
      handlers.listed(res.items ?? []);
      this.retryMs = RETRY_MIN_MS;
      return res;
    };
    this.lw = new ListWatch<T>(path, new Watch(kc), wrapped, false, labelSelector, fieldSelector);
    this.lw.on('add', handlers.add);
    this.lw.on('update', handlers.update);
    this.lw.on('delete', handlers.remove);
    this.lw.on('error', (err: unknown) => {
      if (this.stopped) return;
      this.log.warn({ path, err: err instanceof Error ? err.message : String(err), retryMs: this.retryMs }, 'Kubernetes watch failed; retrying');
      this.timer = setTimeout(() => {
        if (!this.stopped) void this.lw.start().catch(() => undefined);
      }, this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    });
  }

  start(): void {
    void this.lw.start().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.lw.stop();
  }
}

export class PodDiscovery {
  private readonly byAddress = new Map<string, DiscoveredEndpoint>();
  private readonly byPod = new Map<string, Set<string>>();
  private podWatch: ResilientWatch<V1Pod> | undefined;
  private poolWatch: ResilientWatch<KubernetesObject> | undefined;
  private spec: PoolSpec | undefined;
  private specKey = '';
  private stopped = false;
  private syncedOnce = false;
  private readonly log: Logger;
  private readonly core: CoreV1Api;

  constructor(private readonly opts: PodDiscoveryOptions) {
    if (!opts.poolName && !opts.selector) throw new Error('pod discovery needs an InferencePool name or a label selector');
    if (!opts.poolName && !(opts.targetPorts && opts.targetPorts.length > 0)) throw new Error('label-selector discovery needs target ports');
    this.log = opts.logger;
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
  }

  get synced(): boolean {
    return this.syncedOnce;
  }

  endpoints(): DiscoveredEndpoint[] {
    return [...this.byAddress.values()];
  }

  start(): void {
    if (this.opts.poolName) this.watchPool();
    else this.applySpec({ selector: this.opts.selector!, targetPorts: this.opts.targetPorts! });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([this.poolWatch?.stop(), this.podWatch?.stop()]);
    for (const ep of [...this.byAddress.values()]) this.removeEndpoint(ep);
  }

  private watchPool(): void {
    const group = this.opts.poolGroup ?? POOL_GROUP;
    const version = this.opts.poolVersion ?? POOL_VERSION;
    const ns = this.opts.namespace;
    const name = this.opts.poolName!;
    const api = this.opts.kubeConfig.makeApiClient(CustomObjectsApi);
    const fieldSelector = `metadata.name=${name}`;
    const onPool = (pool: KubernetesObject) => {
      if (pool.metadata?.name !== name) return;
      const spec = readPoolSpec(pool as KubernetesObject & { spec?: unknown });
      if (spec.targetPorts.length === 0) {
        this.log.error({ pool: name }, 'InferencePool has no targetPorts; no endpoints');
      }
      this.applySpec(spec);
    };
    this.poolWatch = new ResilientWatch<KubernetesObject>(
      `/apis/${group}/${version}/namespaces/${ns}/inferencepools`,
      this.opts.kubeConfig,
      () => api.listNamespacedCustomObject({ group, version, namespace: ns, plural: 'inferencepools', fieldSelector }) as Promise<KubernetesListObject<KubernetesObject>>,
      {
        add: onPool,
        update: onPool,
        remove: (pool) => {
          if (pool.metadata?.name !== name) return;
          this.log.warn({ pool: name }, 'InferencePool deleted; dropping its endpoints');
          this.applySpec({ selector: {}, targetPorts: [] });
        },
        listed: (items) => {
          if (!items.some((p) => p.metadata?.name === name)) this.log.warn({ pool: name, namespace: ns }, 'InferencePool not found; waiting for it');
        },
      },
      this.log,
      undefined,
      fieldSelector,
    );
    this.poolWatch.start();
  }

  /** A (new) selector / port list: restart the pod watch and reconcile on its first list. */
  private applySpec(spec: PoolSpec): void {
    const key = JSON.stringify([Object.entries(spec.selector).sort(), spec.targetPorts]);
    if (key === this.specKey || this.stopped) return;
    this.specKey = key;
    this.spec = spec;
    const old = this.podWatch;
    this.podWatch = undefined;
    void old?.stop();
    if (spec.targetPorts.length === 0 || Object.keys(spec.selector).length === 0) {
      for (const ep of [...this.byAddress.values()]) this.removeEndpoint(ep);
      return;
    }
    const ns = this.opts.namespace;
    const labelSelector = labelSelectorString(spec.selector);
    this.log.info({ namespace: ns, selector: labelSelector, targetPorts: spec.targetPorts }, 'watching model-server pods');
    const watch: ResilientWatch<V1Pod> = new ResilientWatch<V1Pod>(
      `/api/v1/namespaces/${ns}/pods`,
      this.opts.kubeConfig,
      () => this.core.listNamespacedPod({ namespace: ns, labelSelector }),
      {
        add: (p) => this.podWatch === watch && this.syncPod(p),
        update: (p) => this.podWatch === watch && this.syncPod(p),
        remove: (p) => this.podWatch === watch && this.dropPod(podKey(p)),
        listed: (items) => {
          if (this.podWatch !== watch) return;
          // A full list is the truth: pods absent from it are gone (missed deletes, new selector).
          const present = new Set(items.map(podKey));
          for (const key of [...this.byPod.keys()]) if (!present.has(key)) this.dropPod(key);
          for (const p of items) this.syncPod(p);
          if (!this.syncedOnce) {
            this.syncedOnce = true;
            this.opts.onSynced?.();
          }
        },
      },
      this.log,
      labelSelector,
    );
    this.podWatch = watch;
    watch.start();
  }

  private syncPod(pod: V1Pod): void {
    const key = podKey(pod);
    const wanted = podEndpoints(pod, this.spec?.targetPorts ?? []);
    const have = this.byPod.get(key) ?? new Set<string>();
    const wantedAddrs = new Set(wanted.map((e) => e.address));
    for (const addr of have) if (!wantedAddrs.has(addr)) this.removeEndpoint(this.byAddress.get(addr)!);
    for (const ep of wanted) {
      const cur = this.byAddress.get(ep.address);
      if (!cur) this.addEndpoint(key, ep);
      else if (JSON.stringify(cur.labels) !== JSON.stringify(ep.labels)) {
        cur.labels = ep.labels;
        this.opts.onUpdate?.(cur);
      }
    }
  }

  private dropPod(key: string): void {
    for (const addr of this.byPod.get(key) ?? []) {
      const ep = this.byAddress.get(addr);
      if (ep) this.removeEndpoint(ep);
    }
    this.byPod.delete(key);
  }

  private addEndpoint(key: string, ep: DiscoveredEndpoint): void {
    this.byAddress.set(ep.address, ep);
    let set = this.byPod.get(key);
    if (!set) this.byPod.set(key, (set = new Set()));
    set.add(ep.address);
    this.log.info({ endpoint: ep.name, address: ep.address }, 'endpoint added');
    this.opts.onAdd?.(ep);
    const kv = this.opts.kvEvents;
    if (kv) {
      const host = ep.podIP.includes(':') ? `[${ep.podIP}]` : ep.podIP;
      void Promise.resolve()
        .then(() => kv.dialer.addPod(ep.address, `tcp://${host}:${kv.socketPort + ep.rank}`))
        .catch((err: unknown) => this.log.warn({ err, address: ep.address }, 'KV-events subscriber could not dial the pod'));
    }
  }

  private removeEndpoint(ep: DiscoveredEndpoint): void {
    if (!this.byAddress.delete(ep.address)) return;
    const key = `${ep.namespace}/${ep.podName}`;
    const set = this.byPod.get(key);
    set?.delete(ep.address);
    if (set && set.size === 0) this.byPod.delete(key);
    this.log.info({ endpoint: ep.name, address: ep.address }, 'endpoint removed');
    this.opts.onRemove?.(ep);
    const kv = this.opts.kvEvents;
    if (kv) {
      void Promise.resolve()
        .then(() => kv.dialer.removePod(ep.address))
        .catch((err: unknown) => this.log.warn({ err, address: ep.address }, 'KV-events subscriber could not drop the pod'));
    }
  }
}

function podKey(p: KubernetesObject): string {
  return `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;
}
