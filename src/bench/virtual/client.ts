// The load generator of the virtual runner, with inference-perf's semantics: each stage's
// arrivals keep their offsets from the stage start; a stage may be drained (every request it
// sent finished) before the next starts, after an optional interval; an optional concurrency cap
// queues due requests, and TTFT runs from the actual send; an optional timeout abandons a request
// (aborted at its engine, counted as an error). A multi-turn request is sent once its predecessor finished.
// Each request goes through the real Director (candidates, producers, Scheduler, PreRequest
// hooks, in-flight accounting), then to the chosen engine after the router overhead; response
// hooks run at the engine's first token and at its finish.
import type { EngineRequest } from '../../sim/engine.js';
import type { InferenceRequest } from '../../scheduler/types.js';
import type { RequestResult } from '../client.js';
import type { Stage } from '../load.js';
import type { Planned } from '../runner.js';
import type { VirtualPod } from './cluster.js';
import type { VirtualEventLoop } from './event-loop.js';
import type { PoolEndpoint, VirtualRouter } from './router.js';

export interface VirtualClientOptions {
  model: string;
  /** Model ms added before the request reaches its engine (tokenization, HTTP, proxy). */
  routerOverheadMs: number;
  drainStages: boolean;
  /** Client concurrency cap (inference-perf's max concurrency); Infinity: none. */
  maxInflight: number;
  /** Model ms between one stage's end and the next one's start (inference-perf's load.interval). */
  stageIntervalMs?: number;
  /** Model ms after its send at which a request is abandoned (aiohttp's total timeout); Infinity: never. */
  requestTimeoutMs?: number;
  /** Called at each stage's actual start (before its first arrival) and once at the end. */
  onStage(stage: number, atMs: number): void;
}

interface Flight {
  i: number;
  ep: PoolEndpoint;
  req: InferenceRequest;
}

export class VirtualClient {
  readonly results: RequestResult[];
  /** Actual start of each stage, model ms. */
  readonly stageStartMs: number[] = [];
  sent = 0;
  done = 0;
  inflight = 0;
  /** The last stage's schedule is over (no more arrivals will be scheduled). */
  lastStageEnded = false;
  private readonly byStage: number[][];
  private readonly outstanding: number[];
  private readonly stageEnded: boolean[];
  private readonly queue: number[] = [];
  private qHead = 0;
  private readonly waitingOn = new Map<number, number[]>();
  private readonly finished = new Set<number>();
  private readonly idToIndex: Map<number, number>;
  private readonly podByAddress: Map<string, VirtualPod>;
  private readonly nominalStart: number[] = [];
  /** Requests the client abandoned (timeout): their engine callbacks are ignored. */
  private readonly expired = new Set<number>();
  /** The engine-side request of each submitted request, to abort it on timeout. */
  private readonly atEngine = new Map<number, { pod: VirtualPod; er: EngineRequest; flight: Flight }>();

  constructor(
    private readonly loop: VirtualEventLoop,
    private readonly router: VirtualRouter,
    pods: VirtualPod[],
    private readonly planned: Planned[],
    private readonly stages: Stage[],
    private readonly o: VirtualClientOptions,
  ) {
    this.results = new Array<RequestResult>(planned.length);
    this.byStage = stages.map(() => []);
    planned.forEach((p, i) => this.byStage[p.stage].push(i));
    this.outstanding = this.byStage.map((l) => l.length);
    this.stageEnded = stages.map(() => false);
    this.idToIndex = new Map(planned.map((p, i) => [p.req.id, i]));
    this.podByAddress = new Map(pods.map((p) => [p.address, p]));
    let acc = 0;
    for (const s of stages) {
      this.nominalStart.push(acc);
      acc += s.duration;
    }
  }

  /** Everything sent has finished and no more will be sent. */
  get complete(): boolean {
    return this.lastStageEnded && this.done === this.planned.length;
  }

  start(): void {
    this.startStage(0, this.loop.now());
  }

  private startStage(s: number, atMs: number): void {
    this.stageStartMs[s] = atMs;
    this.o.onStage(s, atMs);
    const base = atMs - this.nominalStart[s] * 1000;
    for (const i of this.byStage[s]) this.loop.at(base + this.planned[i].t * 1000, () => this.arrive(i), 'client');
    this.loop.at(atMs + this.stages[s].duration * 1000, () => this.endStage(s), 'client');
  }

