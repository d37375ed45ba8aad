// Client for vLLM's replay ROUTER socket (vllm-kv-events.md §4): a DEALER sends
// ["", start_seq(8 bytes BE)] and receives one message per buffered batch, oldest first,
// then an end marker. Both reply layouts are accepted: ["", seq, payload] (before vllm
// PR #45177) and ["", topic, seq, payload] (after); the end is seq ff x8 or an empty payload.
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
}

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
  const sock = new Dealer({ linger: 0, receiveTimeout: idle, sendTimeout: idle, maxMessageSize: opts.maxMessageBytes ?? 1 << 20, receiveHighWaterMark: 1000 });
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
