// Pod discovery against a fake API server speaking the real list+watch protocol over HTTP.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { PodDiscovery, parseLabelSelector, type DiscoveredEndpoint, type KvEventDialer } from '../../src/k8s/discovery.js';
import { FakeApiServer, PODS, POOLS, fakePod, fakePool } from './helpers/fake-apiserver.js';
import { waitUntil } from './helpers/wait.js';

const logger = pino({ level: 'silent' });

class RecordingDialer implements KvEventDialer {
  readonly dialed = new Map<string, string>();
  readonly log: string[] = [];
  addPod(podId: string, endpoint: string): void {
    this.dialed.set(podId, endpoint);
    this.log.push(`+${podId}`);
  }
  removePod(podId: string): void {
    this.dialed.delete(podId);
    this.log.push(`-${podId}`);
  }
}

function addrs(d: PodDiscovery): string[] {
  return d.endpoints().map((e) => e.address).sort();
}

describe('pod discovery (label selector)', () => {
  const api = new FakeApiServer();
  let disc: PodDiscovery;
  const dialer = new RecordingDialer();
  const added: DiscoveredEndpoint[] = [];
  const removed: DiscoveredEndpoint[] = [];

  before(async () => {
    await api.start();
    const labels = { app: 'vllm' };
    api.apply(PODS, fakePod('a', { ip: '10.1.0.1', labels }));
    api.apply(PODS, fakePod('b', { ip: '10.1.0.2', labels, ready: false }));
    api.apply(PODS, fakePod('c', { ip: '10.1.0.3', labels, terminating: true }));
    api.apply(PODS, fakePod('d', { ip: '10.1.0.4', labels: { app: 'other' } }));
    api.apply(PODS, fakePod('e', { labels })); // scheduled, no IP yet
    api.apply(PODS, fakePod('x', { ip: '10.9.0.1', labels, namespace: 'elsewhere' }));
    disc = new PodDiscovery({
      kubeConfig: api.kubeConfig(),
      namespace: 'default',
      selector: parseLabelSelector('app=vllm'),
      targetPorts: [8000],
      logger,
      kvEvents: { dialer, socketPort: 5557 },
      onAdd: (e) => added.push(e),
      onRemove: (e) => removed.push(e),
    });
    disc.start();
    await waitUntil(() => disc.synced, 'initial sync');
  });
  after(async () => {
    await disc.stop();
    await api.stop();
  });

  it('keeps only ready, non-terminating, selected pods with an IP, in its namespace', async () => {
    assert.deepEqual(addrs(disc), ['10.1.0.1:8000']);
    const ep = disc.endpoints()[0];
    assert.equal(ep.name, 'a-rank-0');
    assert.deepEqual(ep.labels, { app: 'vllm' });
    assert.equal(dialer.dialed.get('10.1.0.1:8000'), 'tcp://10.1.0.1:5557');
    await waitUntil(() => api.requests.some((r) => r.includes('watch=true')), 'watch started');
    assert.ok(api.requests.filter((r) => r.includes('/pods')).every((r) => r.includes('labelSelector=app%3Dvllm')), `selector on list and watch: ${api.requests.join(' ')}`);
  });

  it('follows readiness, IP assignment, deletion marks, relabels and deletes', async () => {
    const labels = { app: 'vllm' };
    api.apply(PODS, fakePod('b', { ip: '10.1.0.2', labels }));
    api.apply(PODS, fakePod('e', { ip: '10.1.0.5', labels }));
    await waitUntil(() => addrs(disc).length === 3, 'b and e become endpoints');
    assert.deepEqual(addrs(disc), ['10.1.0.1:8000', '10.1.0.2:8000', '10.1.0.5:8000']);
    assert.equal(dialer.dialed.get('10.1.0.5:8000'), 'tcp://10.1.0.5:5557');

    api.apply(PODS, fakePod('a', { ip: '10.1.0.1', labels, terminating: true }));
    await waitUntil(() => !addrs(disc).includes('10.1.0.1:8000'), 'terminating pod leaves');
    assert.equal(dialer.dialed.has('10.1.0.1:8000'), false, 'subscriber drops the pod');

    api.apply(PODS, fakePod('b', { ip: '10.1.0.2', labels: { app: 'retired' } }));
    await waitUntil(() => !addrs(disc).includes('10.1.0.2:8000'), 'relabelled pod leaves');

    api.apply(PODS, fakePod('e', { ip: '10.1.0.5', labels: { app: 'vllm', 'llm-d.ai/role': 'decode' } }));
    await waitUntil(() => disc.endpoints().some((e) => e.labels['llm-d.ai/role'] === 'decode'), 'label update seen');

    api.remove(PODS, 'default', 'e');
    await waitUntil(() => addrs(disc).length === 0, 'deleted pod leaves');
    assert.deepEqual([...dialer.dialed.keys()], []);
    assert.ok(removed.length >= 3);
  });

  it('re-watches when the server closes the stream, and relists after 410 Gone', async () => {
    const labels = { app: 'vllm' };
    api.closeWatches();
    api.apply(PODS, fakePod('f', { ip: '10.1.0.6', labels }));
    await waitUntil(() => addrs(disc).includes('10.1.0.6:8000'), 'event after a re-watch', 8000);

    // History compacted while the watch was down, and a pod vanished meanwhile: the watch gets
    // 410, the client relists and the list shows the pod is gone.
    api.apply(PODS, fakePod('g', { ip: '10.1.0.7', labels }));
    await waitUntil(() => addrs(disc).includes('10.1.0.7:8000'), 'g added');
    api.closeWatches();
    api.remove(PODS, 'default', 'f');
    api.compact();
    await waitUntil(() => !addrs(disc).includes('10.1.0.6:8000'), 'f removed after relist', 8000);
    assert.ok(addrs(disc).includes('10.1.0.7:8000'));
  });
});