  private endStage(s: number): void {
    this.stageEnded[s] = true;
    if (this.o.drainStages && this.outstanding[s] > 0) return; // finishRequest starts the next stage
    this.next(s);
  }

  private next(s: number): void {
    const gap = this.o.stageIntervalMs ?? 0;
    if (s + 1 < this.stages.length) {
      if (gap > 0) {
        this.stageStartMs[s + 1] = NaN; // claimed: finishRequest must not start it again
        this.loop.at(this.loop.now() + gap, () => this.startStage(s + 1, this.loop.now()), 'client');
      } else this.startStage(s + 1, this.loop.now());
    }
    else if (!this.lastStageEnded) {
      this.lastStageEnded = true;
      this.o.onStage(this.stages.length, this.loop.now());
    }
  }

  /** Returns the decisions it started, for the loop to settle before time moves on. */
  private arrive(i: number): Promise<unknown> | undefined {
    const after = this.planned[i].req.after;
    if (after !== undefined && this.idToIndex.has(after) && !this.finished.has(after)) {
      const list = this.waitingOn.get(after) ?? [];
      list.push(i);
      this.waitingOn.set(after, list);
      return undefined;
    }
    this.queue.push(i);
    return this.pump();
  }

  private pump(): Promise<unknown> | undefined {
    let work: Promise<unknown>[] | undefined;
    while (this.qHead < this.queue.length && this.inflight < this.o.maxInflight) {
      const p = this.send(this.queue[this.qHead++]);
      (work ??= []).push(p);
    }
    if (this.qHead > 1024 && this.qHead * 2 > this.queue.length) {
      this.queue.splice(0, this.qHead);
      this.qHead = 0;
    }
    if (work === undefined) return undefined;
    return work.length === 1 ? work[0] : Promise.all(work);
  }

  private send(i: number): Promise<void> {
    const p = this.planned[i];
    const now = this.loop.now();
    const stageStart = this.stageStartMs[p.stage] - this.nominalStart[p.stage] * 1000;
    const res: RequestResult = {
      id: p.req.id, stage: p.stage, scheduledMs: stageStart + p.t * 1000, sentMs: now, ok: false, status: 0, shed: false,
      itlMs: [], promptTokens: p.req.prompt.length, outputTokens: 0,
    };
    this.results[i] = res;
    this.sent++;
    this.inflight++;
    const timeout = this.o.requestTimeoutMs ?? Infinity;
    if (Number.isFinite(timeout)) this.loop.at(now + timeout, () => this.expire(i, timeout), 'client');
    // The workload's prompt is already the router's Uint32Array of token ids (never mutated):
    // sent as is, as the production body parser hands the router packed token ids.
    const tokens = p.req.prompt;
    const body = { model: this.o.model, prompt: p.req.prompt, max_tokens: p.req.maxTokens, ignore_eos: true, stream: true };
    const req: InferenceRequest = {
      requestId: `bench-${p.req.id}`, model: this.o.model, targetModel: this.o.model, baseModel: this.o.model,
      api: 'completions', path: '/v1/completions', body, headers: { 'x-request-id': `bench-${p.req.id}` }, stream: true,
      prompt: p.req.prompt, subset: null, tokens, estimatedTokens: tokens.length, getTokens: () => Promise.resolve(tokens),
    };
    return this.router.director.schedule(req).then(
      (result) => {
        if (this.expired.has(i)) return;
        const ep = result.targets[0] as PoolEndpoint;
        res.endpoint = ep.address;
        this.router.director.requestSent(req, ep);
        this.loop.at(this.loop.now() + this.o.routerOverheadMs, () => this.submit({ i, ep, req }), 'client');
      },
      (err: unknown) => {
        if (this.expired.has(i)) return;
        const status = (err as { status?: number }).status ?? 500;
        res.status = status;
        res.shed = status === 429 || status === 503;
        res.error = `HTTP ${status}: ${(err as Error).message}`;
        this.finishRequest(i);
      },
    );
  }

