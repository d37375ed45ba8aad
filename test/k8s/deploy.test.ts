/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are untyped JSON, navigated by path in assertions */
// The Helm chart rendered (helm-template.ts stands in for `helm template`; no helm binary here)
// and validated against the Kubernetes API schemas; the vLLM examples agree with the chart;
// the Dockerfile is linted structurally (no Docker engine here to build it).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parseEndpointPickerConfig } from '../../src/scheduler/config.js';
import { TemplateSet, helmTemplate, type RenderedManifest } from './helpers/helm-template.js';
import { validateManifest } from './helpers/k8s-schema.js';

const CHART = 'deploy/helm/kvrouter-epp';
const RELEASE = { name: 'kvrouter', namespace: 'llm-d-precise' };

function byKind(ms: RenderedManifest[], kind: string): Record<string, any> {
  const m = ms.filter((x) => x.doc.kind === kind);
  assert.equal(m.length, 1, `one ${kind}`);
  return m[0].doc as Record<string, any>;
}

function assertValid(ms: RenderedManifest[]): void {
  for (const m of ms) assert.deepEqual(validateManifest(m.doc), [], `${m.source} (${String(m.doc.kind)}) is valid`);
}

describe('Helm chart kvrouter-epp', () => {
  it('renders valid manifests with the precise config, pool, ports and probes', () => {
    const { manifests, notes } = helmTemplate(CHART, RELEASE);
    assert.deepEqual(manifests.map((m) => m.doc.kind).sort(), ['ConfigMap', 'Deployment', 'InferencePool', 'NetworkPolicy', 'Role', 'RoleBinding', 'Service', 'ServiceAccount']);
    // vLLM's publisher has no authentication: the KV-event port admits only the model servers
    const np = byKind(manifests, 'NetworkPolicy');
    const kvRule = np.spec.ingress.find((r: any) => r.ports.some((p: any) => p.port === 5557));
    assert.deepEqual(kvRule.from, [{ podSelector: { matchLabels: { 'llm-d.ai/guide': 'precise-prefix-cache-aware' } } }]);
    const open = np.spec.ingress.find((r: any) => !r.from);
    assert.deepEqual(open.ports.map((p: any) => p.port).sort(), [9002, 9003, 9090]);
    assert.equal(open.ports.some((p: any) => p.port === 5557), false);
    assertValid(manifests);

    const svc = byKind(manifests, 'Service');
    assert.equal(svc.metadata.name, 'kvrouter-epp');
    assert.deepEqual(svc.spec.ports.map((p: { port: number }) => p.port), [9002, 9003, 9090, 5557]);

    const dep = byKind(manifests, 'Deployment');
    assert.deepEqual(dep.spec.selector.matchLabels, svc.spec.selector, 'Service selects the Deployment pods');
    for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(dep.spec.template.metadata.labels[k], v);
    const c = dep.spec.template.spec.containers[0];
    assert.equal(c.args[0], 'epp');
    for (const a of ['--pool-name=kvrouter', '--pool-namespace=llm-d-precise', '--config-file=/config/epp-config.yaml', '--grpc-port=9002', '--grpc-health-port=9003', '--metrics-port=9090', '--refresh-metrics-interval=50ms']) {
      assert.ok(c.args.includes(a), `arg ${a}`);
    }
    assert.deepEqual(c.livenessProbe.grpc, { port: 9003, service: 'liveness' });
    assert.deepEqual(c.readinessProbe.grpc, { port: 9003, service: 'readiness' });
    assert.equal(dep.spec.template.spec.securityContext.runAsNonRoot, true);
    assert.notEqual(dep.spec.template.spec.securityContext.runAsUser, 0);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    // Every named targetPort of the Service is a container port.
    const names = new Set(c.ports.map((p: { name: string }) => p.name));
    for (const p of svc.spec.ports) assert.ok(names.has(p.targetPort), `container port ${p.targetPort}`);
    assert.match(dep.spec.template.metadata.annotations['kvrouter.io/config-hash'], /^[0-9a-f]{64}$/);

    const pool = byKind(manifests, 'InferencePool');
    assert.equal(pool.apiVersion, 'inference.networking.k8s.io/v1');
    assert.equal(pool.metadata.name, 'kvrouter');
    assert.deepEqual(pool.spec.targetPorts, [{ number: 8000 }]);
    assert.deepEqual(pool.spec.selector.matchLabels, { 'llm-d.ai/guide': 'precise-prefix-cache-aware' });
    assert.deepEqual(pool.spec.endpointPickerRef, { name: 'kvrouter-epp', port: { number: 9002 }, failureMode: 'FailClose' });

    // RBAC: the service account may watch pods and inferencepools.
    const role = byKind(manifests, 'Role');
    const verbs = (group: string, res: string) => role.rules.find((r: { apiGroups: string[]; resources: string[] }) => r.apiGroups.includes(group) && r.resources.includes(res))?.verbs;
    assert.deepEqual(verbs('', 'pods'), ['get', 'list', 'watch']);
    assert.deepEqual(verbs('inference.networking.k8s.io', 'inferencepools'), ['get', 'list', 'watch']);
    assert.equal(byKind(manifests, 'RoleBinding').subjects[0].name, dep.spec.template.spec.serviceAccountName);

    // The generated config loads with the scheduler's own loader and carries the precise setup.
    const cfg = parseEndpointPickerConfig(byKind(manifests, 'ConfigMap').data['epp-config.yaml']);
    const precise = cfg.plugins.find((p) => p.type === 'precise-prefix-cache-scorer')!;
    const params = precise.parameters as any;
    assert.deepEqual(params.tokenProcessorConfig, { blockSize: 64, hashSeed: '42' });
    assert.equal(params.kvEventsConfig.zmqEndpoint, 'tcp://*:5557');
    assert.equal(params.kvEventsConfig.discoverPods, false);
    const weights = Object.fromEntries(cfg.schedulingProfiles[0].plugins.map((p) => [p.pluginRef, p.weight]));
    assert.deepEqual(weights, { 'decode-filter': undefined, 'precise-prefix-cache-scorer': 2, 'kv-cache-utilization-scorer': 1, 'queue-scorer': 1, 'max-score-picker': undefined });
    assert.match(notes, /KV_EVENTS_ENDPOINT=tcp:\/\/kvrouter-epp\.llm-d-precise\.svc\.cluster\.local:5557/);
  });

  it('renders discovery mode, an HF cache volume and a user config', () => {
    const { manifests } = helmTemplate(CHART, RELEASE, {
      kvEvents: { mode: 'discovery' },
      replicas: 2,
      epp: { hfCache: { enabled: true, claimName: 'hf-models' }, extraArgs: ['--ha-enable-leader-election=false'] },
      inferencePool: { targetPorts: [{ number: 8000 }, { number: 8001 }], failureMode: 'FailOpen' },
    });
    assertValid(manifests);
    const cfg = parseEndpointPickerConfig(byKind(manifests, 'ConfigMap').data['epp-config.yaml']);
    const ke = (cfg.plugins.find((p) => p.type === 'precise-prefix-cache-scorer')!.parameters as any).kvEventsConfig;
    assert.equal(ke.discoverPods, true);
    assert.deepEqual(ke.podDiscoveryConfig, { socketPort: 5557 });
    assert.equal(ke.zmqEndpoint, undefined);
    const dep = byKind(manifests, 'Deployment');
    assert.equal(dep.spec.replicas, 2);
    assert.ok(dep.spec.template.spec.volumes.some((v: any) => v.persistentVolumeClaim?.claimName === 'hf-models'));
    assert.ok(dep.spec.template.spec.containers[0].args.includes('--ha-enable-leader-election=false'));
    assert.equal(byKind(manifests, 'InferencePool').spec.endpointPickerRef.failureMode, 'FailOpen');
    assert.equal(byKind(manifests, 'InferencePool').spec.targetPorts.length, 2);

    const custom = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n  - type: queue-scorer\n';
    const c2 = helmTemplate(CHART, RELEASE, { epp: { config: custom }, inferencePool: { create: false }, rbac: { create: false }, serviceAccount: { create: false } });
    assertValid(c2.manifests);
    assert.deepEqual(c2.manifests.map((m) => m.doc.kind).sort(), ['ConfigMap', 'Deployment', 'NetworkPolicy', 'Service']);
    const off = helmTemplate(CHART, RELEASE, { networkPolicy: { enabled: false } });
    assert.equal(off.manifests.some((m) => m.doc.kind === 'NetworkPolicy'), false, 'networkPolicy.enabled=false renders none');
    assert.equal(byKind(c2.manifests, 'ConfigMap').data['epp-config.yaml'].trim(), custom.trim());
    assert.equal(byKind(c2.manifests, 'Deployment').spec.template.spec.serviceAccountName, 'default');
    // A different config changes the pods' config hash (rollout on config change).
    const h1 = byKind(manifests, 'Deployment').spec.template.metadata.annotations['kvrouter.io/config-hash'];
    const h2 = byKind(c2.manifests, 'Deployment').spec.template.metadata.annotations['kvrouter.io/config-hash'];
    assert.notEqual(h1, h2);

    assert.throws(() => helmTemplate(CHART, RELEASE, { epp: { hfCache: { enabled: true } } }), /claimName is required/);
  });

  it('the validator and the renderer reject what they do not accept', () => {
    const bad = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'Bad_Name' }, spec: { ports: [{ port: '9002', bogus: true }] } };
    const errs = validateManifest(bad);
    assert.ok(errs.some((e) => e.includes('metadata.name')));
    assert.ok(errs.some((e) => e.includes('ports[0].port: expected int32')));
    assert.ok(errs.some((e) => e.includes('ports[0].bogus: unknown field')));
    assert.ok(validateManifest({ apiVersion: 'inference.networking.k8s.io/v1', kind: 'InferencePool', metadata: { name: 'p' }, spec: { selector: { matchLabels: { a: 'b' } }, targetPorts: [], endpointPickerRef: { name: 'e', port: { number: 9002 }, failureMode: 'Maybe' } } }).length >= 2);
    const ts = new TemplateSet();
    ts.add('t', '{{ .Values.x | toJson }}');
    assert.throws(() => ts.render('t', { Values: { x: 1 } }), /toJson/);
    ts.add('u', 'a {{- if .x }} yes {{- else if .y }} y {{- else }} no {{- end }} b {{ range .l }}[{{ . }}]{{ end }}');
    assert.equal(ts.render('u', { x: false, y: 1, l: [1, 2] }), 'a y b [1][2]');
    assert.equal(ts.render('u', { l: [] }), 'a no b ');
  });
});

