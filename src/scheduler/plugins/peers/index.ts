// Registers the peer strategies (re-implementations of other routers'
// published algorithms, labelled as such; not part of llm-d's plugin set).
import { registerPlugin } from '../../registry.js';
import { DynamoKvScorer } from './dynamo-kv.js';
import { SglangCacheAwareScorer } from './sglang-cache-aware.js';

let done = false;

export function registerPeerPlugins(): void {
  if (done) return;
  done = true;
  registerPlugin('sglang-cache-aware-scorer', (p, c) => new SglangCacheAwareScorer(c.type, c.name, p));
  registerPlugin('dynamo-kv-scorer', (p, c) => new DynamoKvScorer(c.type, c.name, p, (m) => c.logger.warn(m)));
}
