// Optional fetch of a tokenizer from the Hugging Face hub into the standard cache layout
// (models--org--name/snapshots/<commit>/), so later runs find it without the network.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TokenizeError } from './types.js';

const FILES = ['tokenizer.json', 'tokenizer_config.json'];
const OPTIONAL = ['config.json', 'chat_template.jinja'];

export async function downloadTokenizer(model: string, cacheDir: string, endpointOpt?: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const endpoint = (endpointOpt ?? env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/$/, '');
  const headers: Record<string, string> = {};
  if (env.HF_TOKEN) headers.authorization = `Bearer ${env.HF_TOKEN}`;
  const got = new Map<string, string>();
  let commit = '';
  for (const file of [...FILES, ...OPTIONAL]) {
    const url = `${endpoint}/${model}/resolve/main/${file}`;
    let res: Response;
    try {
      res = await fetch(url, { headers, signal: AbortSignal.timeout(30_000) });
    } catch (e) {
      throw new TokenizeError(`cannot download the tokenizer of "${model}" from ${url}: ${(e as Error).message} (offline? give a local directory with modelDirs/searchDirs or fill ${cacheDir})`, 404, 'NotFoundError', 'model');
    }
    if (!res.ok) {
      if (OPTIONAL.includes(file)) continue;
      throw new TokenizeError(`cannot download the tokenizer of "${model}": ${url} answered HTTP ${res.status}`, 404, 'NotFoundError', 'model');
    }
    commit ||= res.headers.get('x-repo-commit') ?? '';
    got.set(file, await res.text());
  }
  const repoDir = join(cacheDir, `models--${model.replace(/\//g, '--')}`);
  const snap = join(repoDir, 'snapshots', commit || 'main');
  mkdirSync(snap, { recursive: true });
  for (const [file, body] of got) writeFileSync(join(snap, file), body);
  mkdirSync(join(repoDir, 'refs'), { recursive: true });
  writeFileSync(join(repoDir, 'refs', 'main'), commit || 'main');
  return snap;
}
