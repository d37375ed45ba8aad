// KV-cache events as vLLM's block pool produces them, and their msgpack encoding for every
// wire schema vLLM has shipped (vllm-project/vllm vllm/distributed/kv_events.py, v0.9.0 to v0.24+). Bytes match msgspec.
import { MsgpackWriter } from './msgpack.js';
import type { ExtraKey } from './hashing.js';

export interface BlockStoredEvent {
  type: 'BlockStored';
  /** Digests of the newly stored blocks (the wire carries their low 64 bits or raw bytes). */
  blockHashes: Buffer[];
  parentBlockHash: Buffer | null;
  tokenIds: number[];
  /** Writes tokenIds as a msgpack array without copying them first (the engine's queued events). */
  writeTokenIds?(w: MsgpackWriter): void;
  blockSize: number;
  loraId: number | null;
  medium: string | null;
  loraName: string | null;
  /** One entry per hash (the extra keys that went into it) or null for the whole field. */
  extraKeys: (readonly ExtraKey[] | null)[] | null;
  groupIdx: number | null;
  kvCacheSpecKind: string | null;
  kvCacheSpecSlidingWindow: number | null;
}

export interface BlockRemovedEvent {
  type: 'BlockRemoved';
  blockHashes: Buffer[];
  medium: string | null;
  groupIdx: number | null;
}

export interface AllBlocksClearedEvent {
  type: 'AllBlocksCleared';
}

export type KvEvent = BlockStoredEvent | BlockRemovedEvent | AllBlocksClearedEvent;

/**
 * Wire schema by the vLLM release that introduced it. Array lengths of BlockStored/BlockRemoved:
 * v0.9.0 6/2 and a 2-element batch; v0.9.1 6/2 (+dp rank); v0.10 7/3 (medium); v0.12 8/3
 * (lora_name); v0.17 9/3 (extra_keys); v0.20 10/4 (group_idx); v0.23 12/4 (kv_cache_spec_*);
 * v0.24+ map events. The exact releases of the 10- and 12-element steps are unconfirmed.
 */
export type EventsVersion = 'v0.9.0' | 'v0.9.1' | 'v0.10' | 'v0.12' | 'v0.17' | 'v0.20' | 'v0.23' | 'v0.24';
export const EVENTS_VERSIONS: readonly EventsVersion[] = ['v0.9.0', 'v0.9.1', 'v0.10', 'v0.12', 'v0.17', 'v0.20', 'v0.23', 'v0.24'];

export interface EventsFormat {
  version: EventsVersion;
  /** VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES: uint64 (true, default) or the raw digest as bin. */
  intHashes: boolean;
  /**
   * Int hashes as signed int64 (v0.9's builtin hash(): negative values on the wire) instead of
   * uint64. Only with intHashes.
   */
  signedHashes?: boolean;
  /** Encode the batch as a map {ts, events, data_parallel_rank} (one 2026 main-branch revision). */
  batchAsMap?: boolean;
}

export const DEFAULT_EVENTS_FORMAT: EventsFormat = { version: 'v0.24', intHashes: true };

const STORED_LEN: Record<EventsVersion, number> = { 'v0.9.0': 6, 'v0.9.1': 6, 'v0.10': 7, 'v0.12': 8, 'v0.17': 9, 'v0.20': 10, 'v0.23': 12, 'v0.24': 12 };
const REMOVED_LEN: Record<EventsVersion, number> = { 'v0.9.0': 2, 'v0.9.1': 2, 'v0.10': 3, 'v0.12': 3, 'v0.17': 3, 'v0.20': 4, 'v0.23': 4, 'v0.24': 4 };

/** Which optional fields a version declares (the engine fills them as that vLLM would). */
export function versionFields(version: EventsVersion): { medium: boolean; loraName: boolean; extraKeys: boolean; groupIdx: boolean; specKind: boolean } {
  const n = STORED_LEN[version];
  return { medium: n >= 7, loraName: n >= 8, extraKeys: n >= 9, groupIdx: n >= 10, specKind: n >= 12 };
}

export function parseEventsVersion(v: string): EventsVersion {
  const norm = v.startsWith('v') ? v : `v${v}`;
  if ((EVENTS_VERSIONS as readonly string[]).includes(norm)) return norm as EventsVersion;
  throw new Error(`unknown events version "${v}" (one of ${EVENTS_VERSIONS.join(', ')})`);
}

function writeHash(w: MsgpackWriter, h: Buffer, f: EventsFormat): void {
  if (!f.intHashes) w.bin(h);
  else if (f.signedHashes) w.int64(h.readBigInt64BE(h.length - 8));
  else w.uint64BE(h, h.length - 8);
}

function writeHashes(w: MsgpackWriter, hs: Buffer[], f: EventsFormat): void {
  w.arrayHeader(hs.length);
  for (const h of hs) writeHash(w, h, f);
}

function writeNullableStr(w: MsgpackWriter, s: string | null): void {
  if (s === null) w.nil();
  else w.str(s);
}

function writeNullableInt(w: MsgpackWriter, v: number | null): void {
  if (v === null) w.nil();
  else w.int(v);
}

function writeExtraKeys(w: MsgpackWriter, ek: (readonly ExtraKey[] | null)[] | null): void {
  if (ek === null) {
    w.nil();
    return;
  }
  w.arrayHeader(ek.length);
  for (const t of ek) {
    if (t === null) w.nil();
    else {
      w.arrayHeader(t.length);
      for (const x of t) {
        if (typeof x === 'string') w.str(x);
        else w.int(x);
      }
    }
  }
}

