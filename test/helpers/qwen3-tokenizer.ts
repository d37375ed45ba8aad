// The bundled Qwen/Qwen3-0.6B tokenizer files (models/Qwen--Qwen3-0.6B), for tests and benches.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLED_MODELS_DIR, readTokenizerJson } from '../../src/tokenize/locate.js';

export const QWEN3_DIR = join(BUNDLED_MODELS_DIR, 'Qwen--Qwen3-0.6B');
/** tokenizer.json's text (the bundled file is gzipped). */
export const qwen3TokenizerJsonText = (): string => readTokenizerJson(join(QWEN3_DIR, 'tokenizer.json.gz')).toString('utf8');
export const qwen3TokenizerConfigText = (): string => readFileSync(join(QWEN3_DIR, 'tokenizer_config.json'), 'utf8');
