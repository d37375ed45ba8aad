// kvrouter keys: print the request block keys of a token sequence as decimal uint64 strings.
import { parseArgs } from 'node:util';
import { BlockKeyer, HASH_ALGORITHMS, parseKey, type HashAlgorithm } from '../../index/keys.js';

const USAGE = `usage: kvrouter keys --model M --tokens 1,2,3,... [--block-size 16] [--seed ""]
                    [--lora NAME] [--parent KEY] [--extra JSON] [--cache-salt S]
                    [--algorithm ${HASH_ALGORITHMS.join('|')}]

Prints the request keys of every full block as a JSON array of decimal uint64 strings.
The default algorithm (cbor-fnv) matches llm-d's request keys byte for byte.
--extra is a JSON array with one entry per full block: null or an array of items
(strings are multimodal ids and become {"Hash": id}).`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string', short: 'm' },
        'block-size': { type: 'string', short: 'b', default: '16' },
        seed: { type: 'string', short: 's', default: '' },
        tokens: { type: 'string', short: 't' },
        lora: { type: 'string' },
        parent: { type: 'string' },
        extra: { type: 'string' },
        'cache-salt': { type: 'string' },
        algorithm: { type: 'string', short: 'a', default: 'cbor-fnv' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    console.error(`kvrouter keys: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  try {
    if (!values.model) throw new Error('--model is required');
    if (values.tokens === undefined) throw new Error('--tokens is required');
    const blockSize = Number(values['block-size']);
    if (!Number.isInteger(blockSize) || blockSize <= 0) throw new Error(`--block-size must be a positive integer, got "${values['block-size']}"`);
    const algorithm = values.algorithm as HashAlgorithm;
    if (!HASH_ALGORITHMS.includes(algorithm)) throw new Error(`--algorithm must be one of ${HASH_ALGORITHMS.join(', ')}`);
    const tokens = values.tokens.trim() === '' ? [] : values.tokens.split(',').map((s, i) => {
      const t = Number(s.trim());
      if (s.trim() === '' || t >>> 0 !== t) throw new Error(`--tokens: item ${i} ("${s}") is not a uint32`);
      return t;
    });
    let extra: (unknown[] | null)[] | null = null;
    if (values.extra !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(values.extra);
      } catch (err) {
        throw new Error(`--extra is not valid JSON: ${(err as Error).message}`, { cause: err });
      }
      if (!Array.isArray(parsed) || !parsed.every((x) => x === null || Array.isArray(x))) throw new Error('--extra must be a JSON array of (array | null), one per full block');
      extra = parsed as (unknown[] | null)[];
    }
    const parent = values.parent !== undefined ? parseKey(values.parent) : undefined;
    const keyer = new BlockKeyer({ blockSize, hashSeed: values.seed ?? '', algorithm });
    const keys = keyer.keys(tokens, { model: values.model, lora: values.lora ?? null, parent, extra, cacheSalt: values['cache-salt'] ?? null });
    console.log(JSON.stringify(Array.from(keys, (k) => k.toString())));
    return 0;
  } catch (err) {
    console.error(`kvrouter keys: ${(err as Error).message}`);
    return 2;
  }
}
