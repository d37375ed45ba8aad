// Validates manifests against the Kubernetes API types shipped in @kubernetes/client-node
// (generated from the Kubernetes OpenAPI spec): every field must exist on its type, values
// must have the declared types (string, int32/int64, boolean, IntOrString, maps, arrays,
// nested objects), and required fields (non-optional in the generated .d.ts) must be present.
// InferencePool (a CRD, absent there) is checked against GIE's v1 API types by hand.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as k8s from '@kubernetes/client-node';

interface Attr {
  name: string;
  baseName: string;
  type: string;
  format: string;
}

const models = k8s as unknown as Record<string, { getAttributeTypeMap?: () => Attr[] }>;
const require = createRequire(import.meta.url);
const modelsDir = join(dirname(require.resolve('@kubernetes/client-node')), 'gen', 'models');
const requiredCache = new Map<string, Set<string>>();

/** Fields without `?` in the generated declaration. */
function requiredFields(type: string): Set<string> {
  let r = requiredCache.get(type);
  if (!r) {
    r = new Set<string>();
    try {
      const dts = readFileSync(join(modelsDir, `${type}.d.ts`), 'utf8');
      for (const m of dts.matchAll(/^\s+'([A-Za-z0-9_$]+)':\s/gm)) r.add(m[1]);
    } catch {
      // No declaration file: no required fields known.
    }
    requiredCache.set(type, r);
  }
  return r;
}

const KIND_TYPES: Record<string, string> = {
  'v1/ConfigMap': 'V1ConfigMap',
  'v1/Service': 'V1Service',
  'v1/ServiceAccount': 'V1ServiceAccount',
  'v1/Pod': 'V1Pod',
  'apps/v1/Deployment': 'V1Deployment',
  'rbac.authorization.k8s.io/v1/Role': 'V1Role',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'V1RoleBinding',
  'rbac.authorization.k8s.io/v1/ClusterRole': 'V1ClusterRole',
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'V1ClusterRoleBinding',
  'networking.k8s.io/v1/NetworkPolicy': 'V1NetworkPolicy',
};

function checkScalar(type: string, format: string, v: unknown, path: string, errors: string[]): boolean {
  switch (type) {
    case 'string':
    case 'Date':
      if (typeof v !== 'string') errors.push(`${path}: expected string, got ${JSON.stringify(v)}`);
      return true;
    case 'number':
      if (typeof v !== 'number' || ((format === 'int32' || format === 'int64') && !Number.isInteger(v))) errors.push(`${path}: expected ${format || 'number'}, got ${JSON.stringify(v)}`);
      else if (format === 'int32' && (v > 2 ** 31 - 1 || v < -(2 ** 31))) errors.push(`${path}: out of int32 range`);
      return true;
    case 'boolean':
      if (typeof v !== 'boolean') errors.push(`${path}: expected boolean, got ${JSON.stringify(v)}`);
      return true;
    case 'IntOrString':
      if (typeof v !== 'string' && !(typeof v === 'number' && Number.isInteger(v))) errors.push(`${path}: expected int or string, got ${JSON.stringify(v)}`);
      return true;
    case 'any':
    case 'object':
      return true;
    default:
      return false;
  }
}

