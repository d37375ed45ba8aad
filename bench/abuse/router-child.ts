// The router under attack, in its own process so its RSS is its own: an embedded router
// (src/gateway/embedded.ts: llm-d's precise profile, central KV events) with simulated pods.
// Prints one JSON line (AbuseTarget + pid) on stdout when ready; logs go to stderr.
import { pino } from 'pino';
import { startEmbedded } from '../../src/gateway/embedded.js';
import type { AbuseTarget } from './types.js';

const pods = Number(process.env.ABUSE_PODS ?? 2);
const logger = pino({ level: process.env.ABUSE_LOG_LEVEL ?? 'warn', base: { name: 'kvrouter' } }, pino.destination(2));
const e = await startEmbedded({ pods, port: 0, zmqPort: 0, timeScale: 0.02, logger });
const zmqEndpoint = (e.router.kvIndex?.eventsEndpoint ?? '').replace('0.0.0.0', '127.0.0.1').replace('*', '127.0.0.1');
const target: AbuseTarget & { pid: number } = { routerUrl: e.router.url, zmqEndpoint, model: e.pods[0].servedModelName, pods: e.pods.map((p) => p.podId), pid: process.pid };
process.stdout.write(`${JSON.stringify(target)}\n`);
process.once('SIGTERM', () => {
  void e.close().finally(() => process.exit(0));
});
