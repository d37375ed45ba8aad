// A small Kubernetes API server for tests, speaking the real list+watch protocol over HTTP on
// loopback: collections under /api/v1/namespaces/<ns>/<plural> and
// /apis/<group>/<version>/namespaces/<ns>/<plural>; list responses with
// metadata.resourceVersion; `?watch=true&resourceVersion=N` streams JSON lines
// ({"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":...}) from after N and then
// live; labelSelector (k=v, k!=v, k) and fieldSelector (metadata.name, metadata.namespace);
// objects moving out of (into) a watch's selector arrive as DELETED (ADDED), as the watch cache
// does; a resourceVersion older than the compaction point gets 410 Gone (ERROR event).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

type Obj = { apiVersion?: string; kind?: string; metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; [k: string]: unknown }; [k: string]: unknown };

interface Event {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  coll: string;
  object: Obj;
  previous?: Obj;
}

interface Watcher {
  coll: string;
  ns: string;
  labelSel: string | null;
  fieldSel: string | null;
  res: ServerResponse;
}

function matchLabels(sel: string | null, labels: Record<string, string> | undefined): boolean {
  if (!sel) return true;
  const l = labels ?? {};
  for (const raw of sel.split(',')) {
    const t = raw.trim();
    if (!t) continue;
    let m: RegExpExecArray | null;
    if ((m = /^(.+?)!=(.*)$/.exec(t))) {
      if (l[m[1]] === m[2]) return false;
    } else if ((m = /^(.+?)==?(.*)$/.exec(t))) {
      if (l[m[1]] !== m[2]) return false;
    } else if (t.startsWith('!')) {
      if (t.slice(1) in l) return false;
    } else if (!(t in l)) return false;
  }
  return true;
}

function matchFields(sel: string | null, o: Obj): boolean {
  if (!sel) return true;
  for (const raw of sel.split(',')) {
    const m = /^(.+?)==?(.*)$/.exec(raw.trim());
    if (!m) continue;
    const v = m[1] === 'metadata.name' ? o.metadata.name : m[1] === 'metadata.namespace' ? o.metadata.namespace : undefined;
    if (v !== m[2]) return false;
  }
  return true;
}

