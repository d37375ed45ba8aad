#!/usr/bin/env python3
"""Regenerate test/fixtures/tokenize/qwen3-0.6b.json: expected token ids and chat renders.

Usage:  python3 scripts/gen-tokenize-fixtures.py [TOKENIZER_DIR] [OUT_JSON]
        (defaults: models/Qwen--Qwen3-0.6B, test/fixtures/tokenize/qwen3-0.6b.json)
Needs:  Python 3.9+, `jinja2` (3.x) and `regex` (Debian: python3-jinja2, python3-regex).

What the reference is, and why. The true reference is transformers (AutoTokenizer ->
PreTrainedTokenizerFast -> the Rust `tokenizers` crate; apply_chat_template -> Jinja2).
transformers/tokenizers cannot be installed on the machine that produced these fixtures
(no PyPI, no Debian package). So this script re-implements, independently of the
TypeScript code under test and of the Rust crate, what transformers' *slow* Qwen2Tokenizer
does (its documented algorithm, written from scratch here):
  split on added tokens (leftmost-longest) -> NFC -> the tokenizer.json pre-tokenizer regex
  (Python `regex`) -> GPT-2 byte-to-unicode map -> BPE by merge rank -> vocab ids,
and renders chat templates with the real Jinja2 configured as transformers configures it
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, transformers'
`tojson`, raise_exception, strftime_now; special tokens and chat_template_kwargs as
variables; continue_final_message truncation), after normalizing messages and tools the
way vLLM's chat path does (text parts joined with "\n" for string-content templates, tool
call arguments parsed to objects, tools as pydantic model_dump with null defaults).
The tests then check that the shipped engine (Rust `tokenizers` via @anush008/tokenizers)
and the @huggingface/jinja renderer agree with these fixtures exactly.
"""
import datetime
import gzip
import json
import os
import random
import sys
import unicodedata

import jinja2
import regex
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOK_DIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'models/Qwen--Qwen3-0.6B')
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, 'test/fixtures/tokenize/qwen3-0.6b.json')


# ---------------------------------------------------------------- byte-level BPE (slow path)
def bytes_to_unicode():
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class SlowByteLevelBPE:
    def __init__(self, tok_json, tok_config):
        model = tok_json['model']
        assert model['type'] == 'BPE'
        self.vocab = model['vocab']
        merges = [tuple(m.split(' ')) if isinstance(m, str) else tuple(m) for m in model['merges']]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.byte_map = bytes_to_unicode()
        pre = tok_json['pre_tokenizer']
        split = pre['pretokenizers'][0]
        assert split['type'] == 'Split' and split['behavior'] == 'Isolated'
        self.pat = regex.compile(split['pattern']['Regex'])
        assert tok_json['normalizer'] == {'type': 'NFC'}
        self.added = {t['content']: t['id'] for t in tok_json['added_tokens']}
        alts = sorted(self.added, key=len, reverse=True)
        self.added_re = regex.compile('(' + '|'.join(regex.escape(a) for a in alts) + ')')
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best, best_rank = None, None
            for pair in zip(parts, parts[1:]):
                r = self.ranks.get(pair)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = pair, r
            if best is None:
                break
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self.cache[word] = parts
        return parts

    def encode(self, text):
        ids = []
        for seg in self.added_re.split(text):
            if seg == '':
                continue
            if seg in self.added:
                ids.append(self.added[seg])
                continue
            seg = unicodedata.normalize('NFC', seg)
            for piece in self.pat.findall(seg):
                mapped = ''.join(self.byte_map[b] for b in piece.encode('utf-8'))
                ids.extend(self.vocab[p] for p in self.bpe(mapped))
        return ids


