// `kvrouter sim`: run one or more simulated vLLM pods (real block cache, byte-compatible KV
// events) until interrupted.
import { parseArgs } from 'node:util';
import { SimHost, offsetEndpointPort, publisherBinds, parseEventsVersion, PROFILES, DEFAULT_PROFILE, HASH_ALGOS, type SimPodOptions, type HashAlgo, type KVEventsConfig, type ReplayLayout } from '../../sim/index.js';
import { stopSignal } from '../stop-signal.js';

const HELP = `Usage: kvrouter sim --model M [options]

Simulated vLLM server(s): OpenAI API, continuous-batching engine with vLLM's prefix cache,
KV events over ZeroMQ exactly as vLLM publishes them, vLLM metrics.

  --port P                     HTTP port of pod 0 (default 8000; 0 = free ports). Pod i uses
                               P + i*DP, rank r of a pod uses +r
  --host H                     listen address (default 127.0.0.1)
  --model M                    model name (required)
  --served-model-name NAME     name served in the API and metrics (default: --model)
  --pods N                     pods in this process, sharing one clock (default 1)
  --profile NAME               GPU+model defaults: ${Object.keys(PROFILES).join(', ')} (default ${DEFAULT_PROFILE})
  --block-size B               tokens per KV block (default 16)
  --num-gpu-blocks N           KV blocks per pod (default: profile capacity / block size)
  --max-num-seqs N             running sequences per step (default: profile)
  --max-num-batched-tokens N   tokens per step, chunked prefill (default: profile)
  --max-model-len N            longest prompt + output
  --time-scale X               wall seconds per model second (default 1)
  --step-overhead-ms X / --prefill-per-token-ms X / --decode-per-seq-ms X   timing model
  --kv-events-config JSON      vLLM's KVEventsConfig, e.g. '{"enable_kv_cache_events":true,
                               "publisher":"zmq","endpoint":"tcp://*:5557","replay_endpoint":"tcp://*:5600"}'
                               With --pods N every pod's publisher connects to the same
                               endpoint (a central router's SUB), as N vLLM servers would;
                               ports are offset only per data-parallel rank, as vLLM does.
                               Endpoints that bind (\`*\`, \`::\`, ipc://) and the replay
                               endpoint (always bound) get +i*DP for pod i, since the pods
                               share one host here.
  --llmd-topic                 topic kv@<host>:<port>@<model> when the config sets none
  --events-version V           wire schema: v0.9.0 v0.9.1 v0.10 v0.12 v0.17 v0.20 v0.23 v0.24 (default v0.24, map)
  --bytes-hashes               hashes as raw digests (VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0)
  --signed-hashes              int hashes as signed int64 (v0.9 builtin hash(): negative values)
  --batch-as-map               EventBatch as a map {ts, events, data_parallel_rank}
  --replay-layout L            pre-45177 | post-45177 (default post-45177)
  --prefix-caching-hash-algo A ${HASH_ALGOS.join(' | ')} (default sha256_cbor)
  --hash-seed S                PYTHONHASHSEED (default: env PYTHONHASHSEED, else random per start)
  --data-parallel-size N       DP ranks per pod (default 1)
  --data-parallel-rank R       run only rank R
  --lora-modules LIST          comma list of LoRA adapter names served besides the base model
  --max-loras N                vLLM --max-loras (default 1 with adapters)
  --mode random|echo           output text (default random)
  --seed N                     output token generator seed
  --failure-injection-rate P   percent of completion requests that fail (0-100)
  --failure-types LIST         comma list of rate_limit, invalid_api_key, context_length,
                               server_error, invalid_request, model_not_found, or status codes
  --startup-delay MS           answer 503 for this long after start
  --disable-prompt-tokens-details   omit usage.prompt_tokens_details (on by default)
`;

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  let a;
  try {
    a = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' },
        port: { type: 'string' },
        host: { type: 'string' },
        model: { type: 'string' },
        'served-model-name': { type: 'string' },
        pods: { type: 'string' },
        profile: { type: 'string' },
        'block-size': { type: 'string' },
        'num-gpu-blocks': { type: 'string' },
        'max-num-seqs': { type: 'string' },
        'max-num-batched-tokens': { type: 'string' },
        'max-model-len': { type: 'string' },
        'time-scale': { type: 'string' },
        'step-overhead-ms': { type: 'string' },
        'prefill-per-token-ms': { type: 'string' },
        'decode-per-seq-ms': { type: 'string' },
        'kv-events-config': { type: 'string' },
        'llmd-topic': { type: 'boolean' },
        'events-version': { type: 'string' },
        'bytes-hashes': { type: 'boolean' },
        'signed-hashes': { type: 'boolean' },
        'batch-as-map': { type: 'boolean' },
        'replay-layout': { type: 'string' },
        'prefix-caching-hash-algo': { type: 'string' },
        'hash-seed': { type: 'string' },
        'data-parallel-size': { type: 'string' },
        'data-parallel-rank': { type: 'string' },
        mode: { type: 'string' },
        'lora-modules': { type: 'string' },
        'max-loras': { type: 'string' },
        seed: { type: 'string' },
        'failure-injection-rate': { type: 'string' },
        'failure-types': { type: 'string' },
        'startup-delay': { type: 'string' },
        'disable-prompt-tokens-details': { type: 'boolean' },
      },
    }).values;
  } catch (err) {
    console.error(`kvrouter sim: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  let host: SimHost;
  let stopped: Promise<unknown>;
  try {
    if (!a.model) throw new Error('--model is required');
    let kv: KVEventsConfig | undefined;
    if (a['kv-events-config'] !== undefined) {
      try {
        kv = JSON.parse(a['kv-events-config']) as KVEventsConfig;
      } catch (err) {
        throw new Error(`--kv-events-config is not valid JSON: ${(err as Error).message}`, { cause: err });
      }
      if (kv === null || typeof kv !== 'object' || Array.isArray(kv)) throw new Error('--kv-events-config must be a JSON object');
    }
    const mode = a.mode ?? 'random';
    if (mode !== 'random' && mode !== 'echo') throw new Error('--mode must be random or echo');
    const algo = (a['prefix-caching-hash-algo'] ?? 'sha256_cbor') as HashAlgo;
    if (!HASH_ALGOS.includes(algo)) throw new Error(`--prefix-caching-hash-algo must be one of ${HASH_ALGOS.join(', ')}`);
    const layout = (a['replay-layout'] ?? 'post-45177') as ReplayLayout;
    if (layout !== 'pre-45177' && layout !== 'post-45177') throw new Error('--replay-layout must be pre-45177 or post-45177');
    const pods = num(a.pods, 'pods') ?? 1;
    const dp = num(a['data-parallel-size'], 'data-parallel-size') ?? 1;
    const port = num(a.port, 'port') ?? 8000;
    const rate = num(a['failure-injection-rate'], 'failure-injection-rate');
    if (rate !== undefined && (rate < 0 || rate > 100)) throw new Error('--failure-injection-rate must be within 0..100');
    const timing: SimPodOptions['timing'] = {};
    const so = num(a['step-overhead-ms'], 'step-overhead-ms');
    const pt = num(a['prefill-per-token-ms'], 'prefill-per-token-ms');
    const ds = num(a['decode-per-seq-ms'], 'decode-per-seq-ms');
    if (so !== undefined) timing.stepOverheadMs = so;
    if (pt !== undefined) timing.prefillPerTokenMs = pt;
    if (ds !== undefined) timing.decodePerSeqMs = ds;
    const base: SimPodOptions = {
      model: a.model,
      host: a.host,
      servedModelName: a['served-model-name'],
      profile: a.profile,
      blockSize: num(a['block-size'], 'block-size'),
      numGpuBlocks: num(a['num-gpu-blocks'], 'num-gpu-blocks'),
      maxNumSeqs: num(a['max-num-seqs'], 'max-num-seqs'),
      maxNumBatchedTokens: num(a['max-num-batched-tokens'], 'max-num-batched-tokens'),
      maxModelLen: num(a['max-model-len'], 'max-model-len'),
      timeScale: num(a['time-scale'], 'time-scale'),
      timing,
      llmdTopic: a['llmd-topic'] ?? false,
      eventsFormat: { version: parseEventsVersion(a['events-version'] ?? 'v0.24'), intHashes: !a['bytes-hashes'], signedHashes: a['signed-hashes'] ?? false, batchAsMap: a['batch-as-map'] ?? false },
      replayLayout: layout,
      hashAlgo: algo,
      pythonHashSeed: a['hash-seed'] ?? process.env.PYTHONHASHSEED,
      dataParallelSize: dp,
      dataParallelRank: num(a['data-parallel-rank'], 'data-parallel-rank'),
      outputMode: mode,
      loraModules: a['lora-modules']?.split(',').map((s) => s.trim()).filter((s) => s.length > 0),
      maxLoras: num(a['max-loras'], 'max-loras'),
      seed: num(a.seed, 'seed'),
      enablePromptTokensDetails: !a['disable-prompt-tokens-details'],
      faults: {
        errorRate: rate === undefined ? undefined : rate / 100,
        errorCodes: a['failure-types']?.split(',').map((s) => s.trim()).filter((s) => s.length > 0),
        startupDelayMs: num(a['startup-delay'], 'startup-delay'),
      },
    };
    const opts: SimPodOptions[] = [];
    for (let i = 0; i < pods; i++) {
      const o: SimPodOptions = { ...base, port: port === 0 ? 0 : port + i * dp };
      if (kv !== undefined) {
        o.kvEventsConfig = {
          ...kv,
          // a connecting PUB: every pod dials the same router (vLLM offsets per DP rank only,
          // which the pod does itself); a binding one needs a port of its own on this host
          endpoint: kv.endpoint === undefined || !publisherBinds(kv.endpoint) ? kv.endpoint : offsetEndpointPort(kv.endpoint, i * dp),
          replay_endpoint: kv.replay_endpoint ? offsetEndpointPort(kv.replay_endpoint, i * dp) : kv.replay_endpoint,
        };
        if (kv.endpoint === undefined && i > 0) o.kvEventsConfig.endpoint = offsetEndpointPort('tcp://*:5557', i * dp);
      }
      opts.push(o);
    }
    stopped = stopSignal();
    host = await SimHost.start(opts);
  } catch (err) {
    console.error(`kvrouter sim: ${(err as Error).message}`);
    return 1;
  }
  for (const p of host.pods) {
    console.log(
      JSON.stringify({ url: p.url, podId: p.podId, model: p.servedModelName, rank: p.dataParallelRank, topic: p.topic, kvEventsEndpoint: p.kvEventsEndpoint, replayEndpoint: p.replayEndpoint }),
    );
  }
  await stopped;
  await host.close();
  return 0;
}
