// `kvrouter serve --embedded` (npm start): the router with llm-d's precise profile plus N
// simulated vLLM pods on loopback whose KV-event PUB sockets connect to the router's SUB
// socket, as in llm-d's precise prefix-cache quickstart, and the requests to try.
import { fileURLToPath } from 'node:url';
import { startSimPod, type SimPod } from '../sim/index.js';
import { TokenizerRegistry } from '../tokenize/index.js';
import { routerTokenizersFrom, startRouter, type Router, type RouterOptions } from './router.js';
import { KV_EVENTS_REPLAY_LABEL } from '../scheduler/plugins/precise-prefix.js';

/** The precise profile for the quickstart's model (examples/embedded-precise.yaml). */
export const EMBEDDED_CONFIG = fileURLToPath(new URL('../../examples/embedded-precise.yaml', import.meta.url));

export interface EmbeddedOptions extends Omit<RouterOptions, 'endpoints' | 'zmqEndpoint' | 'tokenizers'> {
  pods?: number;
  /** HTTP ports of the pods (default: router port + 1.., or free ports when the router port is 0). */
  podPorts?: number[];
  /** Router's KV-event SUB port on 127.0.0.1 (pods connect to it). */
  zmqPort: number;
  model?: string;
  blockSize?: number;
  numGpuBlocks?: number;
  timeScale?: number;
}

export interface Embedded {
  router: Router;
  pods: SimPod[];
  instructions: string;
  closePods(): Promise<void>;
  close(): Promise<void>;
}

export async function startEmbedded(o: EmbeddedOptions): Promise<Embedded> {
  const n = o.pods ?? 2;
  const model = o.model ?? 'Qwen/Qwen3-0.6B';
  let zmq = `tcp://127.0.0.1:${o.zmqPort}`;
  // One tokenizer registry for the router and the pods: loaded once, identical tokens.
  const tokReg = await TokenizerRegistry.create({});
  const configPath = o.configPath ?? (o.config === undefined ? EMBEDDED_CONFIG : undefined);
  const router = await startRouter({ ...o, configPath, endpoints: [], zmqEndpoint: zmq, tokenizers: await routerTokenizersFrom(tokReg, false) });
  // With port 0 the subscriber picked a free port: the pods connect to that one.
  zmq = router.kvIndex?.eventsEndpoint?.replace('0.0.0.0', '127.0.0.1') ?? zmq;
  const pods: SimPod[] = [];
  const closePods = async () => {
    await Promise.all(pods.map((p) => p.close().catch(() => {})));
  };
  try {
    for (let i = 0; i < n; i++) {
      const port = o.podPorts?.[i] ?? (o.port ? o.port + 1 + i : 0);
      const pod = await startSimPod({
        port,
        host: '127.0.0.1',
        model,
        blockSize: o.blockSize ?? 16,
        numGpuBlocks: o.numGpuBlocks ?? 4096,
        timeScale: o.timeScale ?? 1,
        pythonHashSeed: '42',
        llmdTopic: true,
        // Without a precise scorer nobody listens for KV events: the pods publish none.
        // Each pod also binds vLLM's replay ROUTER, so a batch the router missed (or everything
        // before it joined) is replayed (llm-d's replaySocketPort; here a label per pod, as
        // all pods share one host).
        kvEventsConfig: router.kvIndex ? { enable_kv_cache_events: true, publisher: 'zmq', endpoint: zmq, replay_endpoint: 'tcp://127.0.0.1:*' } : undefined,
        tokenizers: tokReg,
        logger: router.logger.child({ component: `sim-pod-${i}` }),
      });
      pods.push(pod);
      const labels: Record<string, string> = { 'llm-d.ai/role': 'decode' };
      if (pod.replayEndpoint) labels[KV_EVENTS_REPLAY_LABEL] = pod.replayEndpoint;
      router.pool.add({ address: pod.podId, name: `sim-pod-${i}`, labels });
    }
    await router.warmTokenizer(model);
    await router.pool.waitReady(n, 15_000);
  } catch (err) {
    await closePods();
    await router.close();
    await tokReg.close();
    throw err;
  }
  // Long enough for several full 16-token blocks: only full blocks are cached and scored.
  const prompt =
    'You are a helpful assistant who answers briefly. Explain in two sentences why the sky is blue during the day, then explain why sunsets are red and orange, and finally say which colour the sky is on Mars.';
  const body = JSON.stringify({ model, prompt, max_tokens: 10 });
  const instructions = [
    '',
    `kvrouter is up: ${router.url} -> ${pods.map((p) => p.podId).join(', ')} (simulated vLLM, ${model}); KV events on ${zmq}`,
    '',
    'Send the same request twice; the second lands on the pod that cached the first:',
    `  curl -s ${router.url}/v1/completions -H 'Content-Type: application/json' -d '${body}' -D - -o /dev/null | grep -i x-kvrouter-endpoint`,
    'This terminal then shows the precise scorer\'s "Got pod scores" lines: scores null the first time,',
    '{"<pod>": <matched blocks>} the second time, and a "metrics beat" every 10 s with admissions and hits.',
    'Ask the index directly, per endpoint:',
    `  curl -s ${router.url}/score_completions -H 'Content-Type: application/json' -d '${JSON.stringify({ model, prompt })}'`,
    'Stream a chat completion:',
    `  curl -sN ${router.url}/v1/chat/completions -H 'Content-Type: application/json' -d '${JSON.stringify({ model, messages: [{ role: 'user', content: prompt }], stream: true, max_tokens: 8 })}'`,
    `Metrics: curl -s ${router.url}/metrics | grep kvcache_index   ("metrics beat" lines appear in the log)`,
    '',
  ].join('\n');
  return {
    router,
    pods,
    instructions,
    closePods,
    async close() {
      await router.close();
      await closePods();
      await tokReg.close();
    },
  };
}