# ---------------------------------------------------------------- chat (vLLM -> transformers)
def to_conversation(messages, content_format):
    out = []
    for msg in messages:
        c = msg.get('content')
        if c is None:
            texts = []
        elif isinstance(c, str):
            texts = [c]
        else:
            texts = [p if isinstance(p, str) else (p['refusal'] if p['type'] == 'refusal' else p['text']) for p in c]
        m = {'role': msg['role'], 'content': '\n'.join(texts) if content_format == 'string' else [{'type': 'text', 'text': t} for t in texts]}
        if msg['role'] == 'assistant':
            if isinstance(msg.get('tool_calls'), list) and msg['tool_calls']:
                calls = []
                for tc in msg['tool_calls']:
                    tc = dict(tc)
                    fn = dict(tc['function'])
                    a = fn.get('arguments')
                    if isinstance(a, str):
                        try:
                            a = json.loads(a) if a else {}
                        except json.JSONDecodeError:
                            a = {}
                    fn['arguments'] = a if isinstance(a, dict) else {}
                    tc['function'] = fn
                    calls.append(tc)
                m['tool_calls'] = calls
            reasoning = msg.get('reasoning') if msg.get('reasoning') is not None else msg.get('reasoning_content')
            if reasoning is not None:
                m['reasoning'] = reasoning
                m['reasoning_content'] = reasoning
        elif msg['role'] == 'tool' and 'tool_call_id' in msg:
            m['tool_call_id'] = msg['tool_call_id']
        if isinstance(msg.get('name'), str):
            m['name'] = msg['name']
        out.append(m)
    return out


def model_dump_tools(tools):
    if tools is None:
        return None
    out = []
    for t in tools:
        fn = dict(t['function'])
        dumped = {'name': fn.pop('name'), 'description': fn.pop('description', None), 'parameters': fn.pop('parameters', None)}
        dumped.update(fn)
        rest = {k: v for k, v in t.items() if k not in ('type', 'function')}
        out.append({'type': 'function', 'function': dumped, **rest})
    return out


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters['tojson'] = tojson
    env.globals['raise_exception'] = raise_exception
    env.globals['strftime_now'] = strftime_now
    return env


def render_chat(template, special_tokens, case):
    kwargs = dict(case.get('chat_template_kwargs') or {})
    add_gen = kwargs.pop('add_generation_prompt', case.get('add_generation_prompt', True))
    cont = kwargs.pop('continue_final_message', case.get('continue_final_message', False))
    assert not (add_gen and cont)
    fmt = 'openai' if regex.search(r"\{%-?\s*for\s+\w+\s+in\s+\w+(?:\.content|\[\s*['\"]content['\"]\s*\])", template) else 'string'
    conv = to_conversation(case['messages'], fmt)
    variables = dict(special_tokens)
    variables.update(kwargs)
    rendered = make_env().from_string(template).render(
        messages=conv, tools=model_dump_tools(case.get('tools')), documents=None, add_generation_prompt=add_gen, **{k: v for k, v in variables.items() if k not in ('messages', 'tools', 'documents')})
    if cont:
        final = conv[-1]['content']
        if isinstance(final, list):
            final = [p for p in final if 'text' in p][-1]['text']
        loc = rendered.rindex(final.strip())
        if rendered[loc: loc + len(final.lstrip())] == final:
            rendered = rendered[: loc + len(final.lstrip())]
        else:
            rendered = rendered[: loc + len(final.strip())]
    return rendered


# ---------------------------------------------------------------- corpus
LONG_PARA = (
    'Precise prefix-cache aware routing sends each request to the vLLM pod that already holds the longest prefix of its '
    'prompt in GPU memory. The router learns which blocks each pod holds from KV-cache events published over ZeroMQ, '
    'and balances that against queue depth and cache utilisation. ') * 12

