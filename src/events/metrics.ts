// Per-pod KV-event counters. Pod labels are capped so a flood of bogus topics cannot blow up
// the registry: beyond `maxPods` distinct pods, counts go to pod="_other".
import { Counter, Gauge, type Registry } from 'prom-client';

export type ReplayOutcome = 'ok' | 'partial' | 'failed';

export class EventMetrics {
  readonly messages: Counter<'pod'>;
  readonly decodeErrors: Counter<'pod' | 'kind'>;
  readonly skippedEvents: Counter<'pod' | 'reason'>;
  readonly gaps: Counter<'pod'>;
  readonly missedBatches: Counter<'pod'>;
  readonly restarts: Counter<'pod'>;
  readonly replays: Counter<'pod' | 'outcome'>;
  readonly unknownParents: Counter<'pod' | 'outcome'>;
  readonly queueDepth: Gauge<'pod'>;
  readonly receivePauses: Counter;
  readonly receivePausedSeconds: Counter;
  readonly disconnects: Counter;
  private readonly pods = new Set<string>();
  /**
   * Per-message counts (messages, queue depth) as plain numbers per pod label, written into the
   * prom-client metrics whenever they are read (their collect hook): a labelled inc() hashes and
   * validates its labels on every call, three times per message.
   */
  private readonly unflushedMessages = new Map<string, number>();
  private readonly unflushedDepth = new Map<string, number>();

  /** Plain totals, for tests and logs (all pods). */
  readonly totals = { messages: 0, decodeErrors: 0, skippedEvents: 0, gaps: 0, missedBatches: 0, restarts: 0, replays: 0, replayFailures: 0, unknownParents: 0, recoveredParents: 0, receivePauses: 0, disconnects: 0 };

  constructor(registry: Registry, private readonly maxPods = 1000) {
    const r = [registry];
    this.messages = new Counter({ name: 'kvcache_events_messages_total', help: 'KV-event messages received', labelNames: ['pod'], registers: r, collect: () => this.flush() });
    this.decodeErrors = new Counter({ name: 'kvcache_events_decode_errors_total', help: 'Messages rejected (frames, seq, msgpack, batch envelope)', labelNames: ['pod', 'kind'], registers: r });
    this.skippedEvents = new Counter({ name: 'kvcache_events_skipped_events_total', help: 'Single events skipped inside otherwise valid batches', labelNames: ['pod', 'reason'], registers: r });
    this.gaps = new Counter({ name: 'kvcache_events_seq_gaps_total', help: 'Sequence gaps detected (seq > last + 1)', labelNames: ['pod'], registers: r });
    this.missedBatches = new Counter({ name: 'kvcache_events_missed_batches_total', help: 'Batches lost to gaps and not recovered by replay', labelNames: ['pod'], registers: r });
    this.restarts = new Counter({ name: 'kvcache_events_publisher_restarts_total', help: 'Publisher restarts detected (seq went back); the pod is cleared', labelNames: ['pod'], registers: r });
    this.replays = new Counter({ name: 'kvcache_events_replays_total', help: 'Replay requests to vLLM replay sockets', labelNames: ['pod', 'outcome'], registers: r });
    this.unknownParents = new Counter({ name: 'kvcache_events_unknown_parents_total', help: 'BlockStored events whose parent block was unknown', labelNames: ['pod', 'outcome'], registers: r });
    // While the receive loop waits, ZeroMQ queues per connection up to its high-water mark and
    // then the publishers drop: what a pod loses this way shows as seq gaps (replayed if it can be).
    this.receivePauses = new Counter({ name: 'kvcache_events_receive_pauses_total', help: 'Times the subscriber stopped reading its socket because the queued batches reached their byte bound', registers: r });
    this.receivePausedSeconds = new Counter({ name: 'kvcache_events_receive_paused_seconds_total', help: 'Time the subscriber spent not reading its socket (queued batches at their byte bound)', registers: r });
    this.disconnects = new Counter({ name: 'kvcache_events_disconnects_total', help: 'Publisher connections closed: a pod went away, or ZeroMQ dropped it for a frame over the size limit', registers: r });
    this.queueDepth = new Gauge({ name: 'kvcache_events_queue_depth', help: 'Batches waiting to be applied', labelNames: ['pod'], registers: r, collect: () => this.flush() });
  }

  /** One message received for `podLabel` (a label() result or "_unknown"). */
  countMessage(podLabel: string): void {
    this.unflushedMessages.set(podLabel, (this.unflushedMessages.get(podLabel) ?? 0) + 1);
  }

  /** A batch queued (+1) or done (-1) for `podLabel`. */
  queued(podLabel: string, delta: 1 | -1): void {
    this.unflushedDepth.set(podLabel, (this.unflushedDepth.get(podLabel) ?? 0) + delta);
  }

  /** Writes the per-message counts into prom-client (each label seen appears, at 0 if it nets to 0). */
  flush(): void {
    for (const [pod, n] of this.unflushedMessages) this.messages.inc({ pod }, n);
    this.unflushedMessages.clear();
    for (const [pod, d] of this.unflushedDepth) this.queueDepth.inc({ pod }, d);
    this.unflushedDepth.clear();
  }

  label(pod: string): string {
    if (this.pods.has(pod)) return pod;
    if (this.pods.size >= this.maxPods) return '_other';
    this.pods.add(pod);
    return pod;
  }
}
