// The router meets plugins only through extension points and services: endpoint lifecycle
// hooks reach any plugin that implements them, and a missing service stops startup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { startRouter } from '../../src/gateway/router.js';
import { registerPlugin } from '../../src/scheduler/registry.js';
import { ServiceKey } from '../../src/scheduler/services.js';
import type { Endpoint, EndpointLifecycle, Scorer } from '../../src/scheduler/types.js';

const silent = pino({ level: 'silent' });
const seen: string[] = [];

class WatchingScorer implements Scorer, EndpointLifecycle {
  constructor(
    readonly type: string,
    readonly name: string,
  ) {}
  score(_s: unknown, _r: unknown, endpoints: Endpoint[]): number[] {
    return endpoints.map(() => 0);
  }
  endpointAdded(e: Endpoint): void {
    seen.push(`+${e.address}`);
  }
  endpointRemoved(e: Endpoint): void {
    seen.push(`-${e.address}`);
  }
}
registerPlugin('test-watching-scorer', (_p, c) => new WatchingScorer(c.type, c.name));

test('endpoint lifecycle hooks reach a plugin for endpoints present at start, added and removed', async () => {
  const router = await startRouter({
    config: { plugins: [{ type: 'test-watching-scorer' }] },
    endpoints: [{ address: '127.0.0.1:1' }],
    port: 0,
    logger: silent,
    processMetrics: false,
    scrapeIntervalMs: 0,
  });
  try {
    const until = async (n: number) => {
      for (let i = 0; i < 100 && seen.length < n; i++) await new Promise((r) => setImmediate(r));
    };
    await until(1);
    router.pool.add({ address: '127.0.0.1:2' });
    router.pool.remove('127.0.0.1:1');
    await until(3);
    assert.deepEqual(seen, ['+127.0.0.1:1', '+127.0.0.1:2', '-127.0.0.1:1']);
    assert.equal(router.kvIndex, undefined, 'no plugin provides a KV index');
  } finally {
    await router.close();
  }
});

test('a plugin requiring a service the router does not provide stops startRouter, naming both', async () => {
  const NEEDED = new ServiceKey<{ x: number }>('test-needed-service');
  registerPlugin('test-needy-scorer', (_p, c) => ({ type: c.type, name: c.name, requires: [NEEDED], score: () => [] }));
  await assert.rejects(
    startRouter({ config: { plugins: [{ name: 'needy', type: 'test-needy-scorer' }] }, endpoints: [], port: 0, logger: silent, processMetrics: false }),
    /plugin "needy" \(type test-needy-scorer\) requires service "test-needed-service", which nothing provides/,
  );
});
