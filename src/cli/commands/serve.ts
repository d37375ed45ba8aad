// `kvrouter serve`: the OpenAI-compatible router. `--embedded` also starts two simulated vLLM
// pods (Qwen/Qwen3-0.6B) whose KV events connect to the router, as in llm-d's quickstart.
import { parseArgs } from 'node:util';
import type { EndpointSpec } from '../../endpoints/pool.js';
import { startRouter, type Router } from '../../gateway/router.js';
import { parseDurationMs } from '../../scheduler/plugins/params.js';

const HELP = `Usage: kvrouter serve [--config router.yaml] [--endpoint ip:port[;label=value...]]... [options]
       kvrouter serve --embedded        (router + two simulated vLLM pods; what \`npm start\` runs)

OpenAI-compatible router: /v1/completions, /v1/chat/completions, /v1/models, /tokenize,
/score_completions, /score_chat_completions, /metrics, /health, /ready.

Options:
  --config PATH            llm-d EndpointPickerConfig YAML (may list \`endpoints\`); default llm-d's defaults
  --endpoint SPEC          an endpoint: ip:port, optionally ;key=value labels (repeatable)
  --port N                 HTTP port (default 8000, env KVROUTER_PORT)
  --host ADDR              listen address (default 127.0.0.1)
  --zmq-endpoint URL       KV-event SUB endpoint, overrides the config (e.g. tcp://*:5557)
  --log-level LEVEL        trace|debug|info|warn|error (default info; debug shows "Got pod scores")
  --scrape-interval MS     /metrics scrape period per endpoint (default 50)
  --metrics-beat DURATION  "metrics beat" log interval (e.g. 10s; default: the config's, else 1m)
  --no-speculative         turn speculative indexing off (default on, TTL 2s)
  --shed                   429 when every endpoint is saturated (queue >= 5 or KV >= 0.8)
  --max-body-bytes N       largest request body (default 33554432)
  --max-messages N         most chat messages per request, else 413 (default 4096)
  --max-prompt-chars N     largest prompt in characters (strings of the prompt, messages and tools,
                           plus one per JSON value), else 413 (default 4194304)
  --max-prompt-tokens N    token cap of a model whose pods report no max_model_len in /v1/models,
                           else 400 (default 1048576); a text prompt is held to it by a proven
                           lower bound on its token count before it is tokenized
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
      'max-body-bytes': { type: 'string' },
      'max-messages': { type: 'string' },
      'max-prompt-chars': { type: 'string' },
      'max-prompt-tokens': { type: 'string' },
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
  const port = int(values.port ?? env.KVROUTER_PORT, '--port') ?? 8000;
  const host = values.host ?? '127.0.0.1';
  const metricsBeatMs = values['metrics-beat'] !== undefined ? parseDurationMs(/^\d+$/.test(values['metrics-beat']) ? Number(values['metrics-beat']) : values['metrics-beat']) : undefined;
  const common = {
    port,
    host,
    logLevel: values['log-level'] ?? (values.embedded ? 'debug' : 'info'),
    scrapeIntervalMs: int(values['scrape-interval'], '--scrape-interval'),
    speculativeIndexing: values['no-speculative'] ? false : true,
    shedding: values.shed === true,
    maxBodyBytes: int(values['max-body-bytes'], '--max-body-bytes'),
    requestLimits: {
      maxMessages: int(values['max-messages'], '--max-messages'),
      maxPromptChars: int(values['max-prompt-chars'], '--max-prompt-chars'),
      maxPromptTokens: int(values['max-prompt-tokens'], '--max-prompt-tokens'),
    },
    metricsBeatMs,
  };

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

  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      router.logger.info({ signal: sig }, 'shutting down');
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await shutdown();
  return 0;
}
