// Registers the benchmark's peer strategies: re-implementations of other routers' published
// algorithms (SGLang cache_aware, Dynamo KV cost, llm-d-router sticky-until-saturated), labelled as such and not part of llm-d's
// plugin set. Only the benchmark registers them; `kvrouter serve` and `kvrouter epp` never do,
// so a production config naming them fails with "unknown plugin type".
import { registerPlugin } from '../../scheduler/registry.js';
import { DynamoKvScorer } from './dynamo-kv.js';
import { SglangCacheAwareScorer } from './sglang-cache-aware.js';
import { registerStickyUntilSaturatedPlugins } from './sticky-until-saturated.js';

let done = false;

export function registerBenchPlugins(): void {
  if (done) return;
  done = true;
  registerPlugin('sglang-cache-aware-scorer', (p, c) => new SglangCacheAwareScorer(c.type, c.name, p, c.clock));
  registerPlugin('dynamo-kv-scorer', (p, c) => new DynamoKvScorer(c.type, c.name, p, (m) => c.logger.warn(m)));
  // llm-d-router v0.10 sticky-until-saturated (llmd-* types).
  registerStickyUntilSaturatedPlugins();
}
