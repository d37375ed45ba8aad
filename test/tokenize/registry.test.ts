// Where tokenizers are found, what happens when they are not, downloads, metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { TokenizerRegistry, UnknownModelError } from '../../src/tokenize/index.js';
import { QWEN3_DIR, qwen3TokenizerJsonText } from '../helpers/qwen3-tokenizer.js';

const MODEL = 'Qwen/Qwen3-0.6B';
const BUNDLED_DIR = QWEN3_DIR;
const HELLO = [9707, 1879, 0]; // "Hello world!"

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'kvr-tok-'));
}
function copyTokenizer(to: string, extra: Record<string, unknown> = {}): void {
  mkdirSync(to, { recursive: true });
  writeFileSync(join(to, 'tokenizer.json'), qwen3TokenizerJsonText());
  copyFileSync(join(BUNDLED_DIR, 'tokenizer_config.json'), join(to, 'tokenizer_config.json'));
  for (const [name, body] of Object.entries(extra)) writeFileSync(join(to, name), typeof body === 'string' ? body : JSON.stringify(body));
}

test('Qwen/Qwen3-0.6B resolves to the bundled tokenizer with no download', async () => {
  const reg = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent' });
  assert.equal(await reg.has(MODEL), true);
  const r = await reg.tokenize({ model: MODEL, prompt: 'Hello world!' });
  assert.deepEqual(r, { count: 3, max_model_len: 40960, tokens: HELLO });
});

