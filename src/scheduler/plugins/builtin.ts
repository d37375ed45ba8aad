// Registers every built-in plugin type (idempotent). llm-d's old names are aliases.
import { registerAlias, registerPlugin } from '../registry.js';
import { ApproxPrefixCacheScorer } from './approx-prefix.js';
import { NoHitLruScorer, SessionAffinityScorer } from './affinity.js';
import { DECODE_ROLES, ENCODE_ROLES, LabelSelectorFilter, PREFILL_ROLES, RoleFilter } from './filters.js';
import {
  ActiveRequestScorer,
  KvCacheUtilizationScorer,
  LoadAwareScorer,
  QueueScorer,
  RunningRequestsSizeScorer,
  TokenLoadScorer,
} from './load-scorers.js';
import { MaxScorePicker, RandomPicker, RoundRobinPicker, WeightedRandomPicker } from './pickers.js';
import { SingleProfileHandler } from './profile-handlers.js';
import { PrecisePrefixCacheScorer, TokenProducer } from './precise-prefix.js';
import { PredictedLatencyScorer } from './predicted-latency/scorer.js';
import { z } from 'zod';
import { parseParams } from './params.js';

let done = false;

export function registerBuiltinPlugins(): void {
  if (done) return;
  done = true;
  registerPlugin('max-score-picker', (p, c) => new MaxScorePicker(c.type, c.name, p));
  registerPlugin('random-picker', (p, c) => new RandomPicker(c.type, c.name, p));
  registerPlugin('weighted-random-picker', (p, c) => new WeightedRandomPicker(c.type, c.name, p));
  registerPlugin('round-robin-picker', (p, c) => new RoundRobinPicker(c.type, c.name, p));

  const noParams = z.object({}).strict();
  registerPlugin('decode-filter', (p, c) => (parseParams(noParams, p), new RoleFilter(c.type, c.name, DECODE_ROLES, true)));
  registerPlugin('prefill-filter', (p, c) => (parseParams(noParams, p), new RoleFilter(c.type, c.name, PREFILL_ROLES, false)));
  registerPlugin('encode-filter', (p, c) => (parseParams(noParams, p), new RoleFilter(c.type, c.name, ENCODE_ROLES, false)));
  registerPlugin('label-selector-filter', (p, c) => new LabelSelectorFilter(c.type, c.name, p));
  registerAlias('by-label-selector', 'label-selector-filter');
  registerAlias('by-label', 'label-selector-filter');

  registerPlugin('queue-scorer', (p, c) => new QueueScorer(c.type, c.name, p));
  registerPlugin('running-requests-size-scorer', (p, c) => new RunningRequestsSizeScorer(c.type, c.name, p));
  registerPlugin('kv-cache-utilization-scorer', (p, c) => new KvCacheUtilizationScorer(c.type, c.name, p));
  registerAlias('kv-cache-scorer', 'kv-cache-utilization-scorer');
  registerPlugin('load-aware-scorer', (p, c) => new LoadAwareScorer(c.type, c.name, p));
  registerPlugin('active-request-scorer', (p, c) => new ActiveRequestScorer(c.type, c.name, p));
  registerPlugin('token-load-scorer', (p, c) => new TokenLoadScorer(c.type, c.name, p));
  registerPlugin('session-affinity-scorer', (p, c) => new SessionAffinityScorer(c.type, c.name, p));
  registerPlugin('no-hit-lru-scorer', (p, c) => new NoHitLruScorer(c.type, c.name, p));
  registerPlugin('prefix-cache-scorer', (p, c) => new ApproxPrefixCacheScorer(c.type, c.name, p));

  registerPlugin('precise-prefix-cache-scorer', (p, c) => new PrecisePrefixCacheScorer(c.type, c.name, p, c));
  registerPlugin('token-producer', (p, c) => new TokenProducer(c.type, c.name, p));
  registerAlias('tokenizer', 'token-producer');
  registerPlugin('predicted-latency-scorer', (p, c) => new PredictedLatencyScorer(c.type, c.name, p, c));

  registerPlugin('single-profile-handler', (p, c) => new SingleProfileHandler(c.type, c.name, p));
}
