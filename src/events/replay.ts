// Client for vLLM's replay ROUTER socket (vllm-kv-events.md §4): a DEALER sends
// ["", start_seq(8 bytes BE)] and receives one message per buffered batch, oldest first,
// then an end marker. Both reply layouts are accepted: ["", seq, payload] (before vllm
// PR #45177) and ["", topic, seq, payload] (after); the end is seq ff x8 or an empty payload.
// The publisher sends its whole reply at once through a ROUTER, which drops what goes beyond its
// send high-water mark (ZeroMQ's default 1000 messages): a long reply can arrive with holes or
// without its end marker, so fetchReplayRange() asks again from the first missing seq.
import { Dealer } from 'zeromq';

export interface ReplayedBatch {
  seq: number;
  payload: Uint8Array;
  topic?: string;
}

export interface ReplayOptions {
  /** Overall deadline for one replay. */
  timeoutMs?: number;
  /** Give up when no message arrives for this long. */
  idleTimeoutMs?: number;
  /** Stop after this many batches (vLLM keeps at most buffer_steps = 10,000). */
  maxBatches?: number;
  /** Largest frame accepted (ZMQ_MAXMSGSIZE). Default 1 MiB, as the live SUB socket. */
  maxMessageBytes?: number;
  /** Stop once the batches held add up to this many payload bytes. Default 256 MiB. */
  maxBytes?: number;
  /**
   * When no message arrives for idleTimeoutMs after some batches did, return those (the end
   * marker may have been dropped) instead of failing. Default false.
   */
  partialOnIdle?: boolean;
}

/** Requests one replay may take to fill the holes of a reply (fetchReplayRange). */
export const REPLAY_ROUNDS = 4;

export class ReplayError extends Error {
  override name = 'ReplayError';
}

function isEnd(seq: Uint8Array): boolean {
  if (seq.length !== 8) return false;
  for (const b of seq) if (b !== 0xff) return false;
  return true;
}

export function readSeq(b: Uint8Array): number {
  if (b.length !== 8) throw new ReplayError(`sequence frame has ${b.length} bytes, expected 8`);
  const v = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0);
  return Number(v);
}

/** Fetches every batch with seq >= fromSeq that the publisher still holds. */
export async function fetchReplay(endpoint: string, fromSeq: number, opts: ReplayOptions = {}): Promise<ReplayedBatch[]> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const idle = opts.idleTimeoutMs ?? 2_000;
  const max = opts.maxBatches ?? 20_000;
  const maxBytes = opts.maxBytes ?? 256 << 20;
  const sock = new Dealer({ linger: 0, receiveTimeout: idle, sendTimeout: idle, maxMessageSize: opts.maxMessageBytes ?? 1 << 20, receiveHighWaterMark: 20_000 });
  let bytes = 0;
  const deadline = Date.now() + timeoutMs;
  const out: ReplayedBatch[] = [];
  try {
    sock.connect(endpoint);
    const seq = new Uint8Array(8);
    new DataView(seq.buffer).setBigUint64(0, BigInt(fromSeq));
    await sock.send([new Uint8Array(0), seq]);
    for (;;) {
      if (Date.now() > deadline) throw new ReplayError(`replay from ${endpoint} exceeded ${timeoutMs} ms`);
      let frames: Uint8Array[];
      try {
        frames = await sock.receive();
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'EAGAIN' && opts.partialOnIdle && out.length > 0) return out;
        if (code === 'EAGAIN') throw new ReplayError(`replay from ${endpoint}: no reply within ${idle} ms`);
        throw err;
      }
      if (frames.length > 0 && frames[0].length === 0) frames = frames.slice(1);
      let topic: string | undefined;
      let seqF: Uint8Array;
      let payload: Uint8Array;
      if (frames.length === 2) [seqF, payload] = frames;
      else if (frames.length === 3) {
        topic = Buffer.from(frames[0]).toString('utf8');
        [, seqF, payload] = frames;
      } else throw new ReplayError(`replay message with ${frames.length} frames after the delimiter`);
      if (isEnd(seqF) || payload.length === 0) return out;
      out.push({ seq: readSeq(seqF), payload, topic });
      bytes += payload.length;
      if (out.length >= max || bytes >= maxBytes) return out;
    }
  } finally {
    sock.close();
  }
}

/**
 * The batches [fromSeq, untilSeq) the publisher still holds, asking again (up to `rounds`
 * requests, within one deadline and one byte bound) from the first seq missing between what
 * arrived and untilSeq while a request brings new batches. A reply's holes are what the
 * publisher's ROUTER dropped; a buffer that starts after fromSeq is not a hole (those batches
 * are gone). Sorted by seq, no duplicates; a batch beyond untilSeq is kept (callers filter).
 */
export async function fetchReplayRange(endpoint: string, fromSeq: number, untilSeq: number, opts: ReplayOptions & { accept?: (b: ReplayedBatch) => boolean } = {}, rounds = REPLAY_ROUNDS): Promise<ReplayedBatch[]> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const maxBytes = opts.maxBytes ?? 256 << 20;
  const deadline = Date.now() + timeoutMs;
  const bySeq = new Map<number, ReplayedBatch>();
  let bytes = 0;
  let ask = fromSeq;
  for (let round = 0; round < rounds; round++) {
    const left = deadline - Date.now();
    if (left <= 0 || bytes >= maxBytes) break;
    // the first request fails as before when nothing comes; later ones keep what they got
    const got = await fetchReplay(endpoint, ask, { ...opts, timeoutMs: left, maxBytes: maxBytes - bytes, partialOnIdle: true });
    let added = 0;
    for (const b of got) {
      // (a batch `accept` refuses, e.g. another topic's, is no batch of this range)
      if (b.seq < fromSeq || bySeq.has(b.seq) || (opts.accept && !opts.accept(b))) continue;
      bySeq.set(b.seq, b);
      bytes += b.payload.length;
      added++;
    }
    if (added === 0) break;
    const hole = firstMissing(bySeq, untilSeq);
    if (hole === null) break;
    ask = hole;
  }
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** The first seq after the lowest one held that is missing below `until`; null when none. */
function firstMissing(bySeq: Map<number, ReplayedBatch>, until: number): number | null {
  // over the seqs held, never over the range (a forged `until` can be huge)
  const seqs = [...bySeq.keys()].sort((a, b) => a - b);
  for (let i = 1; i < seqs.length; i++) if (seqs[i] !== seqs[i - 1] + 1) return seqs[i - 1] + 1;
  const next = seqs[seqs.length - 1] + 1;
  return next < until ? next : null;
}