test('explicit modelDirs, both searchDirs layouts and the HF cache layout are found', async () => {
  const root = tmp();
  try {
    copyTokenizer(join(root, 'explicit'), { 'config.json': { max_position_embeddings: 4096 } });
    copyTokenizer(join(root, 'search', 'acme', 'nested'));
    copyTokenizer(join(root, 'search', 'acme--flat'));
    const snap = join(root, 'hub', 'models--acme--cached', 'snapshots', 'abc123');
    copyTokenizer(snap, { 'config.json': { text_config: { max_position_embeddings: 8192 } } });
    mkdirSync(join(root, 'hub', 'models--acme--cached', 'refs'));
    writeFileSync(join(root, 'hub', 'models--acme--cached', 'refs', 'main'), 'abc123');
    const reg = await TokenizerRegistry.create({ modelDirs: { 'my-model': join(root, 'explicit') }, searchDirs: [join(root, 'search')], hfCacheDir: join(root, 'hub') });
    const expect: Record<string, number> = { 'my-model': 4096, 'acme/nested': 131072, 'acme/flat': 131072, 'acme/cached': 8192 };
    for (const [model, maxLen] of Object.entries(expect)) {
      assert.equal(await reg.has(model), true, model);
      const r = await reg.tokenize({ model, prompt: 'Hello world!' });
      assert.deepEqual(r.tokens, HELLO, model);
      assert.equal(r.max_model_len, maxLen, `${model} max_model_len`);
    }
    // A directory path works as a model name, as with `vllm serve /path`.
    assert.deepEqual((await reg.tokenize({ model: join(root, 'explicit'), prompt: 'Hello world!' })).tokens, HELLO);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('an unknown model fails with an error naming the model and every place looked', async () => {
  const root = tmp();
  try {
    const reg = await TokenizerRegistry.create({ modelDirs: { 'org/missing': join(root, 'nope') }, searchDirs: [join(root, 's1')], hfCacheDir: join(root, 'hub') });
    assert.equal(await reg.has('org/missing'), false);
    await assert.rejects(reg.tokenize({ model: 'org/missing', prompt: 'x' }), (e: unknown) => {
      assert.ok(e instanceof UnknownModelError);
      assert.equal(e.status, 404);
      for (const place of ['org/missing', join(root, 'nope'), join(root, 's1', 'org', 'missing'), join(root, 's1', 'org--missing'), join(root, 'hub', 'models--org--missing'), 'bundled', 'allowDownload'])
        assert.ok(e.message.includes(place), `message names ${place}: ${e.message}`);
      return true;
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('allowDownload fetches into the HF cache layout (loopback hub), and a dead hub gives a clear error', async () => {
  const root = tmp();
  const files: Record<string, string> = {
    'tokenizer.json': qwen3TokenizerJsonText(),
    'tokenizer_config.json': readFileSync(join(BUNDLED_DIR, 'tokenizer_config.json'), 'utf8'),
    'config.json': JSON.stringify({ max_position_embeddings: 2048 }),
  };
  const seen: string[] = [];
  const hub = createServer((req, res) => {
    seen.push(req.url ?? '');
    const m = /^\/acme\/remote\/resolve\/main\/(.+)$/.exec(req.url ?? '');
    const body = m ? files[m[1]] : undefined;
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'x-repo-commit': 'deadbeef' }).end(body);
  });
  await new Promise<void>((r) => hub.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(hub.address() as AddressInfo).port}`;
  try {
    const reg = await TokenizerRegistry.create({ hfCacheDir: join(root, 'hub'), allowDownload: true, hubEndpoint: endpoint });
    const r = await reg.tokenize({ model: 'acme/remote', prompt: 'Hello world!' });
    assert.deepEqual(r.tokens, HELLO);
    assert.equal(r.max_model_len, 2048);
    assert.ok(seen.includes('/acme/remote/resolve/main/tokenizer.json'));
    // Now cached on disk: a registry without downloads finds it.
    const offline = await TokenizerRegistry.create({ hfCacheDir: join(root, 'hub') });
    assert.equal(await offline.has('acme/remote'), true);
    assert.equal(readFileSync(join(root, 'hub', 'models--acme--remote', 'refs', 'main'), 'utf8'), 'deadbeef');
    // Not on the hub: 404 from the hub becomes a clear error.
    await assert.rejects(reg.tokenize({ model: 'acme/absent', prompt: 'x' }), /acme\/absent.*HTTP 404/);
  } finally {
    await new Promise((r) => hub.close(r));
  }
  const dead = await TokenizerRegistry.create({ hfCacheDir: join(root, 'hub2'), allowDownload: true, hubEndpoint: endpoint });
  await assert.rejects(dead.tokenize({ model: 'acme/other', prompt: 'x' }), /cannot download the tokenizer of "acme\/other".*offline\?/);
  rmSync(root, { recursive: true, force: true });
});

test('a model without a chat template tokenizes prompts but rejects chats with 400', async () => {
  const root = tmp();
  try {
    const cfg = JSON.parse(readFileSync(join(BUNDLED_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    delete cfg.chat_template;
    copyTokenizer(join(root, 'm'), { 'tokenizer_config.json': cfg });
    const reg = await TokenizerRegistry.create({ modelDirs: { plain: join(root, 'm') }, hfCacheDir: '/nonexistent' });
    assert.deepEqual(await reg.encodeCompletion('plain', 'Hello world!'), HELLO);
    await assert.rejects(reg.encodeChat('plain', [{ role: 'user', content: 'hi' }]), (e: { status?: number; message: string }) => e.status === 400 && /no chat template/.test(e.message));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('Llama-class tokenizer_config add_bos_token/add_eos_token rebuild the special tokens, as transformers does', async () => {
  const root = tmp();
  try {
    const cfg = JSON.parse(readFileSync(join(BUNDLED_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    copyTokenizer(join(root, 'both'), { 'tokenizer_config.json': { ...cfg, tokenizer_class: 'LlamaTokenizerFast', bos_token: '<|endoftext|>', add_bos_token: true, add_eos_token: true } });
    const { add_bos_token: _drop, ...noBosKey } = cfg;
    copyTokenizer(join(root, 'default'), { 'tokenizer_config.json': { ...noBosKey, tokenizer_class: 'LlamaTokenizer', bos_token: '<|endoftext|>' } });
    const reg = await TokenizerRegistry.create({ modelDirs: { both: join(root, 'both'), def: join(root, 'default') }, hfCacheDir: '/nonexistent' });
    assert.deepEqual(await reg.encodeCompletion('both', 'Hello world!', true), [151643, ...HELLO, 151645]);
    assert.deepEqual(await reg.encodeCompletion('both', 'Hello world!', false), HELLO);
    assert.deepEqual(await reg.encodeCompletion('def', 'Hello world!', true), [151643, ...HELLO]);
    // The chunked/cached path adds the same affixes once around the whole text.
    const long = 'Some long text for the chunked path. '.repeat(200);
    const ids = await reg.encodeCompletion('both', long, true);
    assert.equal(ids[0], 151643);
    assert.equal(ids[ids.length - 1], 151645);
    assert.deepEqual(ids.slice(1, -1), await reg.encodeCompletion('both', long, false));
    // Chats never get them (add_special_tokens=false).
    assert.notEqual((await reg.encodeChat('both', [{ role: 'user', content: 'hi' }]))[0], 151643);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a chat_template.jinja file is used when present', async () => {
  const root = tmp();
  try {
    copyTokenizer(join(root, 'm'), { 'chat_template.jinja': '{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}' });
    const reg = await TokenizerRegistry.create({ modelDirs: { j: join(root, 'm') }, hfCacheDir: '/nonexistent' });
    assert.equal(await reg.renderChat('j', [{ role: 'user', content: 'hi' }]), '[user]hi[assistant]');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('token-id prompts pass through untouched; bad ids are rejected', async () => {
  const reg = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent' });
  const ids = [151644, 872, 198, 0, 151668];
  assert.deepEqual(await reg.encodeCompletion(MODEL, ids), ids);
  await assert.rejects(reg.encodeCompletion(MODEL, [1, -2]), /prompt\[1\]/);
  await assert.rejects(reg.encodeCompletion(MODEL, [1.5]), /prompt\[0\]/);
  await assert.rejects(reg.encodeCompletion(MODEL, [99_999_999]), /out of vocabulary/);
});

test('metrics count requests and cache hit/miss tokens on the given registry', async () => {
  const prom = new Registry();
  const reg = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent', registry: prom });
  const sys = 'Shared system prompt for metrics. '.repeat(200);
  await reg.encodeCompletion(MODEL, sys + 'one');
  await reg.encodeCompletion(MODEL, sys + 'two');
  await reg.encodeChat(MODEL, [{ role: 'user', content: 'hi' }]);
  await assert.rejects(reg.encodeCompletion('nope/nope', 'x'));
  const text = await prom.metrics();
  assert.match(text, /kvrouter_tokenize_requests_total\{kind="completion",outcome="ok"\} 2/);
  assert.match(text, /kvrouter_tokenize_requests_total\{kind="chat",outcome="ok"\} 1/);
  assert.match(text, /kvrouter_tokenize_requests_total\{kind="completion",outcome="error"\} 1/);
  const hit = Number(/kvrouter_tokenize_tokens_total\{cache="hit"\} (\d+)/.exec(text)?.[1]);
  assert.ok(hit > 1000, `hit tokens ${hit}`);
  assert.match(text, /kvrouter_tokenize_duration_seconds_bucket/);
  // A second registry on the same prom Registry shares the metrics instead of failing.
  const again = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent', registry: prom });
  await again.encodeChat(MODEL, [{ role: 'user', content: 'hi' }]);
  assert.match(await prom.metrics(), /kvrouter_tokenize_requests_total\{kind="chat",outcome="ok"\} 2/);
});

test('engine choice: option, KVROUTER_TOKENIZER_ENGINE, and a clear startup error for a bad value', async () => {
  const saved = process.env.KVROUTER_TOKENIZER_ENGINE;
  try {
    delete process.env.KVROUTER_TOKENIZER_ENGINE;
    assert.equal((await (await TokenizerRegistry.create({ hfCacheDir: '/nonexistent' })).get('Qwen/Qwen3-0.6B')).engineName, 'fast-bpe');
    process.env.KVROUTER_TOKENIZER_ENGINE = 'native';
    const nat = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent' });
    assert.equal((await nat.get('Qwen/Qwen3-0.6B')).engineName, 'native');
    assert.deepEqual(await nat.encodeCompletion('Qwen/Qwen3-0.6B', 'Hello world!', false), HELLO);
    assert.equal((await (await TokenizerRegistry.create({ hfCacheDir: '/nonexistent', engine: 'auto' })).get('Qwen/Qwen3-0.6B')).engineName, 'fast-bpe', 'the option wins');
    process.env.KVROUTER_TOKENIZER_ENGINE = 'rust';
    await assert.rejects(TokenizerRegistry.create({ hfCacheDir: '/nonexistent' }), /KVROUTER_TOKENIZER_ENGINE must be 'auto' or 'native'/);
  } finally {
    if (saved === undefined) delete process.env.KVROUTER_TOKENIZER_ENGINE;
    else process.env.KVROUTER_TOKENIZER_ENGINE = saved;
  }
});
