// The simulated vLLM pods of bench/abuse, in their own process so the router's event loop and
// RSS are the router's alone: node --import tsx bench/abuse/pods-child.ts <n> <router's KV-event endpoint>
// Their publishers connect to the router's SUB endpoint (ZeroMQ reconnects until it binds).
// Prints one JSON line (PodsInfo) on stdout when ready; logs go to stderr.
import { pino } from 'pino';
import { startSimPod, type SimPod } from '../../src/sim/index.js';
import { TokenizerRegistry } from '../../src/tokenize/index.js';

export interface PodsInfo {
  model: string;
  pods: { address: string; replayEndpoint?: string | null }[];
  pid: number;
}

const [n, zmq] = process.argv.slice(2);
const model = process.env.ABUSE_MODEL ?? 'Qwen/Qwen3-0.6B';
const logger = pino({ level: process.env.ABUSE_LOG_LEVEL ?? 'warn', base: { name: 'sim' } }, pino.destination(2));
const tokReg = await TokenizerRegistry.create({});
const pods: SimPod[] = [];
for (let i = 0; i < Number(n); i++) {
  pods.push(
    await startSimPod({
      port: 0,
      host: '127.0.0.1',
      model,
      blockSize: 16,
      numGpuBlocks: 4096,
      timeScale: 0.02,
      pythonHashSeed: '42',
      llmdTopic: true,
      kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint: zmq, replay_endpoint: 'tcp://127.0.0.1:*' },
      tokenizers: tokReg,
      logger: logger.child({ component: `sim-pod-${i}` }),
    }),
  );
}
// one completion per pod first: loading the tokenizer must not land in the bench's baseline window
for (const p of pods) {
  const res = await fetch(`http://${p.podId}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: p.servedModelName, prompt: 'warm up', max_tokens: 1 }), signal: AbortSignal.timeout(120_000) });
  await res.text();
}
const info: PodsInfo = { model: pods[0].servedModelName, pods: pods.map((p) => ({ address: p.podId, replayEndpoint: p.replayEndpoint })), pid: process.pid };
process.stdout.write(`${JSON.stringify(info)}\n`);
process.once('SIGTERM', () => {
  void Promise.all(pods.map((p) => p.close().catch(() => {})))
    .then(() => tokReg.close())
    .finally(() => process.exit(0));
});
