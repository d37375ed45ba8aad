// Scenarios where what the router knows matters: pods restarting with an empty cache, joining,
// leaving, cache resets, heterogeneous pods, eviction pressure. A scenario is data (events at
// model times, per-pod step-cost multipliers, a KV sizing rule) that any preset can take and
// either runner applies: the real-clock one with `startScenarioReal` below.
import { request } from 'undici';
import type { PodsHandle, RouterHandle, SimSpec } from './harness.js';
import type { Stage } from './load.js';
import { PROFILES } from '../sim/timing.js';

export type ScenarioEventKind = 'restart' | 'leave' | 'join' | 'reset';

export interface ScenarioEvent {
  kind: ScenarioEventKind;
  /** Pod index; 'all' only for reset. */
  pod: number | 'all';
  /** Model seconds from the start of the run; unset: `fraction` of the measured span after warm-up. */
  at?: number;
  fraction: number;
}

export interface Scenario {
  /** The named scenarios it was built from, as given (e.g. `restart@120:pod=1`). */
  names: string[];
  description: string[];
  events: ScenarioEvent[];
  /** Pods outside the router's pool at the start; each enters with its `join` event. */
  lateJoiners: number[];
  /** Per-pod multiplier on every step cost (length = pods); unset: all pods alike. */
  podTimingMultipliers?: number[];
  /** Size each pod's KV so the workload's distinct prompt blocks are this fraction of the cluster's. */
  residentFraction?: number;
}

export const SCENARIO_NAMES = ['restart', 'join', 'leave', 'reset', 'hetero', 'pressure'] as const;

export const SCENARIO_HELP = [
  'restart[@T][:pod=I]  pod I (0) restarts with an empty cache at model time T (default: 40 % into',
  '                     the measured stages); the router keeps it in its pool',
  'join[@T][:pod=I]     pod I (the last) starts outside the router\'s pool and joins at T',
  'leave[@T][:pod=I]    pod I (the last) is removed from the pool and stopped at T',
  'reset[@T][:pod=I]    POST /reset_prefix_cache (running requests preempted) on pod I (all)',
  'hetero[:x=X][:every=K]  pods 1, 1+K, 1+2K, ... take X (2) times as long per step (K = 2: the',
  '                     odd-numbered pods; K = 3: a third of them)',
  'pressure[:f=F]       KV per pod sized so the distinct prompt blocks are F (1.5) x cluster KV',
].map((l) => `    ${l}`).join('\n');

function num(name: string, key: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new Error(`--scenario ${name}: ${key} must be a number >= ${min} (got "${v}")`);
  return n;
}

/** Parses `--scenario a,b@T:pod=1,...` for a run of `pods` pods. */
export function parseScenario(spec: string, pods: number): Scenario {
  const sc: Scenario = { names: [], description: [], events: [], lateJoiners: [] };
  for (const item of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [head, ...kvs] = item.split(':');
    const [name, atText] = head.split('@');
    const params = new Map<string, string>();
    for (const kv of kvs) {
      const [k, v] = kv.split('=');
      if (!k || v === undefined) throw new Error(`--scenario ${name}: expected key=value after ":" (got "${kv}")`);
      params.set(k, v);
    }
    const at = num(name, '@time', atText, 0);
    const podParam = params.get('pod');
    const podOf = (dflt: number | 'all'): number | 'all' => {
      if (podParam === undefined) return dflt;
      if (podParam === 'all' && name === 'reset') return 'all';
      const i = Number(podParam);
      if (!Number.isInteger(i) || i < 0 || i >= pods) throw new Error(`--scenario ${name}: pod must be 0..${pods - 1} (got "${podParam}")`);
      return i;
    };
    const known = new Set(name === 'hetero' ? ['x', 'every'] : name === 'pressure' ? ['f'] : ['pod']);
    for (const k of params.keys()) if (!known.has(k)) throw new Error(`--scenario ${name}: unknown parameter "${k}"`);
    const when = at !== undefined ? `at ${at} s` : 'at 40 % of the measured stages';
    switch (name) {
      case 'restart':
      case 'leave':
      case 'join':
      case 'reset': {
        if ((name === 'leave' || name === 'join') && pods < 2) throw new Error(`--scenario ${name} needs at least 2 pods`);
        const pod = podOf(name === 'restart' ? 0 : name === 'reset' ? 'all' : pods - 1);
        sc.events.push({ kind: name, pod, at, fraction: 0.4 });
        if (name === 'join') sc.lateJoiners.push(pod as number);
        const who = pod === 'all' ? 'every pod' : `pod ${pod}`;
        sc.description.push(
          name === 'restart' ? `${who} restarts with an empty cache ${when}`
            : name === 'join' ? `${who} joins the pool ${when} (empty cache)`
              : name === 'leave' ? `${who} leaves the pool ${when} (its in-flight requests fail)`
                : `${who} resets its prefix cache ${when}`,
        );
        break;
      }
      case 'hetero': {
        const x = num(name, 'x', params.get('x'), 0.01) ?? 2;
        const every = num(name, 'every', params.get('every'), 2) ?? 2;
        if (!Number.isInteger(every)) throw new Error(`--scenario hetero: every must be an integer >= 2 (got "${params.get('every')}")`);
        sc.podTimingMultipliers = Array.from({ length: pods }, (_v, i) => (i % every === 1 ? x : 1));
        const slow = sc.podTimingMultipliers.filter((m) => m !== 1).length;
        sc.description.push(
          every === 2
            ? `heterogeneous pods: odd-numbered pods take ${x}x as long per step`
            : `heterogeneous pods: ${slow} of ${pods} pods (1, ${1 + every}, ...) take ${x}x as long per step`,
        );
        break;
      }
      case 'pressure': {
        const f = num(name, 'f', params.get('f'), 0.01) ?? 1.5;
        sc.residentFraction = f;
        sc.description.push(`eviction pressure: KV per pod sized so the workload's distinct prompt blocks are ${Math.round(f * 100)} % of the cluster's KV`);
        break;
      }
      default:
        throw new Error(`--scenario: unknown scenario "${name}" (known: ${SCENARIO_NAMES.join(', ')})`);
    }
    sc.names.push(item);
  }
  return sc;
}

