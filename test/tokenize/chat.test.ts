// Chat rendering as vLLM does it: message normalization, tools, kwargs, hand-checked renders.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileTemplate, detectContentFormat, hasDirectRenderer, normalizeTools, renderChat, toConversation } from '../../src/tokenize/chat.js';
import { TokenizerRegistry } from '../../src/tokenize/index.js';

const MODEL = 'Qwen/Qwen3-0.6B';

test('content format detection: templates that loop over content get part lists', () => {
  assert.equal(detectContentFormat("{% for m in messages %}{{ m['content'] }}{% endfor %}"), 'string');
  assert.equal(detectContentFormat("{% for m in messages %}{% for c in m['content'] %}{{ c.text }}{% endfor %}{% endfor %}"), 'openai');
  assert.equal(detectContentFormat('{%- for part in message.content %}{{ part.text }}{%- endfor %}'), 'openai');
});

test('messages are normalized like vLLM: parts joined by newline, null content, tool calls, reasoning, names', () => {
  const conv = toConversation(
    [
      { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }], name: 'bob' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"x": 1}' } }, { id: 'c2', type: 'function', function: { name: 'g', arguments: '' } }], reasoning_content: 'why' },
      { role: 'tool', tool_call_id: 'c1', content: 'ok' },
    ],
    'string',
  );
  assert.deepEqual(conv, [
    { role: 'user', content: 'a\nb', name: 'bob' },
    { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: { x: 1 } } }, { id: 'c2', type: 'function', function: { name: 'g', arguments: {} } }], reasoning: 'why', reasoning_content: 'why' },
    { role: 'tool', content: 'ok', tool_call_id: 'c1' },
  ]);
  assert.deepEqual(toConversation([{ role: 'user', content: 'hi' }], 'openai'), [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }]);
  // Malformed or non-object arguments become {} and an empty tool_calls list is dropped, as in vLLM.
  const [bad, empty] = toConversation(
    [
      { role: 'assistant', content: 'x', tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{nope' } }, { type: 'function', function: { name: 'g', arguments: '[1]' } }] },
      { role: 'assistant', content: 'y', tool_calls: [] },
    ],
    'string',
  );
  assert.deepEqual((bad.tool_calls as { function: { arguments: unknown } }[]).map((t) => t.function.arguments), [{}, {}]);
  assert.equal('tool_calls' in empty, false);
});

test('tools look like vLLM pydantic dumps: declared fields first, missing ones null', () => {
  assert.deepEqual(normalizeTools([{ function: { parameters: { type: 'object' }, name: 'f', strict: true } }]), [
    { type: 'function', function: { name: 'f', description: null, parameters: { type: 'object' }, strict: true } },
  ]);
  assert.equal(normalizeTools(undefined), undefined);
});

test('an openai-format template receives part lists', () => {
  const ctx = { template: compileTemplate('{% for m in messages %}{% for p in m.content %}<{{ p.text }}>{% endfor %}{% endfor %}'), contentFormat: 'openai' as const, specialTokens: {} };
  assert.equal(renderChat(ctx, [{ role: 'user', content: [{ type: 'text', text: 'x' }, { type: 'text', text: 'y' }] }]), '<x><y>');
});

test('special tokens and kwargs reach the template; kwargs override vLLM arguments', () => {
  const ctx = { template: compileTemplate('{{ bos_token }}|{{ eos_token }}|{{ flavour }}|{% if add_generation_prompt %}gen{% else %}nogen{% endif %}'), contentFormat: 'string' as const, specialTokens: { bos_token: '<s>', eos_token: '</s>' } };
  assert.equal(renderChat(ctx, [{ role: 'user', content: 'x' }], { chat_template_kwargs: { flavour: 'mint', add_generation_prompt: false } }), '<s>|</s>|mint|nogen');
});

