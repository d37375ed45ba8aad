// The router under attack, in its own process so its event loop and RSS are its own: llm-d's
// precise profile (examples/embedded-precise.yaml, central KV events) in front of the simulated
// pods of bench/abuse/pods-child.ts, which run in another process.
// node --import tsx bench/abuse/router-child.ts <KV-event port> <PodsInfo JSON>
// Prints one JSON line (AbuseTarget + pid) on stdout when ready; logs go to stderr.
import { pino } from 'pino';
import { EMBEDDED_CONFIG } from '../../src/gateway/embedded.js';
import { routerTokenizersFrom, startRouter } from '../../src/gateway/router.js';
import { KV_EVENTS_REPLAY_LABEL } from '../../src/scheduler/plugins/precise-prefix.js';
import { TokenizerRegistry } from '../../src/tokenize/index.js';
import type { PodsInfo } from './pods-child.js';
import type { AbuseTarget } from './types.js';

const [zmqPort, podsJson] = process.argv.slice(2);
const info = JSON.parse(podsJson) as PodsInfo;
const logger = pino({ level: process.env.ABUSE_LOG_LEVEL ?? 'warn', base: { name: 'kvrouter' } }, pino.destination(2));
const tokReg = await TokenizerRegistry.create({});
const router = await startRouter({
  configPath: EMBEDDED_CONFIG,
  port: 0,
  logger,
  zmqEndpoint: `tcp://127.0.0.1:${zmqPort}`,
  tokenizers: await routerTokenizersFrom(tokReg, false),
  endpoints: info.pods.map((p, i) => ({
    address: p.address,
    name: `sim-pod-${i}`,
    labels: { 'llm-d.ai/role': 'decode', ...(p.replayEndpoint ? { [KV_EVENTS_REPLAY_LABEL]: p.replayEndpoint } : {}) },
  })),
});
await router.warmTokenizer(info.model);
await router.pool.waitReady(info.pods.length, 60_000);
const zmqEndpoint = (router.kvIndex?.eventsEndpoint ?? '').replace('0.0.0.0', '127.0.0.1').replace('*', '127.0.0.1');
const target: AbuseTarget & { pid: number } = { routerUrl: router.url, zmqEndpoint, model: info.model, pods: info.pods.map((p) => p.address), pid: process.pid };
process.stdout.write(`${JSON.stringify(target)}\n`);
process.once('SIGTERM', () => {
  void router
    .close()
    .then(() => tokReg.close())
    .finally(() => process.exit(0));
});