function writeStoredArray(w: MsgpackWriter, e: BlockStoredEvent, f: EventsFormat): void {
  const n = STORED_LEN[f.version];
  w.arrayHeader(n);
  w.str('BlockStored');
  writeHashes(w, e.blockHashes, f);
  if (e.parentBlockHash === null) w.nil();
  else writeHash(w, e.parentBlockHash, f);
  if (e.writeTokenIds !== undefined) e.writeTokenIds(w);
  else w.intArray(e.tokenIds);
  w.int(e.blockSize);
  writeNullableInt(w, e.loraId);
  if (n >= 7) writeNullableStr(w, e.medium);
  if (n >= 8) writeNullableStr(w, e.loraName);
  if (n >= 9) writeExtraKeys(w, e.extraKeys);
  if (n >= 10) writeNullableInt(w, e.groupIdx);
  if (n >= 12) {
    writeNullableStr(w, e.kvCacheSpecKind);
    writeNullableInt(w, e.kvCacheSpecSlidingWindow);
  }
}

function writeStoredMap(w: MsgpackWriter, e: BlockStoredEvent, f: EventsFormat): void {
  // omit_defaults: only the fields declared with a None default are dropped when None.
  const n = 8 + (e.extraKeys !== null ? 1 : 0) + (e.groupIdx !== null ? 1 : 0) + (e.kvCacheSpecKind !== null ? 1 : 0) + (e.kvCacheSpecSlidingWindow !== null ? 1 : 0);
  w.mapHeader(n);
  w.str('type');
  w.str('BlockStored');
  w.str('block_hashes');
  writeHashes(w, e.blockHashes, f);
  w.str('parent_block_hash');
  if (e.parentBlockHash === null) w.nil();
  else writeHash(w, e.parentBlockHash, f);
  w.str('token_ids');
  if (e.writeTokenIds !== undefined) e.writeTokenIds(w);
  else w.intArray(e.tokenIds);
  w.str('block_size');
  w.int(e.blockSize);
  w.str('lora_id');
  writeNullableInt(w, e.loraId);
  w.str('medium');
  writeNullableStr(w, e.medium);
  w.str('lora_name');
  writeNullableStr(w, e.loraName);
  if (e.extraKeys !== null) {
    w.str('extra_keys');
    writeExtraKeys(w, e.extraKeys);
  }
  if (e.groupIdx !== null) {
    w.str('group_idx');
    w.int(e.groupIdx);
  }
  if (e.kvCacheSpecKind !== null) {
    w.str('kv_cache_spec_kind');
    w.str(e.kvCacheSpecKind);
  }
  if (e.kvCacheSpecSlidingWindow !== null) {
    w.str('kv_cache_spec_sliding_window');
    w.int(e.kvCacheSpecSlidingWindow);
  }
}

function writeRemoved(w: MsgpackWriter, e: BlockRemovedEvent, f: EventsFormat): void {
  if (f.version === 'v0.24') {
    const n = 3 + (e.groupIdx !== null ? 1 : 0);
    w.mapHeader(n);
    w.str('type');
    w.str('BlockRemoved');
    w.str('block_hashes');
    writeHashes(w, e.blockHashes, f);
    w.str('medium');
    writeNullableStr(w, e.medium);
    if (e.groupIdx !== null) {
      w.str('group_idx');
      w.int(e.groupIdx);
    }
    return;
  }
  const n = REMOVED_LEN[f.version];
  w.arrayHeader(n);
  w.str('BlockRemoved');
  writeHashes(w, e.blockHashes, f);
  if (n >= 3) writeNullableStr(w, e.medium);
  if (n >= 4) writeNullableInt(w, e.groupIdx);
}

function writeEvent(w: MsgpackWriter, e: KvEvent, f: EventsFormat): void {
  switch (e.type) {
    case 'BlockStored':
      if (f.version === 'v0.24') writeStoredMap(w, e, f);
      else writeStoredArray(w, e, f);
      return;
    case 'BlockRemoved':
      writeRemoved(w, e, f);
      return;
    case 'AllBlocksCleared':
      if (f.version === 'v0.24') {
        w.mapHeader(1);
        w.str('type');
      } else w.arrayHeader(1);
      w.str('AllBlocksCleared');
      return;
  }
}

/** Encodes an EventBatch `[ts, events, data_parallel_rank]` (v0.9.0: `[ts, events]`). */
export function encodeEventBatch(ts: number, events: readonly KvEvent[], rank: number | null, format: EventsFormat, w = new MsgpackWriter()): Buffer {
  encodeEventBatchInto(w, ts, events, rank, format);
  return w.finish();
}

/** encodeEventBatch's bytes appended to `w` (the caller takes them from w.view()). */
export function encodeEventBatchInto(w: MsgpackWriter, ts: number, events: readonly KvEvent[], rank: number | null, format: EventsFormat): void {
  const withRank = format.version !== 'v0.9.0';
  if (format.batchAsMap) {
    w.mapHeader(withRank ? 3 : 2);
    w.str('ts');
  } else w.arrayHeader(withRank ? 3 : 2);
  w.float64(ts);
  if (format.batchAsMap) w.str('events');
  w.arrayHeader(events.length);
  for (const e of events) writeEvent(w, e, format);
  if (withRank) {
    if (format.batchAsMap) w.str('data_parallel_rank');
    writeNullableInt(w, rank);
  }
}
