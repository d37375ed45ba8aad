// How long one large request body holds the event loop while it is parsed: inline
// (`parseOpenAIRequest`, what the router did for every body) against `parseOpenAIRequestAsync`
// (bodies over 64 KiB parsed in the worker thread, src/gateway/json-body.ts). The stall is the
// longest gap between 1 ms timer ticks while the parse runs; both columns come from the same run.
//   npm run bench:body-parse
import { parseOpenAIRequest, parseOpenAIRequestAsync } from '../src/gateway/parse.js';
import { RequestLimits } from '../src/gateway/request-limits.js';

// The default request limits (src/gateway/request-limits.ts): each body below is about the
// largest of its shape they accept (the token cap raised: ids are held to it on the main thread
// in O(1) either way, and the pods' max_model_len usually sets it).
const limits = new RequestLimits({ maxPromptTokens: 8_000_000 });
const opts = { limits };

/** Runs `work` while a 1 ms timer ticks; returns the longest gap between ticks and the total time. */
async function stall(work: () => unknown): Promise<{ gapMs: number; totalMs: number }> {
  // Garbage of the previous run is collected before, not during, this one (--expose-gc).
  (globalThis as { gc?: () => void }).gc?.();
  let last = performance.now();
  let gap = 0;
  const t = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
  }, 1);
  await new Promise((r) => setTimeout(r, 20));
  gap = 0;
  last = performance.now();
  const start = performance.now();
  await work();
  const totalMs = performance.now() - start;
  await new Promise((r) => setTimeout(r, 5));
  clearInterval(t);
  return { gapMs: gap, totalMs };
}

const escaped = (t: string) => t.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
const shapes: [string, string, string][] = [
  ['4M token ids', '/v1/completions', JSON.stringify({ model: 'm', prompt: new Array<number>(4_000_000).fill(151_000), max_tokens: 1 })],
  ['4M-character ASCII prompt', '/v1/completions', JSON.stringify({ model: 'm', prompt: 'lorem ipsum '.repeat(340_000), max_tokens: 1 })],
  ['4M CJK characters, \\u-escaped', '/v1/completions', escaped(JSON.stringify({ model: 'm', prompt: '漢字テスト'.repeat(800_000) }))],
  ['4096 messages of 1,000 characters', '/v1/chat/completions', JSON.stringify({ model: 'm', messages: Array.from({ length: 4096 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i} `.repeat(100).slice(0, 1000) })) })],
  ['30 MB ASCII prompt (refused: over the prompt cap)', '/v1/completions', JSON.stringify({ model: 'm', prompt: 'lorem ipsum '.repeat(2_500_000), max_tokens: 1 })],
];

// The noise floor: the longest gap while the loop has nothing to do (a loaded machine deschedules it).
const idle = await stall(() => new Promise((r) => setTimeout(r, 2000)));
console.log(`idle loop, 2 s: longest gap ${idle.gapMs.toFixed(1)} ms (noise floor of this machine now)`);
console.log('| body | MB | inline: longest stall | worker: longest stall | worker: parse time |');
console.log('|---|---|---|---|---|');
for (const [name, path, text] of shapes) {
  const bytes = Buffer.from(text);
  // readBody (http-front.ts) hands a large body over in shared memory, filled as it was read.
  const shared = Buffer.from(new SharedArrayBuffer(bytes.length));
  bytes.copy(shared);
  // Warm the worker thread once so its start-up is not counted.
  await parseOpenAIRequestAsync(path, {}, shared, opts).catch(() => {});
  const worker = await stall(() => parseOpenAIRequestAsync(path, {}, shared, opts).catch(() => {}));
  const inline = await stall(() => {
    try {
      parseOpenAIRequest(path, {}, bytes, opts);
    } catch {
      /* limits may refuse it after the parse: the parse is what is measured */
    }
  });
  console.log(`| ${name} | ${(bytes.length / 1e6).toFixed(1)} | ${inline.gapMs.toFixed(1)} ms | ${worker.gapMs.toFixed(1)} ms | ${worker.totalMs.toFixed(0)} ms |`);
}
process.exit(0);