describe('vLLM examples', () => {
  const values = parseYaml(readFileSync(`${CHART}/values.yaml`, 'utf8')) as any;

  for (const file of ['deploy/examples/vllm-deployment.yaml', 'deploy/examples/vllm-patch.yaml']) {
    it(`${file} matches the chart (block size, hash seed, KV events endpoint, pool labels)`, () => {
      const doc = parseYaml(readFileSync(file, 'utf8')) as any;
      assert.deepEqual(validateManifest(doc, file.endsWith('patch.yaml')), []);
      const pod = doc.spec.template;
      for (const [k, v] of Object.entries(values.inferencePool.modelServers.matchLabels)) assert.equal(pod.metadata.labels[k], v, `pool selects the pods (${k})`);
      const c = pod.spec.containers.find((x: any) => x.name === 'vllm');
      assert.ok(c.args.includes(`--block-size=${values.model.blockSize}`));
      const cfg = JSON.parse(c.args[c.args.indexOf('--kv-events-config') + 1]);
      assert.equal(cfg.enable_kv_cache_events, true);
      assert.equal(cfg.publisher, 'zmq');
      assert.equal(cfg.endpoint, '$(KV_EVENTS_ENDPOINT)');
      assert.match(cfg.topic, /^kv@\$\(POD_IP\):\$\(POD_PORT\)@/);
      const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
      assert.equal(env.PYTHONHASHSEED, values.model.hashSeed);
      assert.equal(env.KV_EVENTS_ENDPOINT, `tcp://kvrouter-epp.llm-d-precise.svc.cluster.local:${values.kvEvents.port}`);
      assert.deepEqual(env.POD_IP, { fieldRef: { fieldPath: 'status.podIP' } });
      // The env vars the args reference are defined before use (Kubernetes expands $(VAR) in order).
      assert.ok(c.env.findIndex((e: any) => e.name === 'POD_IP') >= 0);
    });
  }
});

