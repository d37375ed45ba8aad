// N simulated vLLM engines on the virtual clock, without HTTP or ZeroMQ: each is the engine a
// `kvrouter sim` pod runs (src/sim, vLLM's scheduling and block-pool rules unchanged), built
// from the same SimSpec the real-time bench uses. Every engine step's KV events are encoded by
// the simulator's vLLM encoder into the exact multipart message a pod publishes
// ([topic, 8-byte seq, msgpack batch]) and handed to the router after `eventDelayMs`.
import type { Engine } from '../../sim/engine.js';
import { encodeEventBatchInto, type EventsFormat, type KvEvent } from '../../sim/events.js';
import { MsgpackWriter } from '../../sim/msgpack.js';
import type { SimClock } from '../../sim/clock.js';
import { createSimEngine, llmdTopic } from '../../sim/pod.js';
import type { SimSpec } from '../harness.js';
import type { PodCounters } from '../prom.js';
import { simPodOptions } from '../sim-options.js';
import type { VirtualEventLoop } from './event-loop.js';

export interface VirtualPod {
  /** ip:port identity (endpoint address and KV-event topic pod), as a real pod would have. */
  readonly address: string;
  readonly topic: string;
  /** Replaced when the pod restarts (scenarios): a new engine with an empty cache. */
  engine: Engine;
  /** False once the pod left (scenarios): requests sent to it fail as refused connections. */
  alive: boolean;
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
  /**
   * Model ms every engine timer fires late (default 0). The real-clock harness's simulator
   * timers fire late on a loaded machine (its measured mean lag, `simLagMs`) and a late step
   * runs late; cross-validation replays that measured lag here. Not a production mechanism.
   */
  engineTimerLagMs?: number;
}

/**
 * Copies of encoded event batches, carved from 256 KiB slabs: a batch (~1 KB at 64 pods) lives
 * from its engine step until the router decoded it, and Buffer.from's copy into Node's 8 KiB pool
 * made a new pool ArrayBuffer every few batches, a few % of a 64-pod run's CPU. A slab is freed
 * once every batch cut from it was decoded and dropped; larger batches get a buffer of their own.
 */
class PayloadSlab {
  private static readonly SIZE = 1 << 18;
  private slab = Buffer.allocUnsafeSlow(PayloadSlab.SIZE);
  private at = 0;

  copy(src: Uint8Array): Buffer {
    const n = src.length;
    if (n > PayloadSlab.SIZE >> 4) return Buffer.from(src);
    if (this.at + n > PayloadSlab.SIZE) {
      this.slab = Buffer.allocUnsafeSlow(PayloadSlab.SIZE);
      this.at = 0;
    }
    const at = this.at;
    this.slab.set(src, at);
    this.at = (at + n + 7) & ~7;
    return this.slab.subarray(at, at + n);
  }
}

/** Addresses that parse like pod IPs: 10.0.x.y:8000. */
export function podAddress(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${(i & 255) + 1}:8000`;
}

export class VirtualCluster {
  readonly pods: VirtualPod[];
  private readonly specs: ReturnType<typeof simPodOptions>;
  private readonly writer = new MsgpackWriter();
  private readonly payloads = new PayloadSlab();
  /** The engines' clock: the loop's, or the loop's with every timer `engineTimerLagMs` late. */
  private readonly engineClock: SimClock;

  constructor(
    private readonly loop: VirtualEventLoop,
    spec: SimSpec,
    private readonly o: ClusterOptions,
  ) {
    this.specs = simPodOptions(spec);
    const lag = (o.engineTimerLagMs ?? 0) / 1000;
    this.engineClock = lag > 0 ? { now: loop.sim.now, at: (at, fn) => loop.sim.at(at + lag, fn), cancel: loop.sim.cancel } : loop.sim;
    this.pods = this.specs.map((opts, i) => {
      const { engine, format, maxModelLen } = createSimEngine(opts, this.engineClock, 0);
      const address = podAddress(i);
      const pod: VirtualPod = { address, topic: llmdTopic(address, spec.model), engine, format, maxModelLen, seq: 0, finished: 0, alive: true };
      this.wire(pod);
      return pod;
    });
  }

  /** Publishes the engine's KV events as the pod's ZeroMQ publisher would, and counts finishes. */
  private wire(pod: VirtualPod): void {
    const loop = this.loop;
    const topic = Buffer.from(pod.topic);
    const engine = pod.engine;
    engine.listener.onFinish = () => {
      pod.finished++;
    };
    engine.listener.onEvents = (events: KvEvent[]) => {
      const prof = this.o.profile;
      const t0 = prof ? performance.now() : 0;
      // Encoded into the shared writer's buffer (reset, not copied), then copied once into a slab.
      const w = this.writer;
      w.reset();
      encodeEventBatchInto(w, loop.now() / 1000, events, 0, pod.format);
      const payload = this.payloads.copy(w.view());
      const seq = Buffer.allocUnsafe(8);
      seq.writeUInt32BE(Math.floor(pod.seq / 2 ** 32), 0);
      seq.writeUInt32BE(pod.seq++ >>> 0, 4);
      if (prof) {
        prof.encodeMs += performance.now() - t0;
        prof.batches++;
        prof.bytes += payload.length;
      }
      const frames = [topic, seq, payload];
      loop.at(loop.now() + this.o.eventDelayMs, () => this.o.deliver(frames), 'events');
    };
  }

  /**
   * Scenarios: pod i stops (its in-flight requests end aborted) and comes back at once with a new
   * engine, an empty cache, counters from zero and a new publisher (sequence from 0), as a
   * restarted `kvrouter sim` pod does. Nothing tells the router its cache is gone.
   */
  restart(i: number): void {
    const pod = this.pods[i];
    pod.engine.stop();
    pod.engine = createSimEngine(this.specs[i], this.engineClock, 0).engine;
    pod.seq = 0;
    pod.finished = 0;
    pod.alive = true;
    this.wire(pod);
  }

  /** Scenarios: pod i stops for good (in-flight requests end aborted; later ones are refused). */
  kill(i: number): void {
    const pod = this.pods[i];
    pod.alive = false;
    pod.engine.stop();
  }

  /** Scenarios: vLLM's POST /reset_prefix_cache?reset_running_requests=true on pod i. */
  reset(i: number): void {
    if (!this.pods[i].engine.resetPrefixCache(true)) throw new Error(`pod ${i}: reset_prefix_cache refused`);
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