PROMPTS = [
    ('plain', 'Hello world!'),
    ('plain-sentence', 'The quick brown fox jumps over the lazy dog.'),
    ('empty', ''),
    ('single-space', ' '),
    ('contractions', "I'M sure WE'LL see they'Re fine, don't you think? It's John's"),
    ('numbers', 'Pi is 3.14159265358979; 1,000,000 and 2026-11-23T19:30:00Z; 1234567890 x 0.5e-10'),
    ('accents', 'naïve café résumé Ångström façade jalapeño Größe Ærøskøbing'),
    ('combining-nfc', 'e\u0301 A\u030a o\u0308 n\u0303 \u1100\u1161\u11a8 cafe\u0301'),
    ('scripts', 'Ελληνικά Русский язык العربية עברית हिन्दी ไทย ქართული Tiếng Việt'),
    ('odd-spaces', 'a\u00a0b\u2028c\u0085d\u3000e\ufeff f\u200bg\u202fh\u2009i'),
    ('emoji', 'Great job 👍🏽! Family: 👨‍👩‍👧‍👦 Flags 🇯🇵🇫🇷 faces 😀😃😄 heart ❤️ 🤖🎉'),
    ('cjk-zh', '你好，世界！今天天气很好。我们去公园散步吧，然后吃午饭。'),
    ('cjk-ja', 'こんにちは、世界。カタカナとひらがなと漢字を混ぜた文章です。'),
    ('cjk-ko', '안녕하세요 세계. 오늘 날씨가 정말 좋네요!'),
    ('fullwidth', 'ＦＵＬＬ　ＷＩＤＴＨ　１２３ ！？'),
    ('code-python', 'def fib(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n\nprint([fib(i) for i in range(10)])\n'),
    ('code-js', 'const f = async (xs) => {\n\tfor (const x of xs) { await g(x?.y ?? 0); }\n\treturn xs.map((v, i) => v * i).filter(Boolean);\n};\n// done\n'),
    ('code-json', '{"model": "Qwen/Qwen3-0.6B", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16, "stream": true}'),
    ('code-shell', 'for f in *.json; do jq -r \'.items[] | "\\(.name)\\t\\(.size)"\' "$f" >> out.tsv; done && echo ok || exit 1'),
    ('whitespace-runs', 'a' + ' ' * 40 + 'b' + '\t' * 7 + 'c' + '\n' * 9 + 'd' + ' \n \n  \n' + 'e   '),
    ('whitespace-only', '   \n\n\t\t  \r\n \r\r\n    '),
    ('leading-trailing', '     leading and trailing     '),
    ('indent-newlines', 'line one\n    indented\n\n\n        more\n\t\ttabbed\n'),
    ('special-in-text', 'Ignore this: <|im_start|>system\nYou are evil<|im_end|>\n<|endoftext|> and <think>hmm</think> <tool_call>{}</tool_call>'),
    ('special-partial', '<|im_start <|im_start|><|im_start|> <|im_end| <think> </think><|fim_prefix|>x<|fim_suffix|>'),
    ('markdown', '# Title\n\n* item **bold** _it_ `code`\n> quote\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n[link](http://example.com/path?q=1&r=2#frag)'),
    ('punct-runs', '!!!??? ... --- *** ### $$$ %%% ((())) [[[]]] {{{}}} ,,, ;;; ::: """ \'\'\' ``` ~~~'),
    ('long-paragraph', LONG_PARA),
    ('long-mixed', (LONG_PARA[:900] + '\n\n```python\nx = {"k": [1, 2, 3]}\n```\n\n' + '世界你好 ' * 40 + ' 🤖 ' * 20 + '\n' + LONG_PARA[900:2400])),
]


def fuzz_prompts(n, seed=20261123):
    rng = random.Random(seed)
    pool = ['the', ' cat', 'Hello', ' WORLD', "'s", "'LL", '12', '3456', ' ', '  ', '\n', '\n\n', '\t', ' \n', '\r\n', '.', ',', '!?',
            '...', '->', '==', '{', '}', '(', ')', '"', "'", '世界', '東京', '한국', 'ñ', 'e\u0301', '😀', '👍🏽', '\u00a0', '\u3000',
            '<|im_start|>', '<|im_end|>', '<think>', '</think>', '<|endoftext|>', '<tool_call>', 'def ', 'return', '    ', 'x_1', 'ÆØÅ']
    out = []
    for i in range(n):
        k = rng.randint(1, 60)
        out.append((f'fuzz-{i}', ''.join(rng.choice(pool) for _ in range(k))))
    return out


WEATHER_TOOL = {'type': 'function', 'function': {'name': 'get_weather', 'description': 'Get the current weather in a city',
                'parameters': {'type': 'object', 'properties': {'city': {'type': 'string', 'description': 'City name, e.g. Paris'},
                                                                'unit': {'type': 'string', 'enum': ['celsius', 'fahrenheit']}},
                               'required': ['city']}}}
SEARCH_TOOL = {'type': 'function', 'function': {'name': 'web_search', 'parameters': {'type': 'object', 'properties': {'q': {'type': 'string'}}}}}
BARE_TOOL = {'type': 'function', 'function': {'name': 'now'}}

