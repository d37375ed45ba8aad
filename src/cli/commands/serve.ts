// `kvrouter serve`: the OpenAI-compatible router. `--embedded` also starts two simulated vLLM
// pods (Qwen/Qwen3-0.6B) whose KV events connect to the router, as in llm-d's quickstart.
import { parseArgs } from 'node:util';
import type { EndpointSpec } from '../../endpoints/pool.js';
import { startRouter, type Router } from '../../gateway/router.js';
import { HTTP_EDGE_DEFAULTS as D } from '../../gateway/limits.js';
import { limitFlagOptions, limitsFromFlags } from '../../gateway/limit-settings.js';
import { DEFAULT_REQUEST_LIMITS as R } from '../../gateway/request-limits.js';
import { parseDuration } from '../../util/duration.js';
import { createLogger } from '../../util/logger.js';
import { stopSignal } from '../stop-signal.js';

const s = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

const HELP = `Usage: kvrouter serve [--config router.yaml] [--endpoint ip:port[;label=value...]]... [options]
       kvrouter serve --embedded        (router + two simulated vLLM pods; what \`npm start\` runs)

OpenAI-compatible router: /v1/completions, /v1/chat/completions, /v1/models, /tokenize,
/score_completions, /score_chat_completions, /metrics, /health, /ready.

Options:
  --config PATH            llm-d EndpointPickerConfig YAML (may list \`endpoints\` and \`limits\`); default llm-d's defaults
  --endpoint SPEC          an endpoint: ip:port, optionally ;key=value labels (repeatable)
  --port N                 HTTP port (default 8000, env KVROUTER_PORT)
  --host ADDR              listen address (default 127.0.0.1)
  --zmq-endpoint URL       KV-event SUB endpoint, overrides the config (e.g. tcp://*:5557)
  --log-level LEVEL        trace|debug|info|warn|error (default info; debug shows "Got pod scores")
  --scrape-interval MS     /metrics scrape period per endpoint (default 50)
  --metrics-beat DURATION  "metrics beat" log interval (Go duration, e.g. 10s; a bare number is ms; default: the config's, else 1m)
  --no-speculative         turn speculative indexing off (default on, TTL 2s)
  --shed                   429 when every endpoint is saturated (queue >= 5 or KV >= 0.8)
Limits and timeouts. Each is also a key of the config's \`limits\` section, the flag in camelCase
(--headers-timeout 30s  <->  limits: {headersTimeout: 30s}); a flag overrides the config. Flag
durations: Go syntax (30s, 500ms, 2m) or a bare number of milliseconds; config durations: Go syntax.
HTTP edge:
  --max-header-bytes N          largest request head, 431 beyond (default ${D.maxHeaderBytes})
  --max-body-bytes N            largest request body, 413 beyond (default ${D.maxBodyBytes})
  --max-connections N           open client connections; more are closed at accept (default ${D.maxConnections})
  --max-requests-per-connection N  requests on one client connection before it is closed (default ${D.maxRequestsPerConnection})
  --headers-timeout DURATION    time for a client to send its request head, 408 beyond (default ${s(D.headersTimeoutMs)})
  --request-timeout DURATION    time for a client to send its whole request (default ${s(D.requestTimeoutMs)})
  --keep-alive-timeout DURATION idle client connection lifetime (default ${s(D.keepAliveTimeoutMs)})
  --upstream-connect-timeout DURATION     connecting to a pod, then the next one is tried (default ${s(D.upstreamConnectTimeoutMs)})
  --upstream-first-byte-timeout DURATION  sending a request to a pod's response head, 504 beyond (default
                                ${s(D.upstreamFirstByteTimeoutMs)}; vLLM sends a non-streamed answer's head when it is complete)
  --upstream-idle-timeout DURATION        silence between two chunks of a pod's answer, then it is cut (default ${s(D.upstreamIdleTimeoutMs)})
  --upstream-retries N          retries on another pod while nothing reached the client: refused
                                connections, resets before the head, 502/503 (default ${D.upstreamRetries})
  --outlier-failures N          failures in a row (5xx, resets, timeouts) that eject a pod; 0 = never (default ${D.outlierConsecutiveFailures})
  --outlier-ejection DURATION   first ejection; the n-th lasts n times it (default ${s(D.outlierBaseEjectionMs)})
  --outlier-max-ejection DURATION  longest ejection (default ${s(D.outlierMaxEjectionMs)})
  --slow-start DURATION         a returning or newly added pod's ramp from 10% of its peers' concurrency to all (default ${s(D.slowStartMs)}; 0 = off)
Request limits (checked before rendering or tokenizing):
  --max-messages N         most chat messages per request, else 413 (default ${R.maxMessages})
  --max-prompt-chars N     largest prompt in characters (strings of the prompt, messages and tools,
                           plus one per JSON value), else 413 (default ${R.maxPromptChars})
  --max-prompt-tokens N    token cap of a model whose pods report no max_model_len in /v1/models,
                           else 400 (default ${R.maxPromptTokens}); a text prompt is held to it by a proven
                           lower bound on its token count before it is tokenized
  --max-json-values N      most JSON values in a request body (a token-id prompt counts one), else 413
                           (default ${R.maxJsonValues}); bodies over 64 KiB are parsed in a worker thread
On SIGTERM/SIGINT the router stops accepting and gives requests in flight 10 s to finish.
Embedded mode (--embedded):
  --pods N                 simulated pods (default 2)
  --pod-ports P1,P2        their HTTP ports (default port+1, port+2; env KVROUTER_POD_PORTS)
  --zmq-port N             router's KV-event port the pods connect to (default 5557, env KVROUTER_ZMQ_PORT)
  --model NAME             default Qwen/Qwen3-0.6B
  --block-size N           default 16
  --time-scale X           simulator wall seconds per model second (default 1)
`;

