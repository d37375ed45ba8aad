// Benchmark strategies for peers' current policies, re-implemented from their published
// descriptions (labelled as such; not their code). The plugins they use are registered here,
// by the bench only, never in the production plugin registry.
import type { StrategyContext, StrategyDef } from '../strategies.js';
import { registerStickyUntilSaturatedPlugins } from './sticky-until-saturated.js';

type Doc = Record<string, unknown>;

const STICKY_SOURCE = { repository: 'llm-d/llm-d-router', path: 'pkg/epp/framework/plugins/scheduling/filter/prefixcacheaffinity/README.md (v0.10)', date: '2026-08-17' };

/** The strategies, given the bench's precise-scorer block (shared with its other strategies). */
export function peerStrategies(precisePlugin: (ctx: StrategyContext) => Doc): StrategyDef[] {
  registerStickyUntilSaturatedPlugins();
  const sticky = (prefix: (ctx: StrategyContext) => Doc, prefixName: string) => (ctx: StrategyContext) => ({
    apiVersion: 'llm-d.ai/v1alpha1',
    kind: 'EndpointPickerConfig',
    plugins: [
      prefix(ctx),
      { type: 'llmd-inflight-load-producer', parameters: { prefixScorer: prefixName } },
      // Defaults = llm-d's calibration for the hardware the bench's h100-tp2-qwen3-32b profile
      // simulates (15,928 tokens/s x 18 s: tau = 286,704 in-flight tokens).
      { type: 'llmd-prefix-cache-affinity-filter', parameters: { affinityThreshold: 0.8, maxTTFTPenaltyMs: 18_000, peakPrefillThroughput: 15_928 } },
      { type: 'llmd-token-load-scorer' },
      { type: 'max-score-picker' },
    ],
    schedulingProfiles: [
      {
        name: 'default',
        plugins: [{ pluginRef: 'llmd-prefix-cache-affinity-filter' }, { pluginRef: 'llmd-token-load-scorer', weight: 1 }, { pluginRef: 'max-score-picker' }],
      },
    ],
  });
  // llm-d's guide uses the approximate producer at the model's context length (40,960 tokens).
  const approx = (ctx: StrategyContext) => ({ type: 'prefix-cache-scorer', parameters: { maxPrefixBlocksToMatch: Math.ceil(40_960 / ctx.blockSize) } });
  const source =
    'llm-d-router v0.10 (2026-08) pkg/epp/framework/plugins/{scheduling/filter/prefixcacheaffinity, scheduling/scorer/tokenload, requestcontrol/dataproducer/inflightload}/README.md; composition and tau: llm-d/llm-d guides/optimized-baseline/calibration/';
  return [
    {
      name: 'llmd-sticky',
      label: 'llm-d sticky-until-saturated (re-impl.)',
      description: `Re-implementation of llm-d-router v0.10's default "sticky until saturated": approximate prefix producer -> prefix-cache-affinity-filter (0.80; break when sticky TTFT = in-flight uncached tokens / 15,928 tok/s exceeds the best other by 18 s) -> token-load-scorer (in-flight + this request's uncached tokens), max-score-picker; not llm-d code. Sources: ${source}`,
      source: STICKY_SOURCE,
      usesKvEvents: false,
      config: sticky(approx, 'prefix-cache-scorer'),
    },
    {
      name: 'llmd-sticky-precise',
      label: 'llm-d sticky-until-saturated, precise index (re-impl.)',
      description: `As llmd-sticky, with the prefix match from the precise KV-event index instead of the approximate producer (isolates the policy from the cache signal); not llm-d code. Sources: ${source}`,
      source: STICKY_SOURCE,
      usesKvEvents: true,
      config: sticky(precisePlugin, 'precise-prefix-cache-scorer'),
    },
  ];
}