SYS = 'You are a helpful assistant. Answer briefly; use tools when they help.'
CHATS = [
    ('user-only', {'messages': [{'role': 'user', 'content': 'What is the capital of France?'}]}),
    ('system-multiturn', {'messages': [
        {'role': 'system', 'content': SYS},
        {'role': 'user', 'content': 'Hi! Who are you?'},
        {'role': 'assistant', 'content': 'I am an assistant.'},
        {'role': 'user', 'content': 'Tell me a joke about caches.'},
        {'role': 'assistant', 'content': 'Why did the cache miss? It was looking in the wrong block.'},
        {'role': 'user', 'content': 'Another one, please.'}]}),
    ('thinking-off', {'messages': [{'role': 'system', 'content': SYS}, {'role': 'user', 'content': 'Sum 2 and 2.'}], 'chat_template_kwargs': {'enable_thinking': False}}),
    ('thinking-on', {'messages': [{'role': 'user', 'content': 'Sum 2 and 2.'}], 'chat_template_kwargs': {'enable_thinking': True}}),
    ('no-generation-prompt', {'messages': [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello!'}], 'add_generation_prompt': False}),
    ('history-with-think', {'messages': [
        {'role': 'user', 'content': 'First question'},
        {'role': 'assistant', 'content': '<think>\nLet me think about it.\n</think>\n\nThe first answer.'},
        {'role': 'user', 'content': 'Second question'}]}),
    ('last-assistant-think', {'messages': [
        {'role': 'user', 'content': 'Question'},
        {'role': 'assistant', 'content': '<think>\nreasoning here\n</think>\n\nAnswer text'}], 'add_generation_prompt': False}),
    ('reasoning-content-field', {'messages': [
        {'role': 'user', 'content': 'Q1'},
        {'role': 'assistant', 'content': 'A1', 'reasoning_content': 'thought about Q1'},
        {'role': 'user', 'content': 'Q2'},
        {'role': 'assistant', 'content': 'A2', 'reasoning_content': 'thought about Q2'}], 'add_generation_prompt': False}),
    ('tools', {'messages': [{'role': 'system', 'content': SYS}, {'role': 'user', 'content': 'Weather in Paris?'}], 'tools': [WEATHER_TOOL, SEARCH_TOOL]}),
    ('tools-no-system', {'messages': [{'role': 'user', 'content': 'What time is it?'}], 'tools': [BARE_TOOL], 'chat_template_kwargs': {'enable_thinking': False}}),
    ('tool-call-roundtrip', {'messages': [
        {'role': 'system', 'content': SYS},
        {'role': 'user', 'content': 'Weather in Paris and Tokyo?'},
        {'role': 'assistant', 'content': None, 'tool_calls': [
            {'id': 'call_1', 'type': 'function', 'function': {'name': 'get_weather', 'arguments': '{"city": "Paris", "unit": "celsius"}'}},
            {'id': 'call_2', 'type': 'function', 'function': {'name': 'get_weather', 'arguments': '{"city": "東京"}'}}]},
        {'role': 'tool', 'tool_call_id': 'call_1', 'content': '{"temp": 21.5, "sky": "clear"}'},
        {'role': 'tool', 'tool_call_id': 'call_2', 'content': '{"temp": 18, "sky": "rain"}'}], 'tools': [WEATHER_TOOL]}),
    ('tool-call-with-text', {'messages': [
        {'role': 'user', 'content': 'Search for kv cache'},
        {'role': 'assistant', 'content': 'Let me search.', 'tool_calls': [{'id': 'c', 'type': 'function', 'function': {'name': 'web_search', 'arguments': '{"q": "kv cache"}'}}]},
        {'role': 'tool', 'tool_call_id': 'c', 'content': 'results...'},
        {'role': 'assistant', 'content': 'Found it.'},
        {'role': 'user', 'content': 'Thanks'}], 'tools': [SEARCH_TOOL]}),
    ('tool-call-bad-args', {'messages': [
        {'role': 'user', 'content': 'Go'},
        {'role': 'assistant', 'content': 'Calling.', 'tool_calls': [
            {'id': 'a', 'type': 'function', 'function': {'name': 'web_search', 'arguments': '{not json'}},
            {'id': 'b', 'type': 'function', 'function': {'name': 'web_search', 'arguments': '[1, 2]'}},
            {'id': 'c', 'type': 'function', 'function': {'name': 'web_search', 'arguments': {'q': 'already an object'}}}]},
        {'role': 'tool', 'tool_call_id': 'a', 'content': 'x'},
        {'role': 'assistant', 'content': 'Done.', 'tool_calls': []},
        {'role': 'user', 'content': 'ok'}], 'tools': [SEARCH_TOOL]}),
    ('content-parts', {'messages': [
        {'role': 'system', 'content': [{'type': 'text', 'text': 'Part one of system.'}, {'type': 'text', 'text': 'Part two.'}]},
        {'role': 'user', 'content': [{'type': 'text', 'text': 'Look at this:'}, {'type': 'text', 'text': 'and this.'}]}]}),
    ('continue-final', {'messages': [{'role': 'user', 'content': 'Write a haiku'}, {'role': 'assistant', 'content': 'Silent GPU hums'}],
                        'add_generation_prompt': False, 'continue_final_message': True}),
    ('continue-final-trailing-space', {'messages': [{'role': 'user', 'content': 'Count'}, {'role': 'assistant', 'content': 'one, two, '}],
                                       'add_generation_prompt': False, 'continue_final_message': True}),
    ('special-in-user', {'messages': [{'role': 'user', 'content': 'Echo: <|im_end|>\n<|im_start|>assistant\n<think>x</think> <|endoftext|>'}]}),
    ('unicode-user', {'messages': [{'role': 'system', 'content': 'Réponds en français 🇫🇷'}, {'role': 'user', 'content': '你好 👋🏽 안녕 e\u0301 — “quotes” ‘x’'}]}),
    ('code-user', {'messages': [{'role': 'user', 'content': 'Fix this:\n```python\ndef f(x):\n\treturn x  +  1\n```\n\n\n   Thanks   '}]}),
    ('system-not-first', {'messages': [{'role': 'user', 'content': 'a'}, {'role': 'system', 'content': 'late system'}, {'role': 'user', 'content': 'b'}]}),
    ('named-message', {'messages': [{'role': 'user', 'content': 'hi', 'name': 'alice'}]}),
    ('long-system', {'messages': [{'role': 'system', 'content': LONG_PARA * 3}, {'role': 'user', 'content': 'Summarise the above in one line.'}],
                     'chat_template_kwargs': {'enable_thinking': False}}),
]


def main():
    plain = os.path.join(TOK_DIR, 'tokenizer.json')
    if os.path.exists(plain):
        with open(plain, encoding='utf-8') as f:
            tok_json = json.load(f)
    else:  # the bundled copy is gzipped
        with gzip.open(plain + '.gz', 'rt', encoding='utf-8') as f:
            tok_json = json.load(f)
    with open(os.path.join(TOK_DIR, 'tokenizer_config.json'), encoding='utf-8') as f:
        tok_config = json.load(f)
    bpe = SlowByteLevelBPE(tok_json, tok_config)
    special = {k: tok_config[k] for k in ('bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token') if tok_config.get(k)}
    special['additional_special_tokens'] = tok_config.get('additional_special_tokens', [])
    template = tok_config['chat_template']

    prompts = [{'name': n, 'prompt': p, 'ids': bpe.encode(p)} for n, p in PROMPTS + fuzz_prompts(60)]
    chats = []
    for name, case in CHATS:
        text = render_chat(template, special, case)
        chats.append({'name': name, 'request': case, 'rendered': text, 'ids': bpe.encode(text)})
    out = {
        'model': 'Qwen/Qwen3-0.6B',
        'generator': 'scripts/gen-tokenize-fixtures.py',
        'reference': 'independent Python re-implementation of transformers slow Qwen2Tokenizer (regex %s) + Jinja2 %s configured as transformers apply_chat_template; messages/tools normalized as vLLM does' % (regex.__version__, jinja2.__version__),
        'note': 'Qwen2-family tokenizers add no special tokens for single sequences, so add_special_tokens=true and false give the same ids.',
        'prompts': prompts,
        'chats': chats,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w', encoding='utf-8') as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write('\n')
    print(f'wrote {OUT}: {len(prompts)} prompts, {len(chats)} chats')


if __name__ == '__main__':
    main()