/** On SIGTERM/SIGINT, requests in flight get this long to finish. */
const DRAIN_MS = 10_000;

function parseEndpoint(spec: string): EndpointSpec {
  const [address, ...labelParts] = spec.split(';');
  if (!/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d+$/.test(address)) throw new Error(`--endpoint "${spec}": expected ip:port[;key=value...]`);
  const labels: Record<string, string> = {};
  for (const p of labelParts) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new Error(`--endpoint "${spec}": label "${p}" is not key=value`);
    labels[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return { address, labels };
}

function int(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${v}"`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      config: { type: 'string' },
      endpoint: { type: 'string', multiple: true },
      port: { type: 'string' },
      host: { type: 'string' },
      'zmq-endpoint': { type: 'string' },
      'log-level': { type: 'string' },
      'scrape-interval': { type: 'string' },
      'metrics-beat': { type: 'string' },
      'no-speculative': { type: 'boolean' },
      shed: { type: 'boolean' },
      ...limitFlagOptions(),
      embedded: { type: 'boolean' },
      pods: { type: 'string' },
      'pod-ports': { type: 'string' },
      'zmq-port': { type: 'string' },
      model: { type: 'string' },
      'block-size': { type: 'string' },
      'time-scale': { type: 'string' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const env = process.env;
  const flagLimits = limitsFromFlags(values);
  const port = int(values.port ?? env.KVROUTER_PORT, '--port') ?? 8000;
  const host = values.host ?? '127.0.0.1';
  const metricsBeatMs = values['metrics-beat'] !== undefined ? parseDuration(/^\d+$/.test(values['metrics-beat']) ? `${values['metrics-beat']}ms` : values['metrics-beat'], '--metrics-beat') : undefined;
  const common = {
    port,
    host,
    logger: createLogger({ level: values['log-level'] ?? (values.embedded ? 'debug' : 'info'), name: 'kvrouter' }),
    scrapeIntervalMs: int(values['scrape-interval'], '--scrape-interval'),
    speculativeIndexing: values['no-speculative'] ? false : true,
    shedding: values.shed === true,
    limits: flagLimits.edge,
    requestLimits: flagLimits.request,
    metricsBeatMs,
  };

  // Before anything starts: /health can answer while the embedded pods or the tokenizer still start.
  const stopped = stopSignal();
  let router: Router;
  let shutdown: () => Promise<void>;
  if (values.embedded) {
    const { startEmbedded } = await import('../../gateway/embedded.js');
    const emb = await startEmbedded({
      ...common,
      configPath: values.config,
      pods: int(values.pods, '--pods') ?? 2,
      podPorts: (values['pod-ports'] ?? env.KVROUTER_POD_PORTS)?.split(',').map((p) => int(p.trim(), '--pod-ports')!),
      zmqPort: int(values['zmq-port'] ?? env.KVROUTER_ZMQ_PORT, '--zmq-port') ?? 5557,
      model: values.model ?? 'Qwen/Qwen3-0.6B',
      blockSize: int(values['block-size'], '--block-size') ?? 16,
      timeScale: values['time-scale'] !== undefined ? Number(values['time-scale']) : 1,
    });
    router = emb.router;
    shutdown = async () => {
      await emb.router.close(DRAIN_MS);
      await emb.close();
    };
    console.error(emb.instructions);
  } else {
    router = await startRouter({
      ...common,
      configPath: values.config,
      endpoints: (values.endpoint ?? []).map(parseEndpoint),
      zmqEndpoint: values['zmq-endpoint'],
    });
    shutdown = () => router.close(DRAIN_MS);
    if (router.pool.all().length === 0) router.logger.warn('no endpoints configured (--endpoint or `endpoints` in the config): every request will get 503');
  }

  router.logger.info({ signal: await stopped }, 'shutting down');
  await shutdown();
  return 0;
}