export class FakeApiServer {
  private server: Server | undefined;
  private rv = 100;
  private compactedRv = 0;
  private readonly objects = new Map<string, Map<string, Obj>>(); // coll|ns -> name -> obj
  private readonly events: Event[] = [];
  private readonly watchers = new Set<Watcher>();
  /** Requests seen, for assertions (method + url). */
  readonly requests: string[] = [];
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'tester', token: 'test-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'tester', namespace: 'default' }],
      currentContext: 'fake',
    });
    return kc;
  }

  /** Collection key: '' group for core. */
  private key(coll: string, ns: string): string {
    return `${coll}|${ns}`;
  }

  private bucket(coll: string, ns: string): Map<string, Obj> {
    const k = this.key(coll, ns);
    let b = this.objects.get(k);
    if (!b) this.objects.set(k, (b = new Map()));
    return b;
  }

  /** Create or replace an object in collection `coll` (e.g. 'v1/pods', 'inference.networking.k8s.io/v1/inferencepools'). */
  apply(coll: string, obj: Obj): Obj {
    const ns = obj.metadata.namespace ?? 'default';
    const b = this.bucket(coll, ns);
    const prev = b.get(obj.metadata.name);
    const stored: Obj = structuredClone(obj);
    stored.metadata.namespace = ns;
    stored.metadata.resourceVersion = String(++this.rv);
    b.set(obj.metadata.name, stored);
    this.emit({ rv: this.rv, type: prev ? 'MODIFIED' : 'ADDED', coll, object: stored, previous: prev });
    return stored;
  }

  remove(coll: string, ns: string, name: string): void {
    const b = this.bucket(coll, ns);
    const prev = b.get(name);
    if (!prev) return;
    b.delete(name);
    const gone: Obj = structuredClone(prev);
    gone.metadata.resourceVersion = String(++this.rv);
    this.emit({ rv: this.rv, type: 'DELETED', coll, object: gone, previous: prev });
  }

  get(coll: string, ns: string, name: string): Obj | undefined {
    const o = this.bucket(coll, ns).get(name);
    return o ? structuredClone(o) : undefined;
  }

  /** Forget history up to now: watches from an older resourceVersion get 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
    this.events.length = 0;
  }

  /** The server closes every open watch (clients must re-watch from their last resourceVersion). */
  closeWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  /** Sends a BOOKMARK with the current resourceVersion on every open watch. */
  bookmark(): void {
    for (const w of this.watchers) w.res.write(JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } } }) + '\n');
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  private emit(ev: Event): void {
    this.events.push(ev);
    for (const w of this.watchers) this.deliver(w, ev);
  }

  private deliver(w: Watcher, ev: Event): void {
    if (w.coll !== ev.coll || (ev.object.metadata.namespace ?? '') !== w.ns) return;
    const now = matchLabels(w.labelSel, ev.object.metadata.labels) && matchFields(w.fieldSel, ev.object);
    const before = ev.previous ? matchLabels(w.labelSel, ev.previous.metadata.labels) && matchFields(w.fieldSel, ev.previous) : false;
    let type: string = ev.type;
    if (ev.type === 'MODIFIED') {
      if (now && !before) type = 'ADDED';
      else if (!now && before) type = 'DELETED';
      else if (!now) return;
    } else if (ev.type === 'DELETED' ? !before : !now) return;
    w.res.write(JSON.stringify({ type, object: ev.object }) + '\n');
  }

  private route(path: string): { coll: string; ns: string; kind: string } | null {
    let m = /^\/api\/v1\/namespaces\/([^/]+)\/([^/]+)$/.exec(path);
    if (m) return { coll: `v1/${m[2]}`, ns: m[1], kind: m[2] === 'pods' ? 'PodList' : 'List' };
    m = /^\/apis\/([^/]+)\/([^/]+)\/namespaces\/([^/]+)\/([^/]+)$/.exec(path);
    if (m) return { coll: `${m[1]}/${m[2]}/${m[4]}`, ns: m[3], kind: 'List' };
    return null;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/', this.url);
    const r = this.route(url.pathname);
    if (req.method !== 'GET' || !r) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
      return;
    }
    const labelSel = url.searchParams.get('labelSelector');
    const fieldSel = url.searchParams.get('fieldSelector');
    if (url.searchParams.get('watch') === 'true') return this.watch(r.coll, r.ns, labelSel, fieldSel, url.searchParams.get('resourceVersion'), res);
    const items = [...this.bucket(r.coll, r.ns).values()].filter((o) => matchLabels(labelSel, o.metadata.labels) && matchFields(fieldSel, o));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: r.kind, apiVersion: r.coll.startsWith('v1/') ? 'v1' : r.coll.split('/').slice(0, 2).join('/'), metadata: { resourceVersion: String(this.rv) }, items }));
  }

  private watch(coll: string, ns: string, labelSel: string | null, fieldSel: string | null, rvParam: string | null, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const from = rvParam ? Number(rvParam) : this.rv;
    if (rvParam && from < this.compactedRv) {
      res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `too old resource version: ${from} (${this.compactedRv})`, reason: 'Expired', code: 410 } }) + '\n');
      return;
    }
    const w: Watcher = { coll, ns, labelSel, fieldSel, res };
    for (const ev of this.events) if (ev.rv > from) this.deliver(w, ev);
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
  }
}

export interface FakePodOptions {
  ip?: string;
  ready?: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  terminating?: boolean;
  namespace?: string;
}

export function fakePod(name: string, o: FakePodOptions = {}): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: o.namespace ?? 'default',
      labels: o.labels ?? {},
      ...(o.annotations ? { annotations: o.annotations } : {}),
      ...(o.terminating ? { deletionTimestamp: new Date().toISOString() } : {}),
    },
    spec: { containers: [{ name: 'vllm', image: 'vllm/vllm-openai' }] },
    status: {
      phase: 'Running',
      ...(o.ip ? { podIP: o.ip } : {}),
      conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
    },
  };
}

export function fakePool(name: string, selector: Record<string, string>, ports: number[], namespace = 'default'): Obj {
  return {
    apiVersion: 'inference.networking.k8s.io/v1',
    kind: 'InferencePool',
    metadata: { name, namespace },
    spec: { selector: { matchLabels: selector }, targetPorts: ports.map((number) => ({ number })), endpointPickerRef: { name: `${name}-epp`, port: { number: 9002 } } },
  };
}

export const PODS = 'v1/pods';
export const POOLS = 'inference.networking.k8s.io/v1/inferencepools';
