// `kvrouter epp`: a drop-in endpoint picker for the Gateway API Inference Extension (Envoy
// ext_proc), with llm-d EPP's flags. Scheduling is the same stack as `kvrouter serve`.
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import type { EndpointSpec } from '../../endpoints/pool.js';
import { parseLabelSelector, POOL_GROUP } from '../../k8s/discovery.js';
import { startEpp, type Epp, type EppOptions } from '../../k8s/epp.js';
import { parseDuration } from '../../util/duration.js';
import { createLogger } from '../../util/logger.js';
import { stopSignal } from '../stop-signal.js';

const HELP = `Usage: kvrouter epp --pool-name NAME [--pool-namespace NS] --config-file PATH [options]
       kvrouter epp --endpoint-selector k=v[,k=v] --endpoint-target-ports 8000[,8001] ...
       kvrouter epp --endpoints ip:port[,ip:port] ...     (no Kubernetes: a static list)

Envoy ext_proc endpoint picker (Gateway API Inference Extension protocol): answers each request
with x-gateway-destination-endpoint (+ envoy.lb metadata), scheduling exactly as kvrouter serve.

Endpoints:
  --pool-name NAME               InferencePool to serve (its selector and targetPorts pick the pods)
  --pool-namespace NS            its namespace (default $POD_NAMESPACE, else "default")
  --pool-group GROUP             InferencePool API group (default ${POOL_GROUP}; v1alpha2: inference.networking.x-k8s.io)
  --endpoint-selector k=v,...    instead of a pool: pods with these labels
  --endpoint-target-ports P,...  their ports (one endpoint per port: data-parallel ranks)
  --endpoints ip:port,...        static endpoints, no Kubernetes API
  --kubeconfig PATH              default: in-cluster service account, else $KUBECONFIG / ~/.kube/config
Scheduling:
  --config-file PATH             EndpointPickerConfig YAML (default: llm-d's defaults)
  --config-text YAML             the same, inline
  --refresh-metrics-interval D   /metrics scrape period per endpoint (default 50ms)
  --zmq-endpoint URL             overrides the precise scorer's kvEventsConfig.zmqEndpoint
  --no-speculative               speculative indexing off (default on, TTL 2s)
  --shed                         429 when every endpoint is saturated
Serving:
  --grpc-port N                  ext_proc gRPC port (default 9002)
  --grpc-health-port N           gRPC health port (default 9003): services liveness, readiness,
                                 ${'envoy.service.ext_proc.v3.ExternalProcessor'}
  --metrics-port N               Prometheus /metrics over HTTP (default 9090; -1 off)
  --host ADDR                    listen address (default 0.0.0.0)
  --v N, -v N                    verbosity as llm-d: 2 default, 3 verbose, 4 debug (scores), 5 trace
  --log-level LEVEL              trace|debug|info|warn|error (overrides --v)
  --max-body-bytes N             largest request body (default 64 MiB; larger: 413)
  --conformance-test-hooks       GIE conformance: honour test-epp-endpoint-selection, echo the served
                                 endpoint in x-conformance-test-served-endpoint
Accepted for llm-d compatibility: --secure-serving=false, --zap-encoder=json, --ha-enable-leader-election=false.
`;

function int(v: string | undefined, name: string, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > 65535) throw new Error(`${name} must be an integer port/number, got "${v}"`);
  return n;
}

function ports(v: string): number[] {
  return v.split(',').map((p) => {
    const n = Number(p.trim());
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`--endpoint-target-ports: "${p}" is not a port`);
    return n;
  });
}

function levelFor(v: number): string {
  if (v >= 5) return 'trace';
  if (v >= 4) return 'debug';
  return 'info';
}