  /**
   * The client gives up on a request (aiohttp raises TimeoutError): it is an error, left out of
   * TTFT and throughput even if tokens arrived, and the engine aborts it (vLLM aborts a request
   * whose client disconnected), freeing its KV blocks.
   */
  private expire(i: number, timeoutMs: number): void {
    const res = this.results[i];
    if (res.ok || res.error !== undefined || this.expired.has(i)) return;
    this.expired.add(i);
    res.error = `client timeout after ${timeoutMs / 1000} s (inference-perf: aiohttp total timeout)`;
    const at = this.atEngine.get(i);
    if (at !== undefined) {
      this.atEngine.delete(i);
      this.router.director.requestFinished(at.flight.req, at.flight.ep, { status: 0, error: res.error });
      at.pod.engine.abort(at.er);
    }
    this.finishRequest(i);
  }

  /** The request reaches its engine. */
  private submit(f: Flight): void {
    if (this.expired.has(f.i)) return;
    const p = this.planned[f.i];
    const res = this.results[f.i];
    const pod = this.podByAddress.get(f.ep.address);
    const director = this.router.director;
    const fail = (status: number, message: string) => {
      res.status = status;
      res.error = `HTTP ${status}: ${message}`;
      director.requestFinished(f.req, f.ep, { status, error: message });
      this.finishRequest(f.i);
    };
    if (pod === undefined) return fail(502, `no simulated pod at ${f.ep.address}`);
    if (!pod.alive) return fail(502, `connection refused by ${f.ep.address} (the pod left)`);
    const invalid = pod.engine.validate(p.req.prompt.length, p.req.maxTokens);
    if (invalid !== null) return fail(400, invalid);
    res.status = 200;
    const er = pod.engine.submit({
      promptTokens: p.req.prompt,
      maxTokens: p.req.maxTokens,
      onFirstToken: () => {
        if (this.expired.has(f.i)) return;
        res.ttftMs = this.loop.now() - res.sentMs;
        director.responseStarted(f.req, f.ep);
      },
      onFinish: (er: EngineRequest) => {
        if (this.expired.has(f.i)) return;
        this.atEngine.delete(f.i);
        const now = this.loop.now();
        if (er.finishReason !== 'length') return fail(500, `engine finished with ${er.finishReason}`);
        res.e2eMs = now - res.sentMs;
        res.outputTokens = er.outputCount;
        res.cachedTokens = er.cachedTokens;
        res.ok = true;
        director.requestFinished(f.req, f.ep, {
          status: 200, ttftMs: res.ttftMs, promptTokens: er.promptLen, completionTokens: er.outputCount, cachedTokens: er.cachedTokens,
        });
        this.finishRequest(f.i);
      },
    });
    if (Number.isFinite(this.o.requestTimeoutMs ?? Infinity)) this.atEngine.set(f.i, { pod, er, flight: f });
  }

  private finishRequest(i: number): void {
    this.inflight--;
    this.done++;
    const p = this.planned[i];
    this.finished.add(p.req.id);
    const s = p.stage;
    this.outstanding[s]--;
    const deps = this.waitingOn.get(p.req.id);
    if (deps !== undefined) {
      this.waitingOn.delete(p.req.id);
      // A follow-up turn is due no earlier than its own schedule (it is already past: it waited).
      for (const j of deps) this.loop.at(this.loop.now(), () => this.arrive(j), 'client');
    }
    if (this.qHead < this.queue.length) this.loop.at(this.loop.now(), () => this.pump(), 'client');
    if (this.o.drainStages && this.stageEnded[s] && this.outstanding[s] === 0 && this.stageStartMs[s + 1] === undefined) this.next(s);
  }

  /** Marks everything unfinished (drain timeout) and returns how many. */
  abandon(reason: string): number {
    let n = 0;
    for (let i = 0; i < this.planned.length; i++) {
      const r = this.results[i];
      if (r === undefined) {
        this.results[i] = {
          id: this.planned[i].req.id, stage: this.planned[i].stage, scheduledMs: NaN, sentMs: NaN, ok: false, status: 0, shed: false,
          error: `never sent: ${reason}`, itlMs: [], promptTokens: this.planned[i].req.prompt.length, outputTokens: 0,
        };
        n++;
      } else if (!r.ok && r.error === undefined) {
        r.error = `unfinished: ${reason}`;
        n++;
      }
    }
    return n;
  }
}