// Hand-checked against Qwen3's published chat format (<|im_start|>role\n...<|im_end|>\n,
// tools block in the system turn, empty think block when enable_thinking=false).
test('Qwen3 renders, checked by hand', async () => {
  const reg = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent' });
  assert.equal(
    await reg.renderChat(MODEL, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: 'Bye' }]),
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(
    await reg.renderChat(MODEL, [{ role: 'user', content: 'Hi' }], { chat_template_kwargs: { enable_thinking: false } }),
    '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n',
  );
  // Reasoning of earlier turns is dropped from history.
  assert.equal(
    await reg.renderChat(MODEL, [{ role: 'user', content: 'Q1' }, { role: 'assistant', content: '<think>\nhmm\n</think>\n\nA1' }, { role: 'user', content: 'Q2' }]),
    '<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n',
  );
  const withTool = await reg.renderChat(MODEL, [{ role: 'user', content: 'now?' }, { role: 'assistant', content: '', tool_calls: [{ type: 'function', function: { name: 'now', arguments: '{}' } }] }, { role: 'tool', content: '12:00' }]);
  assert.equal(
    withTool,
    '<|im_start|>user\nnow?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n12:00\n</tool_response><|im_end|>\n<|im_start|>assistant\n',
  );
});

// Qwen3's direct renderer must give jinja's string for every conversation it takes, and hand
// the rest to jinja. Random conversations over tricky contents, compared with a jinja-only render.
test('Qwen3 direct renderer equals the jinja render (randomized), and is really taken', async () => {
  const { Template } = await import('@huggingface/jinja');
  const { rng } = await import('../helpers/rng.js');
  const reg = await TokenizerRegistry.create({ hfCacheDir: '/nonexistent' });
  const mt = await reg.get(MODEL);
  const source = mt.chatTemplate!;
  const fastCtx = { template: compileTemplate(source), contentFormat: detectContentFormat(source), specialTokens: { eos_token: '<|im_end|>', pad_token: '<|endoftext|>' } };
  assert.ok(hasDirectRenderer(fastCtx.template));
  // The same template without a direct renderer, and one whose jinja render is disabled.
  const jinjaCtx = { ...fastCtx, template: new Template(source) };
  assert.equal(hasDirectRenderer(jinjaCtx.template), false);
  const noJinja = { ...fastCtx, template: compileTemplate(source) };
  noJinja.template.render = () => {
    throw new Error('jinja used');
  };
  const rand = rng(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const contents = ['', ' ', '\n', 'hi', 'Hello there!', '<tool_response>x</tool_response>', '<tool_response>', '</tool_response>', '</think>', '<think>\nA\n</think>\n\n  B', '  spaced  ', '\n\nlead', 'trail\n\n', '{{ x }} {% if %}', 'héllo 世界 🙂', 'a\r\nb\tc'];
  const roles = ['system', 'user', 'user', 'assistant', 'assistant', 'tool', 'developer'];
  let direct = 0;
  for (let c = 0; c < 1500; c++) {
    const n = 1 + Math.floor(rand() * 6);
    const messages: Record<string, unknown>[] = [];
    for (let i = 0; i < n; i++) {
      const m: Record<string, unknown> = { role: pick(roles), content: rand() < 0.1 ? [{ type: 'text', text: pick(contents) }, { type: 'text', text: pick(contents) }] : rand() < 0.05 ? null : pick(contents) };
      if (m.role === 'assistant' && rand() < 0.1) m.reasoning_content = pick(contents);
      if (m.role === 'assistant' && rand() < 0.1) m.tool_calls = [{ type: 'function', function: { name: 'f', arguments: '{"a": 1}' } }];
      messages.push(m);
    }
    const opts: Record<string, unknown> = {};
    if (rand() < 0.3) opts.add_generation_prompt = rand() < 0.5;
    if (rand() < 0.3) opts.chat_template_kwargs = pick([{ enable_thinking: false }, { enable_thinking: true }, { enable_thinking: 'no' }, { foo: 1 }, { true: 1 }, {}]);
    if (rand() < 0.05) opts.tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }];
    if (rand() < 0.05) opts.continue_final_message = true;
    const run = (ctx: typeof fastCtx) => {
      try {
        return renderChat(ctx, messages, opts);
      } catch (e) {
        return `error: ${(e as Error).message}`;
      }
    };
    const want = run(jinjaCtx);
    assert.equal(run(fastCtx), want, JSON.stringify({ messages, opts }));
    const viaDirect = run(noJinja);
    if (!viaDirect.includes('jinja used')) {
      direct++;
      assert.equal(viaDirect, want);
    }
  }
  // Most plain conversations take the direct path.
  assert.ok(direct > 500, `direct renders: ${direct}`);
  // The bench's shape (system + long user turn) is one of them.
  const long = [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'word '.repeat(900) }];
  assert.equal(renderChat(noJinja, long), renderChat(jinjaCtx, long));
  await reg.close();
});
