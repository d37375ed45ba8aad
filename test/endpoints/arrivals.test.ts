// Slow start of arriving endpoints (src/endpoints/arrivals.ts) on a ManualClock: an endpoint that
// joins after startup ramps up; the initial set and endpoints of a first listing do not.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { EndpointPool } from '../../src/endpoints/pool.js';
import { OutlierDetector } from '../../src/endpoints/outlier.js';
import { slowStartArrivals } from '../../src/endpoints/arrivals.js';
import { ManualClock } from '../../src/util/clock.js';
import { startPod, startRouterFor, type FakePod } from '../gateway/fake-pods.js';
import { until } from '../gateway/helpers.js';

const logger = pino({ level: 'silent' });
const names = (xs: { address: string }[]) => xs.map((x) => x.address).join(',');
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('an endpoint added after startup starts slow; the initial ones never do', async () => {
  const clock = new ManualClock();
  // No scraping: endpoints are ready as they are added.
  const pool = new EndpointPool([{ address: 'a:1' }, { address: 'b:1' }], { logger, scrapeIntervalMs: 0 });
  cleanups.push(() => pool.close());
  const outlier = new OutlierDetector({ clock, slowStartMs: 30_000 });
  slowStartArrivals(pool, outlier);
  const c = pool.add({ address: 'c:1' });
  assert.equal(outlier.slowStartFactor('a:1'), 1);
  assert.equal(outlier.slowStartFactor('b:1'), 1);
  assert.equal(outlier.slowStartFactor('c:1'), 0.1, 'the newcomer starts at min_weight_percent');

  // Peers hold 20 requests each: the newcomer may hold max(1, 10% of 20) = 2 at the start.
  const [a, b] = [pool.get('a:1')!, pool.get('b:1')!];
  a.inflightRequests = 20;
  b.inflightRequests = 20;
  c.inflightRequests = 2;
  assert.equal(names(outlier.filter(pool.all())), 'a:1,b:1', 'capped at 10% of its peers');
  clock.advance(15_000);
  assert.equal(outlier.slowStartFactor('c:1'), 0.5);
  assert.equal(names(outlier.filter(pool.all())), 'a:1,b:1,c:1', 'halfway: 2 < 10 allowed');
  c.inflightRequests = 10;
  assert.equal(names(outlier.filter(pool.all())), 'a:1,b:1');
  clock.advance(15_000);
  assert.equal(outlier.slowStartFactor('c:1'), 1);
  assert.equal(names(outlier.filter(pool.all())), 'a:1,b:1,c:1', 'window over: a full peer');

  // Removed and added again: new again.
  pool.remove('c:1');
  pool.add({ address: 'c:1' });
  assert.equal(outlier.slowStartFactor('c:1'), 0.1);
});

test('endpoints joining while none is ready (a first listing) do not start slow', async () => {
  const clock = new ManualClock();
  const pool = new EndpointPool([], { logger, scrapeIntervalMs: 0 });
  cleanups.push(() => pool.close());
  const outlier = new OutlierDetector({ clock, slowStartMs: 30_000 });
  slowStartArrivals(pool, outlier);
  pool.add({ address: 'a:1' }); // nothing else ready: the first of the initial set
  assert.equal(outlier.slowStartFactor('a:1'), 1);
  pool.add({ address: 'b:1' }); // a is ready: b is new
  assert.equal(outlier.slowStartFactor('b:1'), 0.1);
});

test('a router slow-starts a pod discovered after startup from its first readiness, not the pods it started with', async () => {
  const clock = new ManualClock();
  const pods: FakePod[] = [];
  for (let i = 0; i < 3; i++) pods.push(await startPod());
  for (const p of pods) cleanups.push(() => p.close());
  const router = await startRouterFor(pods.slice(0, 2), { clock, limits: { slowStartMs: 30_000 } });
  cleanups.push(() => router.close());
  const [a, b, c] = pods.map((p) => p.address);
  assert.equal(router.outlier.slowStartFactor(a), 1);
  assert.equal(router.outlier.slowStartFactor(b), 1);

  router.pool.add({ address: c });
  assert.equal(router.pool.get(c)!.ready, false, 'scraped before it is ready');
  await router.pool.waitReady(3);
  assert.equal(router.outlier.slowStartFactor(c), 0.1);
  clock.advance(30_000);
  assert.equal(router.outlier.slowStartFactor(c), 1);
});

test('a router whose pods all arrive after startup (discovery) gives none of them slow start', async () => {
  const clock = new ManualClock();
  const pods: FakePod[] = [];
  for (let i = 0; i < 2; i++) pods.push(await startPod());
  for (const p of pods) cleanups.push(() => p.close());
  const router = await startRouterFor([], { clock, limits: { slowStartMs: 30_000 } });
  cleanups.push(() => router.close());
  for (const p of pods) router.pool.add({ address: p.address });
  await router.pool.waitReady(2);
  await until(() => pods.every((p) => router.pool.get(p.address)!.ready), 10_000, 'ready');
  for (const p of pods) assert.equal(router.outlier.slowStartFactor(p.address), 1, p.address);
});
