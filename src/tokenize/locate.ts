// Finds the directory holding a model's tokenizer.json: explicit dirs, search dirs,
// the Hugging Face cache layout, then the tokenizers bundled in the package's models/ folder.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** The package's models/ folder (the same relative place from src/tokenize and dist/tokenize). */
export const BUNDLED_MODELS_DIR = fileURLToPath(new URL('../../models/', import.meta.url));

/** Models whose tokenizer ships in models/ (no download needed); see models/<dir>/README.md. */
const BUNDLED: Record<string, { dir: string; maxModelLen: number }> = {
  // Qwen3's tokenizer.json (gzipped) + tokenizer_config.json, unchanged.
  // max_model_len: Qwen3-0.6B config.json max_position_embeddings (40960), what vLLM reports.
  'Qwen/Qwen3-0.6B': { dir: 'Qwen--Qwen3-0.6B', maxModelLen: 40960 },
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

/** A directory's tokenizer.json, or its gzipped form tokenizer.json.gz (as bundled). */
export function tokenizerJsonPath(dir: string): string | undefined {
  for (const name of ['tokenizer.json', 'tokenizer.json.gz']) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** The bytes of a tokenizer.json, gunzipped when the file is `.gz`. */
export function readTokenizerJson(path: string): Buffer {
  const raw = readFileSync(path);
  return path.endsWith('.gz') ? gunzipSync(raw) : raw;
}

const hasTokenizer = (dir: string): boolean => tokenizerJsonPath(dir) !== undefined;

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
    const dir = join(BUNDLED_MODELS_DIR, bundled.dir);
    if (hasTokenizer(dir)) return { dir, source: 'bundled', maxModelLen: bundled.maxModelLen };
    looked.push(`${dir} (bundled, no tokenizer.json(.gz))`);
  } else {
    looked.push(`bundled tokenizers (${bundledModels().join(', ')})`);
  }
  return { looked };
}