/** Model time of an event, given the run's stages. */
export function eventTime(ev: ScenarioEvent, stages: Stage[]): number {
  if (ev.at !== undefined) return ev.at;
  const warm = stages.filter((s) => s.warmup).reduce((a, s) => a + s.duration, 0);
  const measured = stages.filter((s) => !s.warmup).reduce((a, s) => a + s.duration, 0);
  return warm + ev.fraction * measured;
}

/**
 * The pod spec a scenario implies: per-pod multipliers and, under `pressure`, KV blocks per pod
 * from the workload's distinct prompt tokens (never below one max-length sequence).
 */
export function scenarioSpec<T extends Pick<SimSpec, 'pods' | 'blockSize' | 'numGpuBlocks' | 'maxModelLen' | 'podTimingMultipliers'> & { profile?: string }>(
  spec: T,
  sc: Scenario | undefined,
  distinctPromptTokens: number,
): T {
  if (!sc) return spec;
  const out = { ...spec };
  if (sc.podTimingMultipliers) out.podTimingMultipliers = sc.podTimingMultipliers;
  if (sc.residentFraction !== undefined) {
    const blocks = Math.ceil(distinctPromptTokens / (sc.residentFraction * spec.pods * spec.blockSize));
    // Unset --max-model-len: the profile's (vLLM's default is the model's context length).
    const maxLen = spec.maxModelLen ?? (spec.profile !== undefined ? PROFILES[spec.profile]?.maxModelLen : undefined) ?? 0;
    const floor = Math.ceil(maxLen / spec.blockSize) + 1;
    out.numGpuBlocks = Math.max(blocks, floor, 2);
  }
  return out;
}

export interface AppliedEvent {
  kind: ScenarioEventKind;
  pod: number | 'all';
  /** Model seconds planned and when it was done (after the wall-clock wait). */
  at: number;
  doneAt?: number;
  error?: string;
}

export interface ScenarioTargets {
  pods: PodsHandle;
  router: RouterHandle;
}

/** Resets one pod's prefix cache (running requests preempted, as vLLM's reset_running_requests). */
async function resetPod(url: string): Promise<void> {
  const r = await request(`${url}/reset_prefix_cache?reset_running_requests=true`, { method: 'POST', headersTimeout: 10_000, bodyTimeout: 10_000 });
  const body = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`reset_prefix_cache: HTTP ${r.statusCode} ${body.slice(0, 120)}`);
}

/** Applies one event to pods and router (either clock: a harness supplies the operations). */
export async function applyScenarioEvent(ev: ScenarioEvent, t: ScenarioTargets): Promise<void> {
  const { pods, router } = t;
  const one = (i: number | 'all'): number => {
    if (i === 'all') throw new Error(`${ev.kind} needs one pod`);
    return i;
  };
  switch (ev.kind) {
    case 'restart':
      if (!pods.restart) throw new Error('this harness cannot restart pods');
      await pods.restart(one(ev.pod));
      return;
    case 'leave':
      if (!router.removeEndpoint || !pods.kill) throw new Error('this harness cannot remove pods');
      router.removeEndpoint(pods.addresses[one(ev.pod)]);
      await pods.kill(one(ev.pod));
      return;
    case 'join':
      if (!router.addEndpoint) throw new Error('this harness cannot add pods');
      router.addEndpoint(pods.addresses[one(ev.pod)]);
      return;
    case 'reset': {
      const which = ev.pod === 'all' ? pods.urls.map((_u, i) => i) : [ev.pod];
      await Promise.all(which.map((i) => (pods.reset ? pods.reset(i) : resetPod(pods.urls[i]))));
      return;
    }
  }
}

/**
 * Real clock: `start()` (called at the schedule's start) fires each event at its model time
 * (wall = model x timeScale from then). `stop()` cancels what has not fired and waits for what is
 * running.
 */
export function startScenarioReal(
  sc: Scenario | undefined,
  stages: Stage[],
  targets: ScenarioTargets,
  timeScale: number,
  log: (line: string) => void,
): { applied: AppliedEvent[]; start(): void; stop(): Promise<void> } {
  const applied: AppliedEvent[] = [];
  if (!sc || sc.events.length === 0) return { applied, start: () => {}, stop: async () => {} };
  let t0 = 0;
  const running: Promise<void>[] = [];
  let timers: NodeJS.Timeout[] = [];
  const schedule = () => sc.events.map((ev) => {
    const at = eventTime(ev, stages);
    const rec: AppliedEvent = { kind: ev.kind, pod: ev.pod, at };
    applied.push(rec);
    return setTimeout(() => {
      running.push(
        applyScenarioEvent(ev, targets).then(
          () => {
            rec.doneAt = (performance.now() - t0) / 1000 / timeScale;
            log(`  scenario: ${ev.kind} pod ${ev.pod} at ${rec.doneAt.toFixed(1)} s (model)`);
          },
          (err: unknown) => {
            rec.error = (err as Error).message;
            log(`  scenario: ${ev.kind} pod ${ev.pod} failed: ${rec.error}`);
          },
        ),
      );
    }, at * timeScale * 1000);
  });
  return {
    applied,
    start: () => {
      t0 = performance.now();
      timers = schedule();
    },
    stop: async () => {
      for (const t of timers) clearTimeout(t);
      await Promise.allSettled(running);
    },
  };
}
