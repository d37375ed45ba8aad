// The approximate baseline (GIE's prefix-cache-scorer) through the same router: it learns
// from its own decisions, with no KV events at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LONG_PROMPT, MODEL, post, startStack } from './helpers.js';

test('examples/approximate.yaml routes a repeated prompt back to the pod it chose first', async () => {
  const s = await startStack({ configPath: 'examples/approximate.yaml' });
  try {
    assert.equal(s.router.kvIndex, undefined);
    const prompt = 'Approximate check. ' + LONG_PROMPT;
    const first = await post(`${s.router.url}/v1/completions`, { model: MODEL, prompt, max_tokens: 2 });
    assert.equal(first.status, 200);
    const pod = first.headers.get('x-kvrouter-endpoint');
    for (let i = 0; i < 3; i++) {
      const again = await post(`${s.router.url}/v1/completions`, { model: MODEL, prompt, max_tokens: 2 });
      assert.equal(again.headers.get('x-kvrouter-endpoint'), pod);
    }
    const sc = await post(`${s.router.url}/score_completions`, { model: MODEL, prompt });
    assert.equal(sc.status, 404, 'the scoring API needs the precise scorer');
  } finally {
    await s.close();
  }
});
