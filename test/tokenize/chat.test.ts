// Chat rendering as vLLM does it: message normalization, tools, kwargs, hand-checked renders.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileTemplate, detectContentFormat, normalizeTools, renderChat, toConversation } from '../../src/tokenize/chat.js';
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
