import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildSchedulerConfig, parseEndpointPickerConfig, readEndpointPickerConfig, ConfigError } from '../../src/scheduler/config.js';
import { registerPlugin } from '../../src/scheduler/registry.js';
import { PrecisePrefixCacheScorer, withPreciseScorerOverrides } from '../../src/scheduler/plugins/precise-prefix.js';
import { KV_INDEX_PROVIDER } from '../../src/scheduler/kv-services.js';
import { ServiceKey } from '../../src/scheduler/services.js';
import type { PluginContext } from '../../src/scheduler/types.js';
import { pluginContext } from '../helpers/plugin-context.js';

const ctx = (): PluginContext => pluginContext();

async function closeAll(cfg: ReturnType<typeof buildSchedulerConfig>) {
  for (const p of cfg.plugins.values()) await p.close?.();
}

test('the llm-d precise example config loads unchanged, with its weights and plugins', async () => {
  const cfg = buildSchedulerConfig(readEndpointPickerConfig('examples/precise-prefix-cache-aware.yaml'), ctx());
  const prof = cfg.profiles.get('default')!;
  assert.deepEqual(prof.filters.map((f) => f.type), ['decode-filter']);
  assert.deepEqual(
    prof.scorers.map((s) => [s.scorer.type, s.weight]),
    [
      ['precise-prefix-cache-scorer', 2],
      ['kv-cache-utilization-scorer', 1],
      ['queue-scorer', 1],
    ],
  );
  assert.equal(prof.picker.type, 'max-score-picker');
  assert.deepEqual(prof.producers.map((p) => p.name), ['tokenizer']);
  assert.equal(cfg.profileHandler.type, 'single-profile-handler');
  const precise = cfg.plugins.get('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
  assert.equal(precise.blockSize, 64);
  assert.equal(precise.bindEndpoint, 'tcp://*:5557');
  assert.equal(precise.discoverPods, false);
  assert.equal(precise.speculative, true, 'kvrouter turns speculative indexing on by default');
  assert.equal(precise.speculativeTtlMs, 2000);
  assert.ok(cfg.preRequest.includes(precise));
  await closeAll(cfg);
});

test('the shipped example configs all load', async () => {
  for (const f of ['examples/embedded-precise.yaml', 'examples/router.yaml', 'examples/approximate.yaml']) {
    const src = readEndpointPickerConfig(f);
    const cfg = buildSchedulerConfig(src, ctx());
    assert.ok(cfg.profiles.size === 1, f);
    await closeAll(cfg);
  }
  assert.equal(readEndpointPickerConfig('examples/router.yaml').endpoints?.length, 2);
});

test('an empty config gets llm-d defaults: queue 2, kv-cache-utilization 2, prefix 3, max-score picker', async () => {
  const cfg = buildSchedulerConfig(parseEndpointPickerConfig(''), ctx());
  const prof = cfg.profiles.get('default')!;
  assert.deepEqual(
    prof.scorers.map((s) => [s.scorer.type, s.weight]),
    [
      ['queue-scorer', 2],
      ['kv-cache-utilization-scorer', 2],
      ['prefix-cache-scorer', 3],
    ],
  );
  assert.equal(prof.picker.type, 'max-score-picker');
  assert.equal(cfg.profileHandler.type, 'single-profile-handler');
});

test('no schedulingProfiles: a default profile with every filter, scorer and picker, weight 1', () => {
  const cfg = buildSchedulerConfig(
    parseEndpointPickerConfig({ plugins: [{ type: 'decode-filter' }, { type: 'queue-scorer' }, { name: 'r', type: 'random-picker' }] }),
    ctx(),
  );
  const prof = cfg.profiles.get('default')!;
  assert.equal(prof.filters.length, 1);
  assert.deepEqual(prof.scorers.map((s) => s.weight), [1]);
  assert.equal(prof.picker.name, 'r');
});

test('an unknown plugin type stops loading with an error naming it', () => {
  assert.throws(
    () => buildSchedulerConfig(parseEndpointPickerConfig({ plugins: [{ name: 'mine', type: 'no-such-scorer' }] }), ctx()),
    (e: Error) => e instanceof ConfigError && /no-such-scorer/.test(e.message) && /mine/.test(e.message),
  );
});

test('a bad parameter stops loading with an error naming the plugin and the parameter', () => {
  assert.throws(
    () => buildSchedulerConfig(parseEndpointPickerConfig({ plugins: [{ name: 'lq', type: 'load-aware-scorer', parameters: { threshold: 'high' } }] }), ctx()),
    (e: Error) => /plugin "lq"/.test(e.message) && /threshold/.test(e.message),
  );
  assert.throws(
    () => buildSchedulerConfig(parseEndpointPickerConfig({ plugins: [{ type: 'max-score-picker', parameters: { maxNumOfEndpoints: 0 } }] }), ctx()),
    /max-score-picker.*maxNumOfEndpoints/,
  );
  assert.throws(
    () =>
      buildSchedulerConfig(
        parseEndpointPickerConfig({ plugins: [{ type: 'precise-prefix-cache-scorer', parameters: { speculativeTTL: 'soon' } }] }),
        ctx(),
      ),
    /precise-prefix-cache-scorer.*soon/,
  );
});

test('document errors name the field: bad pluginRef, duplicate names, unknown keys, two pickers', () => {
  assert.throws(
    () => buildSchedulerConfig(parseEndpointPickerConfig({ plugins: [{ type: 'queue-scorer' }], schedulingProfiles: [{ name: 'default', plugins: [{ pluginRef: 'nope' }] }] }), ctx()),
    /pluginRef "nope"/,
  );
  assert.throws(() => buildSchedulerConfig(parseEndpointPickerConfig({ plugins: [{ type: 'queue-scorer' }, { type: 'queue-scorer' }] }), ctx()), /defined twice/);
  assert.throws(() => parseEndpointPickerConfig({ plugin: [] }), /plugin/);
  assert.throws(() => parseEndpointPickerConfig('a: [b'), /YAML/);
  assert.throws(
    () => buildSchedulerConfig(parseEndpointPickerConfig({ plugins: [{ type: 'max-score-picker' }, { type: 'random-picker' }] }), ctx()),
    /more than one picker/,
  );
  assert.throws(
    () =>
      buildSchedulerConfig(
        parseEndpointPickerConfig({ plugins: [{ type: 'queue-scorer' }], schedulingProfiles: [{ name: 'a', plugins: [] }, { name: 'b', plugins: [] }] }),
        ctx(),
      ),
    /profile handler/,
  );
});

test('old names resolve (kv-cache-scorer, by-label-selector) and registerPlugin adds new types', () => {
  registerPlugin('test-constant-scorer', (_p, c) => ({ type: c.type, name: c.name, score: (_s: unknown, _r: unknown, eps: unknown[]) => eps.map(() => 0.5) }));
  const cfg = buildSchedulerConfig(
    parseEndpointPickerConfig({
      plugins: [{ type: 'kv-cache-scorer' }, { type: 'by-label-selector', parameters: { matchLabels: { a: 'b' } } }, { type: 'test-constant-scorer' }],
    }),
    ctx(),
  );
  const prof = cfg.profiles.get('default')!;
  assert.deepEqual(prof.scorers.map((s) => s.scorer.type).sort(), ['kv-cache-utilization-scorer', 'test-constant-scorer']);
  assert.equal(prof.filters[0].type, 'label-selector-filter');
});

test('production configs do not know the benchmark peer strategies (SGLang cache_aware, Dynamo KV)', () => {
  for (const type of ['sglang-cache-aware-scorer', 'dynamo-kv-scorer']) {
    assert.throws(() => buildSchedulerConfig(parseEndpointPickerConfig({ plugins: [{ type }] }), ctx()), new RegExp(`unknown plugin type "${type}"`));
  }
});

test('a plugin whose required service nothing provides stops startup, naming the plugin and the service', () => {
  assert.throws(
    () => buildSchedulerConfig(readEndpointPickerConfig('examples/precise-prefix-cache-aware.yaml'), pluginContext({ kvEvents: false })),
    (err: Error) => err instanceof ConfigError && /plugin "precise-prefix-cache-scorer".*requires service "kv-event-source-factory", which nothing provides/.test(err.message),
  );
});

test('the precise scorer provides the KV index service; two providers of one service are a startup error', async () => {
  const c = ctx();
  const cfg = buildSchedulerConfig(parseEndpointPickerConfig({ plugins: [{ name: 'pp', type: 'precise-prefix-cache-scorer' }] }), c);
  const provider = c.services.get(KV_INDEX_PROVIDER);
  assert.equal(provider?.blockSize, 16);
  assert.ok(Object.is(provider, cfg.plugins.get('pp')));
  await closeAll(cfg);
  assert.throws(
    () =>
      buildSchedulerConfig(
        parseEndpointPickerConfig({ plugins: [{ name: 'a', type: 'precise-prefix-cache-scorer' }, { name: 'b', type: 'precise-prefix-cache-scorer' }] }),
        ctx(),
      ),
    /plugin "b".*service "kv-index-provider" is provided twice \(by plugin "a" and by plugin "b"\)/,
  );
});

test('a plugin that declares a service it did not provide is a startup error', () => {
  const KEY = new ServiceKey<number>('test-number');
  registerPlugin('test-liar', (_p, c) => ({ type: c.type, name: c.name, provides: [KEY], score: () => [] }));
  assert.throws(() => buildSchedulerConfig(parseEndpointPickerConfig({ plugins: [{ type: 'test-liar' }] }), ctx()), /declares service "test-number" but did not provide it/);
});

test('endpoint lifecycle hooks are found by extension point (approximate and precise prefix scorers)', async () => {
  const cfg = buildSchedulerConfig(
    parseEndpointPickerConfig({ plugins: [{ type: 'prefix-cache-scorer' }, { type: 'precise-prefix-cache-scorer' }, { type: 'queue-scorer' }] }),
    ctx(),
  );
  assert.deepEqual(cfg.endpointLifecycle.map((p) => p.type).sort(), ['precise-prefix-cache-scorer', 'prefix-cache-scorer']);
  await closeAll(cfg);
});

test('router flags are written into the precise scorers parameters, and an explicit speculativeIndexing wins', async () => {
  const src = parseEndpointPickerConfig({
    plugins: [
      { name: 'on', type: 'precise-prefix-cache-scorer' },
      { name: 'off', type: 'precise-prefix-cache-scorer', parameters: { speculativeIndexing: true, kvEventsConfig: { topicFilter: 'x@' } } },
      { type: 'queue-scorer' },
    ],
  });
  const out = withPreciseScorerOverrides(src, { zmqEndpoint: 'tcp://127.0.0.1:0', speculativeIndexing: false, metricsBeatMs: 250 });
  const params = (n: string) => out.plugins.find((p) => p.name === n)!.parameters as Record<string, Record<string, unknown>>;
  assert.equal(params('on').speculativeIndexing, false);
  assert.equal(params('off').speculativeIndexing, true);
  assert.deepEqual(params('off').kvEventsConfig, { topicFilter: 'x@', zmqEndpoint: 'tcp://127.0.0.1:0' });
  assert.deepEqual(params('on').indexerConfig, { kvBlockIndexConfig: { metricsLoggingInterval: '250ms' } });
  assert.equal(out.plugins[2].parameters, undefined, 'other plugins are untouched');
  assert.equal(src.plugins[0].parameters, undefined, 'the input is not modified');
});
