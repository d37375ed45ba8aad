// N simulated vLLM engines on the virtual clock, without HTTP or ZeroMQ: each is the engine a
// `kvrouter sim` pod runs (src/sim, vLLM's scheduling and block-pool rules unchanged), built
// from the same SimSpec the real-time bench uses. Every engine step's KV events are encoded by
// the simulator's vLLM encoder into the exact multipart message a pod publishes
// ([topic, 8-byte seq, msgpack batch]) and handed to the router after `eventDelayMs`.
import type { Engine } from '../../sim/engine.js';
import { encodeEventBatch, type EventsFormat, type KvEvent } from '../../sim/events.js';
import { MsgpackWriter } from '../../sim/msgpack.js';
import { createSimEngine, llmdTopic } from '../../sim/pod.js';
import type { SimSpec } from '../harness.js';
import type { PodCounters } from '../prom.js';
import { simPodOptions } from '../sim-options.js';
import type { VirtualEventLoop } from './event-loop.js';

export interface VirtualPod {
  /** ip:port identity (endpoint address and KV-event topic pod), as a real pod would have. */
  readonly address: string;
  readonly topic: string;
  readonly engine: Engine;
  readonly format: EventsFormat;
  readonly maxModelLen: number;
  /** Next publisher sequence number. */
  seq: number;
  /** Finished requests (vllm:request_success_total). */
  finished: number;
}

export interface ClusterOptions {
  /** Model ms between an engine step's end and the router receiving its events. */
  eventDelayMs: number;
  /** Receives each published message at its delivery time; may return a promise to settle. */
  deliver(frames: Uint8Array[]): unknown;
  /** Accumulates wall ms spent encoding event batches. */
  profile?: { encodeMs: number; batches: number; bytes: number };
}

/** Addresses that parse like pod IPs: 10.0.x.y:8000. */
export function podAddress(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${(i & 255) + 1}:8000`;
}

export class VirtualCluster {
  readonly pods: VirtualPod[];

  constructor(
    private readonly loop: VirtualEventLoop,
    spec: SimSpec,
    private readonly o: ClusterOptions,
  ) {
    const writer = new MsgpackWriter();
    this.pods = simPodOptions(spec).map((opts, i) => {
      const { engine, format, maxModelLen } = createSimEngine(opts, loop.sim, 0);
      const address = podAddress(i);
      const pod: VirtualPod = { address, topic: llmdTopic(address, spec.model), engine, format, maxModelLen, seq: 0, finished: 0 };
      const topic = Buffer.from(pod.topic);
      engine.listener.onFinish = () => {
        pod.finished++;
      };
      engine.listener.onEvents = (events: KvEvent[]) => {
        const prof = this.o.profile;
        const t0 = prof ? performance.now() : 0;
        const payload = encodeEventBatch(loop.now() / 1000, events, 0, format, writer);
        const seq = Buffer.allocUnsafe(8);
        seq.writeBigUInt64BE(BigInt(pod.seq++));
        if (prof) {
          prof.encodeMs += performance.now() - t0;
          prof.batches++;
          prof.bytes += payload.length;
        }
        const frames = [topic, seq, payload];
        loop.at(loop.now() + this.o.eventDelayMs, () => this.o.deliver(frames), 'events');
      };
      return pod;
    });
  }

  /** The counters the real bench scrapes from each pod's /metrics. */
  counters(): PodCounters[] {
    return this.pods.map((p) => ({
      prefixQueries: p.engine.prefixQueries,
      prefixHits: p.engine.prefixHits,
      promptTokens: p.engine.promptTokensTotal,
      generationTokens: p.engine.generationTokensTotal,
      requests: p.finished,
      preemptions: p.engine.preemptionsTotal,
    }));
  }

  stop(): void {
    for (const p of this.pods) p.engine.stop();
  }
}
