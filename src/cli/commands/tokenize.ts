// `kvrouter tokenize`: print what vLLM's /tokenize would answer for a prompt or a chat.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { TokenizerRegistry, handleTokenize } from '../../tokenize/index.js';

const USAGE = `usage: kvrouter tokenize --model M (--prompt TEXT | --prompt-file F | --messages JSON | --messages-file F) [options]

  --model M                 model name (Qwen/Qwen3-0.6B is bundled), or a directory with tokenizer.json
  --prompt TEXT             completion prompt
  --prompt-file F           read the prompt from a file ("-" = stdin)
  --messages JSON           chat messages as a JSON array
  --messages-file F         read the messages JSON from a file ("-" = stdin)
  --tools JSON              tool definitions (JSON array)
  --kwargs JSON             chat_template_kwargs, e.g. '{"enable_thinking":false}'
  --no-generation-prompt    add_generation_prompt=false
  --continue-final-message  continue_final_message=true (needs --no-generation-prompt)
  --add-special-tokens B    true|false (default: true for prompts, false for chats)
  --model-dir NAME=DIR      tokenizer directory for a model name (repeatable)
  --search-dir DIR          look for DIR/<org>/<name> and DIR/<org--name> (repeatable)
  --hf-cache DIR            Hugging Face hub cache (default $HF_HOME/hub)
  --download                allow fetching the tokenizer from the hub
  --render                  print the rendered chat text instead of the /tokenize JSON`;

function readArg(value: string | undefined, file: string | undefined): string | undefined {
  if (file !== undefined) return readFileSync(file === '-' ? 0 : file, 'utf8');
  return value;
}

function parseJson(name: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`--${name} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        prompt: { type: 'string' },
        'prompt-file': { type: 'string' },
        messages: { type: 'string' },
        'messages-file': { type: 'string' },
        tools: { type: 'string' },
        kwargs: { type: 'string' },
        'no-generation-prompt': { type: 'boolean' },
        'continue-final-message': { type: 'boolean' },
        'add-special-tokens': { type: 'string' },
        'model-dir': { type: 'string', multiple: true },
        'search-dir': { type: 'string', multiple: true },
        'hf-cache': { type: 'string' },
        download: { type: 'boolean' },
        render: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    console.error(`kvrouter tokenize: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  try {
    if (!values.model) throw new UsageError('--model is required');
    const prompt = readArg(values.prompt, values['prompt-file']);
    const messagesText = readArg(values.messages, values['messages-file']);
    if ((prompt === undefined) === (messagesText === undefined)) throw new UsageError('give exactly one of --prompt/--prompt-file or --messages/--messages-file');
    const modelDirs: Record<string, string> = {};
    for (const md of values['model-dir'] ?? []) {
      const eq = md.indexOf('=');
      if (eq <= 0) throw new UsageError(`--model-dir expects NAME=DIR, got "${md}"`);
      modelDirs[md.slice(0, eq)] = md.slice(eq + 1);
    }
    let addSpecial: boolean | undefined;
    if (values['add-special-tokens'] !== undefined) {
      if (!['true', 'false'].includes(values['add-special-tokens'])) throw new UsageError('--add-special-tokens takes true or false');
      addSpecial = values['add-special-tokens'] === 'true';
    }
    const registry = await TokenizerRegistry.create({
      modelDirs,
      searchDirs: values['search-dir'],
      hfCacheDir: values['hf-cache'],
      allowDownload: values.download ?? false,
      prefixCache: { enabled: false },
    });
    const body = {
      model: values.model,
      prompt,
      messages: parseJson('messages', messagesText),
      tools: parseJson('tools', values.tools),
      chat_template_kwargs: parseJson('kwargs', values.kwargs),
      add_generation_prompt: values['no-generation-prompt'] ? false : undefined,
      continue_final_message: values['continue-final-message'] ? true : undefined,
      add_special_tokens: addSpecial,
    };
    if (values.render) {
      if (messagesText === undefined) throw new UsageError('--render needs --messages');
      const text = await registry.renderChat(values.model, body.messages as never, {
        tools: body.tools as unknown[] | undefined,
        chat_template_kwargs: body.chat_template_kwargs as Record<string, unknown> | undefined,
        add_generation_prompt: body.add_generation_prompt,
        continue_final_message: body.continue_final_message,
      });
      process.stdout.write(text);
      return 0;
    }
    const res = await handleTokenize(registry, body);
    if (res.status !== 200) {
      console.error(JSON.stringify(res.body));
      return 1;
    }
    console.log(JSON.stringify(res.body));
    await registry.close();
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`kvrouter tokenize: ${e.message}\n${USAGE}`);
      return 2;
    }
    console.error(`kvrouter tokenize: ${(e as Error).message}`);
    return 1;
  }
}

class UsageError extends Error {}