describe('Dockerfile (structural lint; no Docker engine here to build it)', () => {
  const text = readFileSync('deploy/Dockerfile', 'utf8');
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const instr = lines.map((l) => {
    const [op, ...rest] = l.split(/\s+/);
    return { op: op.toUpperCase(), args: rest.join(' ') };
  });

  it('is multi-stage, runs non-root, exposes the picker ports and copies existing paths', () => {
    const froms = instr.filter((i) => i.op === 'FROM');
    assert.ok(froms.length >= 2, 'multi-stage');
    const stages = froms.map((f) => /\bAS\s+(\S+)/i.exec(f.args)?.[1]);
    assert.ok(stages.every(Boolean), 'every stage is named');
    const lastFrom = instr.lastIndexOf(froms[froms.length - 1]);
    const final = instr.slice(lastFrom);
    const user = final.filter((i) => i.op === 'USER').at(-1);
    assert.ok(user, 'final stage sets USER');
    assert.ok(!/^(root|0)(:|$)/.test(user.args), `non-root user, got ${user.args}`);
    const exposed = final.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((p) => p.split('/')[0]);
    for (const p of ['9002', '9003', '9090', '5557']) assert.ok(exposed.includes(p), `EXPOSE ${p}`);
    for (const c of final.filter((i) => i.op === 'COPY' && i.args.includes('--from='))) {
      const from = /--from=(\S+)/.exec(c.args)![1];
      assert.ok(stages.includes(from), `COPY --from=${from} names a stage`);
    }
    // Sources copied from the build context exist in the repository.
    for (const c of instr.filter((i) => i.op === 'COPY' && !i.args.includes('--from='))) {
      const parts = c.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) assert.ok(existsSync(src), `COPY source ${src} exists`);
    }
    const entry = final.find((i) => i.op === 'ENTRYPOINT');
    assert.ok(entry && JSON.parse(entry.args).includes('bin/kvrouter.js'), 'ENTRYPOINT runs the kvrouter CLI (exec form)');
    assert.ok(final.some((i) => i.op === 'COPY' && i.args.includes('proto')), 'runtime carries the .proto files');
  });
});