describe('pod discovery (InferencePool, data-parallel ranks)', () => {
  const api = new FakeApiServer();
  let disc: PodDiscovery;
  const dialer = new RecordingDialer();

  before(async () => {
    await api.start();
    api.apply(POOLS, fakePool('qwen-pool', { 'llm-d.ai/guide': 'precise' }, [8000, 8001]));
    api.apply(PODS, fakePod('p0', { ip: '10.2.0.1', labels: { 'llm-d.ai/guide': 'precise' } }));
    api.apply(PODS, fakePod('p1', { ip: '10.2.0.2', labels: { 'llm-d.ai/guide': 'precise' }, annotations: { 'llm-d.ai/active-ports': '8000' } }));
    disc = new PodDiscovery({ kubeConfig: api.kubeConfig(), namespace: 'default', poolName: 'qwen-pool', logger, kvEvents: { dialer, socketPort: 5557 } });
    disc.start();
    await waitUntil(() => disc.synced, 'initial sync');
  });
  after(async () => {
    await disc.stop();
    await api.stop();
  });

  it('makes one endpoint per target port, named <pod>-rank-<i>, dialing port + rank', () => {
    assert.deepEqual(addrs(disc), ['10.2.0.1:8000', '10.2.0.1:8001', '10.2.0.2:8000']);
    const r1 = disc.endpoints().find((e) => e.address === '10.2.0.1:8001')!;
    assert.equal(r1.name, 'p0-rank-1');
    assert.equal(r1.rank, 1);
    assert.equal(dialer.dialed.get('10.2.0.1:8001'), 'tcp://10.2.0.1:5558');
    assert.equal(dialer.dialed.get('10.2.0.1:8000'), 'tcp://10.2.0.1:5557');
    assert.ok(api.requests.some((r) => r.startsWith('GET /apis/inference.networking.k8s.io/v1/namespaces/default/inferencepools') && r.includes('fieldSelector=metadata.name%3Dqwen-pool')));
  });

  it('follows changes of the pool spec (selector and target ports)', async () => {
    api.apply(POOLS, fakePool('qwen-pool', { 'llm-d.ai/guide': 'precise' }, [9000]));
    await waitUntil(() => addrs(disc).join() === '10.2.0.1:9000', 'ports switched to 9000 (p1 has no active 9000)');
    assert.deepEqual([...dialer.dialed.keys()], ['10.2.0.1:9000']);
    api.apply(PODS, fakePod('q0', { ip: '10.2.0.9', labels: { pool: 'b' } }));
    api.apply(POOLS, fakePool('qwen-pool', { pool: 'b' }, [9000]));
    await waitUntil(() => addrs(disc).join() === '10.2.0.9:9000', 'selector switched');
    api.remove(POOLS, 'default', 'qwen-pool');
    await waitUntil(() => addrs(disc).length === 0, 'pool deleted: no endpoints');
  });
});