export function validateType(type: string, v: unknown, path: string, errors: string[], format = '', partial = false): void {
  if (v === null || v === undefined) return;
  if (checkScalar(type, format, v, path, errors)) return;
  let m = /^Array<(.+)>$/.exec(type);
  if (m) {
    if (!Array.isArray(v)) return void errors.push(`${path}: expected array, got ${JSON.stringify(v)}`);
    v.forEach((x, i) => validateType(m![1], x, `${path}[${i}]`, errors, '', partial));
    return;
  }
  m = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (m) {
    if (typeof v !== 'object' || Array.isArray(v)) return void errors.push(`${path}: expected map, got ${JSON.stringify(v)}`);
    for (const [k, x] of Object.entries(v as object)) validateType(m[1], x, `${path}.${k}`, errors, '', partial);
    return;
  }
  const model = models[type];
  if (!model?.getAttributeTypeMap) return void errors.push(`${path}: no schema for type ${type}`);
  if (typeof v !== 'object' || Array.isArray(v)) return void errors.push(`${path}: expected object (${type}), got ${JSON.stringify(v)}`);
  const attrs = model.getAttributeTypeMap();
  const byName = new Map(attrs.map((a) => [a.baseName, a]));
  for (const [k, x] of Object.entries(v as object)) {
    const a = byName.get(k);
    if (!a) {
      errors.push(`${path}.${k}: unknown field of ${type}`);
      continue;
    }
    validateType(a.type, x, `${path}.${k}`, errors, a.format, partial);
  }
  if (partial && !(type === 'V1Container' || type === 'V1EnvVar')) return;
  for (const req of requiredFields(type)) {
    const a = attrs.find((x) => x.name === req);
    const key = a?.baseName ?? req;
    if ((v as Record<string, unknown>)[key] === undefined) errors.push(`${path}.${key}: required by ${type}`);
  }
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function checkInferencePool(doc: Record<string, unknown>, errors: string[]): void {
  const spec = doc.spec as Record<string, unknown> | undefined;
  if (!spec || typeof spec !== 'object') return void errors.push('spec: required');
  const allowed = new Set(['selector', 'targetPorts', 'endpointPickerRef']);
  for (const k of Object.keys(spec)) if (!allowed.has(k)) errors.push(`spec.${k}: unknown field of InferencePoolSpec`);
  const sel = spec.selector as { matchLabels?: unknown } | undefined;
  if (!sel || typeof sel.matchLabels !== 'object' || sel.matchLabels === null) errors.push('spec.selector.matchLabels: required map');
  else {
    for (const k of Object.keys(sel)) if (k !== 'matchLabels') errors.push(`spec.selector.${k}: unknown field (v1 selectors are matchLabels only)`);
    for (const [k, v] of Object.entries(sel.matchLabels as object)) if (typeof v !== 'string') errors.push(`spec.selector.matchLabels.${k}: expected string`);
  }
  const ports = spec.targetPorts;
  if (!Array.isArray(ports) || ports.length < 1 || ports.length > 8) errors.push('spec.targetPorts: 1 to 8 ports required');
  else
    ports.forEach((p: { number?: unknown }, i) => {
      if (!Number.isInteger(p?.number) || (p.number as number) < 1 || (p.number as number) > 65535) errors.push(`spec.targetPorts[${i}].number: port 1-65535 required`);
      for (const k of Object.keys(p ?? {})) if (k !== 'number') errors.push(`spec.targetPorts[${i}].${k}: unknown field`);
    });
  const ref = spec.endpointPickerRef as Record<string, unknown> | undefined;
  if (!ref) return void errors.push('spec.endpointPickerRef: required');
  for (const k of Object.keys(ref)) if (!['group', 'kind', 'name', 'port', 'failureMode'].includes(k)) errors.push(`spec.endpointPickerRef.${k}: unknown field`);
  if (typeof ref.name !== 'string' || !DNS1123_SUBDOMAIN.test(ref.name)) errors.push('spec.endpointPickerRef.name: required object name');
  if (ref.kind !== undefined && ref.kind !== 'Service') errors.push('spec.endpointPickerRef.kind: must be Service');
  const port = ref.port as { number?: unknown } | undefined;
  if ((ref.kind ?? 'Service') === 'Service' && (!port || !Number.isInteger(port.number))) errors.push('spec.endpointPickerRef.port.number: required for a Service');
  if (ref.failureMode !== undefined && ref.failureMode !== 'FailOpen' && ref.failureMode !== 'FailClose') errors.push('spec.endpointPickerRef.failureMode: FailOpen or FailClose');
}

/**
 * Errors of one manifest (empty when valid). `partial`: a strategic-merge patch, where only
 * list items keyed by name (containers, env) must be complete.
 */
export function validateManifest(doc: Record<string, unknown>, partial = false): string[] {
  const errors: string[] = [];
  const apiVersion = doc.apiVersion;
  const kind = doc.kind;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return ['apiVersion and kind are required strings'];
  const meta = doc.metadata as { name?: unknown; namespace?: unknown; labels?: Record<string, unknown> } | undefined;
  if (!meta || typeof meta.name !== 'string' || !DNS1123_SUBDOMAIN.test(meta.name) || meta.name.length > 253) errors.push(`metadata.name: a DNS-1123 name is required, got ${JSON.stringify(meta?.name)}`);
  if (meta?.namespace !== undefined && (typeof meta.namespace !== 'string' || !DNS1123_LABEL.test(meta.namespace))) errors.push('metadata.namespace: a DNS-1123 label');
  for (const [k, v] of Object.entries(meta?.labels ?? {})) {
    if (typeof v !== 'string' || v.length > 63 || !/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(v)) errors.push(`metadata.labels.${k}: invalid label value ${JSON.stringify(v)}`);
  }
  if (apiVersion === 'inference.networking.k8s.io/v1' && kind === 'InferencePool') {
    validateType('V1ObjectMeta', doc.metadata, 'metadata', errors);
    checkInferencePool(doc, errors);
    for (const k of Object.keys(doc)) if (!['apiVersion', 'kind', 'metadata', 'spec', 'status'].includes(k)) errors.push(`${k}: unknown top-level field`);
    return errors;
  }
  const type = KIND_TYPES[`${apiVersion}/${kind}`];
  if (!type) return [`no schema for ${apiVersion} ${kind}`];
  validateType(type, doc, kind, errors, '', partial);
  return errors;
}