function boolFlag(v: string | undefined, name: string, supported: string): void {
  if (v !== undefined && v !== supported) throw new Error(`${name}=${v} is not supported (only ${supported})`);
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      'pool-name': { type: 'string' },
      'pool-namespace': { type: 'string' },
      'pool-group': { type: 'string' },
      'endpoint-selector': { type: 'string' },
      'endpoint-target-ports': { type: 'string' },
      endpoints: { type: 'string' },
      kubeconfig: { type: 'string' },
      'config-file': { type: 'string' },
      'config-text': { type: 'string' },
      'refresh-metrics-interval': { type: 'string' },
      'zmq-endpoint': { type: 'string' },
      'no-speculative': { type: 'boolean' },
      shed: { type: 'boolean' },
      'grpc-port': { type: 'string' },
      'grpc-health-port': { type: 'string' },
      'metrics-port': { type: 'string' },
      host: { type: 'string' },
      v: { type: 'string', short: 'v' },
      'log-level': { type: 'string' },
      'max-body-bytes': { type: 'string' },
      'conformance-test-hooks': { type: 'boolean' },
      'secure-serving': { type: 'string' },
      'zap-encoder': { type: 'string' },
      'ha-enable-leader-election': { type: 'string' },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  boolFlag(values['secure-serving'], '--secure-serving', 'false');
  boolFlag(values['zap-encoder'], '--zap-encoder', 'json');
  boolFlag(values['ha-enable-leader-election'], '--ha-enable-leader-election', 'false');
  if (values['config-file'] && values['config-text']) throw new Error('give --config-file or --config-text, not both');

  const opts: EppOptions = {
    configPath: values['config-file'],
    config: values['config-text'],
    host: values.host,
    grpcPort: int(values['grpc-port'], '--grpc-port'),
    grpcHealthPort: int(values['grpc-health-port'], '--grpc-health-port'),
    metricsPort: values['metrics-port'] === '-1' ? -1 : int(values['metrics-port'], '--metrics-port'),
    refreshMetricsIntervalMs: values['refresh-metrics-interval'] !== undefined ? parseDuration(values['refresh-metrics-interval'], '--refresh-metrics-interval') : undefined,
    zmqEndpoint: values['zmq-endpoint'],
    speculativeIndexing: values['no-speculative'] ? false : undefined,
    shedding: values.shed ? true : undefined,
    maxBodyBytes: values['max-body-bytes'] !== undefined ? Number(values['max-body-bytes']) : undefined,
    logger: createLogger({ level: values['log-level'] ?? levelFor(Number(values.v ?? 2)), name: 'kvrouter-epp' }),
    conformanceHooks: values['conformance-test-hooks'] === true,
  };

  const namespace = values['pool-namespace'] ?? process.env.POD_NAMESPACE ?? 'default';
  if (values['pool-name'] || values['endpoint-selector']) {
    if (values.endpoints) throw new Error('--endpoints cannot be combined with --pool-name / --endpoint-selector');
    const kc = new KubeConfig();
    if (values.kubeconfig) kc.loadFromFile(values.kubeconfig);
    else kc.loadFromDefault();
    if (values['pool-name']) {
      const group = values['pool-group'] ?? POOL_GROUP;
      opts.discovery = { kubeConfig: kc, namespace, poolName: values['pool-name'], poolGroup: group, poolVersion: group === POOL_GROUP ? 'v1' : 'v1alpha2' };
    } else {
      if (!values['endpoint-target-ports']) throw new Error('--endpoint-selector needs --endpoint-target-ports');
      opts.discovery = { kubeConfig: kc, namespace, selector: parseLabelSelector(values['endpoint-selector']!), targetPorts: ports(values['endpoint-target-ports']) };
    }
  } else if (values.endpoints) {
    opts.endpoints = values.endpoints.split(',').map((a): EndpointSpec => ({ address: a.trim() }));
  } else {
    throw new Error('no endpoints: give --pool-name, --endpoint-selector with --endpoint-target-ports, or --endpoints (see --help)');
  }

  const stopped = stopSignal();
  const epp: Epp = await startEpp(opts);
  epp.router.logger.info({ signal: await stopped }, 'shutting down');
  await epp.close().catch((err: unknown) => epp.router.logger.error({ err }, 'shutdown failed'));
  return 0;
}
