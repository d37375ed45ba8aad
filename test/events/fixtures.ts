// Byte examples A-D: vLLM EventBatches as msgspec encodes them (vllm-project/vllm vllm/distributed/kv_events.py, v0.10 to v0.24+ layouts).
// Quoted strings stand for their UTF-8 bytes.

export function hexBytes(spec: string): Uint8Array {
  const expanded = spec.replace(/"([^"]*)"/g, (_m, s: string) => Buffer.from(s, 'utf8').toString('hex').replace(/(..)/g, '$1 '));
  const parts = expanded.replace(/;[^\n]*/g, ' ').trim().split(/\s+/).filter(Boolean);
  return Uint8Array.from(parts.map((h) => {
    const v = parseInt(h, 16);
    if (!/^[0-9a-f]{2}$/i.test(h) || Number.isNaN(v)) throw new Error(`bad hex byte ${h}`);
    return v;
  }));
}

/** A. 7-element legacy, dp rank 1: BlockStored([123], nil, [1,2], 2, nil, "GPU") then BlockRemoved([7], "GPU"). */
export const FIXTURE_A = hexBytes(`
93 cb 41 d9 54 fc 40 20 00 00        ; array(3), ts = 1700000000.5
92                                   ; events: array(2)
97 ab 42 6c 6f 63 6b 53 74 6f 72 65 64 91 7b c0 92 01 02 02 c0 a3 47 50 55
93 ac 42 6c 6f 63 6b 52 65 6d 6f 76 65 64 91 07 a3 47 50 55
01                                   ; data_parallel_rank
`);

/** B. 12-element legacy, hash 0x0123456789abcdef, tokens 1..16, block size 16, rank 0. */
export const FIXTURE_B = hexBytes(`
93 cb 41 d9 54 fc 40 20 00 00 91 9c ab 42 6c 6f 63 6b 53 74 6f 72 65 64 91 cf 01 23 45 67 89 ab cd ef c0
dc 00 10 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 10 c0 a3 47 50 55 c0 c0 c0 c0 c0 00
`);

/** C. Map form of B (extra_keys [nil], group_idx 0, kind full_attention). */
export const FIXTURE_C = hexBytes(`
93 cb 41 d9 54 fc 40 20 00 00 91 8b
a4 "type" ab "BlockStored"  ac "block_hashes" 91 cf 01 23 45 67 89 ab cd ef
b1 "parent_block_hash" c0   a9 "token_ids" dc 00 10 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10   aa "block_size" 10
a7 "lora_id" c0   a6 "medium" a3 "GPU"   a9 "lora_name" c0   aa "extra_keys" 91 c0
a9 "group_idx" 00   b2 "kv_cache_spec_kind" ae "full_attention"
00
`);

/** D. Batch encoded as a map, carrying a map BlockRemoved (2^64-1) and a map AllBlocksCleared. */
export const FIXTURE_D = hexBytes(`
83 a2 "ts" cb 41 d9 54 fc 40 20 00 00
a6 "events" 92
  84 a4 "type" ac "BlockRemoved" ac "block_hashes" 91 cf ff ff ff ff ff ff ff ff a6 "medium" a3 "GPU" a9 "group_idx" 00
  81 a4 "type" b0 "AllBlocksCleared"
b2 "data_parallel_rank" 00
`);

/** Legacy 4-element BlockRemoved (hash 2^64-1) and a v0.9 negative hash (-5), in a v0.9 two-element batch. */
export const FIXTURE_LEGACY_REMOVED = hexBytes(`
92 cb 41 d9 54 fc 40 20 00 00 92
94 ac "BlockRemoved" 91 cf ff ff ff ff ff ff ff ff a3 "GPU" c0
92 ac "BlockRemoved" 91 fb
`);
