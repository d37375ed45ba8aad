#!/usr/bin/env python3
"""Regenerate test/fixtures/sim/hash-vectors.json: vLLM block-hash reference vectors.

Usage:  python3 scripts/gen-hash-vectors.py [OUT_JSON]
Needs:  Python 3.8+ standard library only (hashlib, pickle). cbor2 is not needed: the one
        canonical-CBOR shape vLLM hashes (tuples of bytes, ints, strings and None) is encoded
        by hand below, per RFC 8949 section 4.2.1 (shortest heads, definite lengths).

The algorithm is vLLM's (vllm-project/vllm, main branch 2025-2026; sha256_cbor exists since
v0.10.2):
  vllm/utils/hashing.py
    sha256(x)      = SHA-256(pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL))   (protocol 5)
    sha256_cbor(x) = SHA-256(cbor2.dumps(x, canonical=True))
  vllm/v1/core/kv_cache_utils.py
    init_none_hash: NONE_HASH = hash_fn(os.getenv("PYTHONHASHSEED")) (the seed *string*),
                    random 32 bytes when the variable is unset
    hash_block_tokens(hash_fn, parent, tokens, extra) = hash_fn((parent or NONE_HASH, tuple(tokens), extra))
  Events carry int.from_bytes(digest, "big") & (2**64 - 1) (vLLM PR #23673, v0.10.2+,
  VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=1 default): the "wire" values below.

Vectors: PYTHONHASHSEED="0", block size 16, block 1 = tokens 1..16, block 2 = tokens 17..32,
extra None; plus block 1 with extra ("my-lora",) (a LoRA adapter's name, vLLM PR #27211).
They were not taken from a running engine (vLLM's test suite has no fixed vectors); they
follow from the functions above, which this script runs with Python's own pickle.
"""
import hashlib
import json
import os
import pickle
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'test/fixtures/sim/hash-vectors.json')


def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for info, fmt, limit in ((24, '>B', 1 << 8), (25, '>H', 1 << 16), (26, '>I', 1 << 32), (27, '>Q', 1 << 64)):
        if n < limit:
            return bytes([major << 5 | info]) + struct.pack(fmt, n)
    raise ValueError('integer too large for a CBOR head')


def cbor(x):
    """Canonical CBOR of the values vLLM hashes: None, bool, int, bytes, str, tuple/list."""
    if x is None:
        return b'\xf6'
    if x is True or x is False:
        return b'\xf5' if x else b'\xf4'
    if isinstance(x, int):
        return cbor_head(0, x) if x >= 0 else cbor_head(1, -1 - x)
    if isinstance(x, bytes):
        return cbor_head(2, len(x)) + x
    if isinstance(x, str):
        b = x.encode('utf-8')
        return cbor_head(3, len(b)) + b
    if isinstance(x, (tuple, list)):
        return cbor_head(4, len(x)) + b''.join(cbor(v) for v in x)
    raise TypeError(f'no canonical CBOR here for {type(x).__name__}')


ALGOS = {
    'sha256': lambda x: hashlib.sha256(pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL)).digest(),
    'sha256_cbor': lambda x: hashlib.sha256(cbor(x)).digest(),
}


def wire(digest):
    return str(int.from_bytes(digest, 'big') & (2**64 - 1))


def main():
    assert pickle.HIGHEST_PROTOCOL == 5, 'vLLM runs on Python >= 3.8, where the highest pickle protocol is 5'
    seed = '0'
    tokens = list(range(1, 33))
    out = {
        'source': 'scripts/gen-hash-vectors.py (vLLM vllm/utils/hashing.py + vllm/v1/core/kv_cache_utils.py)',
        'pythonHashSeed': seed,
        'blockSize': 16,
        'tokens': '1..32 (block 1 = 1..16, block 2 = 17..32)',
        'algorithms': {},
    }
    for name, fn in ALGOS.items():
        none_hash = fn(seed)
        h1 = fn((none_hash, tuple(tokens[0:16]), None))
        h2 = fn((h1, tuple(tokens[16:32]), None))
        h1_lora = fn((none_hash, tuple(tokens[0:16]), ('my-lora',)))
        out['algorithms'][name] = {
            'noneHash': none_hash.hex(),
            'h1': h1.hex(), 'h1Wire': wire(h1),
            'h2': h2.hex(), 'h2Wire': wire(h2),
            'h1LoraWire': wire(h1_lora),
        }
    out['algorithms']['sha256_cbor']['block1Input'] = cbor((ALGOS['sha256_cbor'](seed), tuple(tokens[0:16]), None)).hex()
    out['algorithms']['sha256']['block1Input'] = pickle.dumps((ALGOS['sha256'](seed), tuple(tokens[0:16]), None), protocol=5).hex()
    with open(OUT, 'w', encoding='utf-8') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()
