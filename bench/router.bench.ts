// npm run bench:router — what the router adds, against going straight to the pod, in one run.
//   1. Added latency for 1k-token chat requests (tokenization with the real Qwen3 tokenizer,
//      chat template, block keys, precise index lookup, scoring and proxying included):
//      p50/p99 through the router minus p50/p99 direct.
//      Budget (issue 13): the router's added p50 at most 0.25 ms above that of a bare
//      node:http + undici hop (forwards bytes, no parsing or scheduling) measured in the same run;
//      added p99 <= 5 ms. An nginx `proxy_pass` hop is printed as the floor row when nginx is installed.
//   2. Routed requests/s for small requests at fixed concurrency, against direct.
//      Target: >= 3,000/s on 2 cores.
// Breakdown: the router process's CPU time per request in each phase (over an IPC channel),
// mean wall time per stage (from its /metrics), its GC pauses.
// Quick mode (BENCH_QUICK=1): fewer requests and shorter throughput runs, same measures.
// Flags: --n=<requests per latency phase> --concurrency=<c> --seconds=<s> --prof (CPU profile),
// --router=src (the router from its TypeScript sources through tsx instead of dist/),
// --warm=<requests per hop before measuring> (default 3,000; every hop gets the same). V8 keeps optimizing
// (and re-optimizing after deopts) the router's request path for its first ~2,000-3,000 such
// requests: ~130 TurboFan compiles in the first 1,000, ~90 in the next, ~40 in the third
// (--trace-opt), its helper threads using ~0.5 ms of CPU per request meanwhile; the bare hop
// has far less code to optimize. A router in service has served far more than 3,000 requests, so
// the budget is judged near steady state; --warm=100 shows a freshly started process.
// BENCH_ROUTER_BASELINE=<worktree of another commit>: that tree's router too (started by that
// tree's own bench file, --role=router, as that tree runs it), in the same interleaved rounds,
// printed as a "before" row: a before/after comparison from one run.
// The router runs as shipped: dist/, compiled by `npm run build` (incremental) at the start; the
// bare hop is plain JavaScript (bench/bare-hop.js). tsx's transform of TypeScript keeps function
// names with an Object.defineProperty on every closure made (esbuild keepNames), a per-request
// cost that `npm start` and the package never pay.
// Processes: a fast upstream (two minimal vLLM-shaped HTTP servers), the router, the bare hop,
// nginx, and this load generator (undici). Every loop is bounded in count and time.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';

const MODEL = 'Qwen/Qwen3-0.6B';
const SELF = fileURLToPath(import.meta.url);
const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const role = args.get('role') ?? 'main';

// ---------- upstream: minimal vLLM-shaped servers ----------
async function runUpstream(): Promise<void> {
  const body = JSON.stringify({
    id: 'cmpl-bench',
    object: 'chat.completion',
    created: 1700000000,
    model: MODEL,
    choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'length' }],
    usage: { prompt_tokens: 1000, completion_tokens: 1, total_tokens: 1001 },
  });
  const metrics =
    'vllm:num_requests_waiting{engine="0",model_name="m"} 0\nvllm:num_requests_running{engine="0",model_name="m"} 0\n' +
    'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.1\nvllm:cache_config_info{block_size="16",num_gpu_blocks="10000",engine="0"} 1\n';
  const models = JSON.stringify({ object: 'list', data: [{ id: MODEL, object: 'model', owned_by: 'vllm', root: MODEL, parent: null }] });
  const ports: number[] = [];
  for (let i = 0; i < 2; i++) {
    const s = createServer({ keepAlive: true, noDelay: true }, (req, res) => {
      if (req.url === '/metrics') return void res.end(metrics);
      if (req.url === '/v1/models') return void res.writeHead(200, { 'content-type': 'application/json' }).end(models);
      req.on('data', () => {});
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body));
    });
    s.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    ports.push((s.address() as AddressInfo).port);
  }
  process.stdout.write(JSON.stringify({ ports }) + '\n');
}

// ---------- router process ----------
async function runRouter(): Promise<void> {
  const dir = args.get('router') === 'src' ? '../src' : '../dist';
  const { startRouter } = (await import(`${dir}/gateway/router.js`)) as typeof import('../src/gateway/router.js');
  const { EMBEDDED_CONFIG } = (await import(`${dir}/gateway/embedded.js`)) as typeof import('../src/gateway/embedded.js');
  const ports = (args.get('ports') ?? '').split(',');
  const loadOnly = args.get('config') === 'load-only';
  const r = await startRouter({
    // load-only: queue + kv-utilization scorers, no tokenization (isolates the proxy's cost).
    ...(loadOnly
      ? { config: { plugins: [{ type: 'queue-scorer' }, { type: 'kv-cache-utilization-scorer' }] } }
      : { configPath: EMBEDDED_CONFIG }),
    endpoints: ports.map((p) => ({ address: `127.0.0.1:${p}`, labels: { 'llm-d.ai/role': 'decode' } })),
    port: 0,
    zmqEndpoint: 'tcp://127.0.0.1:0',
    logLevel: 'warn',
    processMetrics: false,
  });
  await r.pool.waitReady(2);
  await r.warmTokenizer(MODEL);
  process.stdout.write(JSON.stringify({ url: r.url }) + '\n');
  // The load generator asks for this process's CPU time and GC pauses, to report them per phase.
  const gc = { count: 0, major: 0, totalMs: 0, maxMs: 0 };
  const { PerformanceObserver } = await import('node:perf_hooks');
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.count++;
      // perf_hooks.constants.NODE_PERFORMANCE_GC_MAJOR: mark-sweep-compact.
      if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === 4) gc.major++;
      gc.totalMs += e.duration;
      gc.maxMs = Math.max(gc.maxMs, e.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  process.on('message', (m) => {
    if (m === 'cpu') {
      const u = process.cpuUsage();
      process.send?.({ cpuMs: (u.user + u.system) / 1000, mainMs: mainThreadCpuMs(), gc: { ...gc } });
      gc.maxMs = 0;
    }
  });
  process.once('SIGTERM', () => void r.close().finally(() => process.exit(0)));
}

/**
 * CPU milliseconds of this process's main thread alone (Linux /proc, 10 ms ticks; NaN elsewhere):
 * the rest of process.cpuUsage() is V8's compiler and GC helper threads (and worker threads).
 */
function mainThreadCpuMs(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return NaN;
  }
}

// ---------- reference: a minimal node:http + undici proxy hop ----------
// bench/bare-hop.js: an HTTP server that forwards each body's bytes to the first upstream through
// an undici Pool and returns the answer (no parsing, no scheduling), run by plain node.
const BARE_HOP = fileURLToPath(new URL('./bare-hop.js', import.meta.url));

// ---------- floor: nginx proxy_pass ----------
const NGINX = '/usr/sbin/nginx';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** nginx on a loopback port proxying to `upstreamPort` (keep-alive upstream, no buffering); null without nginx. */
async function startNginx(upstreamPort: number): Promise<{ url: string; stop: () => Promise<void> } | null> {
  if (!existsSync(NGINX)) return null;
  const dir = mkdtempSync(join(tmpdir(), 'kvrouter-nginx-'));
  chmodSync(dir, 0o777);
  const port = await freePort();
  const conf = `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  client_max_body_size 64m; client_body_buffer_size 1m;
  upstream pod { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass http://pod; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const proc = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'inherit'] });
  spawned.push(proc);
  const url = `http://127.0.0.1:${port}`;
  // Up to 5 s for nginx to listen.
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) break;
    const up = await fetch(`${url}/metrics`).then(
      () => true,
      () => false,
    );
    if (up) {
      return {
        url,
        stop: async () => {
          if (proc.exitCode === null) {
            proc.kill('SIGQUIT');
            await new Promise((r) => proc.once('exit', r));
          }
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  console.log('nginx did not start: no nginx row');
  return null;
}

// ---------- main: load generator ----------
/** Every child process, so a failed run still stops them all. */
const spawned: ChildProcess[] = [];

/** A role of this file through tsx, or `script` (plain JavaScript) through plain node. */
function child(extra: string[], nodeArgs: string[] = [], script?: string): { proc: ChildProcess; first: Promise<Record<string, unknown>> } {
  const argv = script ? [...nodeArgs, script, ...extra] : [...nodeArgs, '--import', 'tsx', SELF, ...extra];
  const proc = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  spawned.push(proc);
  const first = new Promise<Record<string, unknown>>((resolve, reject) => {
    let buf = '';
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
    });
    proc.once('exit', (code) => reject(new Error(`child ${extra.join(' ')} exited with ${code}`)));
  });
  return { proc, first };
}

/** Histogram sums and counts from the router's /metrics, by metric name + selected label. */
async function histograms(url: string): Promise<Map<string, { sum: number; count: number }>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, { sum: number; count: number }>();
  for (const line of text.split('\n')) {
    const m = /^(\w+)_(sum|count)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const plugin = /plugin_name="([^"]*)"/.exec(m[3] ?? '')?.[1];
    const key = plugin ? `${m[1]}:${plugin}` : m[1];
    const e = out.get(key) ?? { sum: 0, count: 0 };
    if (m[2] === 'sum') e.sum += Number(m[4]);
    else e.count += Number(m[4]);
    out.set(key, e);
  }
  return out;
}

/** Mean (in us) of each histogram over the interval between two scrapes. */
function breakdown(a: Map<string, { sum: number; count: number }>, b: Map<string, { sum: number; count: number }>): string {
  const names: [string, string][] = [
    ['inference_objective_request_duration_seconds', 'request in router'],
    // The request's time includes the pod's: to its first response byte, the upstream round trip.
    ['inference_objective_request_ttft_seconds', 'to first byte from the pod'],
    ['inference_extension_scheduler_e2e_duration_seconds', 'schedule'],
    ['kvrouter_tokenize_duration_seconds', 'tokenize (render+encode)'],
  ];
  for (const k of b.keys()) if (k.startsWith('inference_extension_plugin_duration_seconds:')) names.push([k, k.split(':')[1]]);
  const parts: string[] = [];
  for (const [k, label] of names) {
    const x = b.get(k);
    if (!x) continue;
    const y = a.get(k) ?? { sum: 0, count: 0 };
    const n = x.count - y.count;
    if (n > 0) parts.push(`${label} ${(((x.sum - y.sum) / n) * 1e6).toFixed(0)}`);
  }
  return parts.join(', ');
}

interface GcStats {
  count: number;
  major: number;
  totalMs: number;
  /** Longest pause since the previous sample. */
  maxMs: number;
}
const lastGc = new WeakMap<ChildProcess, GcStats>();
/** The child's main-thread CPU milliseconds at its last cpuOf. */
const lastMain = new WeakMap<ChildProcess, number>();
const gcOfPhase = new Map<string, GcStats>();

/** CPU milliseconds the child has used so far; its GC pauses since the last call go under `phase`. */
function cpuOf(proc: ChildProcess, phase?: string): Promise<number> {
  return new Promise((resolve) => {
    const on = (m: unknown) => {
      if (m && typeof m === 'object' && 'cpuMs' in m) {
        proc.off('message', on);
        const gc = (m as unknown as { gc: GcStats }).gc;
        const prev = lastGc.get(proc) ?? { count: 0, major: 0, totalMs: 0, maxMs: 0 };
        if (phase) {
          // A phase measured in several rounds (the interleaved 1k chats) adds up over its rounds.
          const acc = gcOfPhase.get(phase) ?? { count: 0, major: 0, totalMs: 0, maxMs: 0 };
          gcOfPhase.set(phase, {
            count: acc.count + gc.count - prev.count,
            major: acc.major + gc.major - prev.major,
            totalMs: acc.totalMs + gc.totalMs - prev.totalMs,
            maxMs: Math.max(acc.maxMs, gc.maxMs),
          });
        }
        lastGc.set(proc, gc);
        lastMain.set(proc, (m as { mainMs?: number }).mainMs ?? NaN);
        resolve((m as { cpuMs: number }).cpuMs);
      }
    };
    proc.on('message', on);
    proc.send('cpu');
  });
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * ~1,000-token chat message, distinct per i in its first words ("Request <i>."); the words after
 * them follow one of 12 orders (i mod 12), so past the first ~1 KiB the texts of requests whose i
 * agree mod 12 and in digit count are the same.
 */
function longMessage(i: number): string {
  const words = ['router', 'cache', 'prefix', 'token', 'block', 'engine', 'latency', 'queue', 'pod', 'event', 'index', 'score'];
  const parts: string[] = [`Request ${i}.`];
  for (let w = 0; w < 900; w++) parts.push(words[(w * 7 + i * 13 + (w >> 3)) % words.length] + (w % 17 === 0 ? '.' : ''));
  return parts.join(' ');
}

async function send(pool: Pool, path: string, body: string): Promise<number> {
  const t0 = performance.now();
  const res = await pool.request({ path, method: 'POST', headers: { 'content-type': 'application/json' }, body });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
  return performance.now() - t0;
}

type MessagesFor = (i: number) => { role: string; content: string }[];
/**
 * Every request distinct, but not a worst case for the tokenizer's prefix cache: its first chunk
 * (~1 KiB, with "Request <i>.") is new every time, its later chunks recur (see longMessage).
 */
const distinct: MessagesFor = (i) => [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: longMessage(i) },
];
/** llm-d's benchmark shape: a long shared system prompt (~900 tokens) + a distinct ~100-token question. */
const SHARED_SYSTEM = longMessage(-1);
const shared: MessagesFor = (i) => [
  { role: 'system', content: SHARED_SYSTEM },
  { role: 'user', content: longMessage(i).slice(0, 600) },
];

async function latency(router: Pool, direct: Pool, n: number, budgetMs: number, messages: MessagesFor = distinct) {
  const viaRouter: number[] = [];
  const viaDirect: number[] = [];
  const deadline = performance.now() + budgetMs;
  for (let i = 0; i < n && performance.now() < deadline; i++) {
    const body = JSON.stringify({ model: MODEL, messages: messages(i), max_tokens: 1 });
    // Alternate order so drift hits both sides equally.
    if (i % 2 === 0) {
      viaDirect.push(await send(direct, '/v1/chat/completions', body));
      viaRouter.push(await send(router, '/v1/chat/completions', body));
    } else {
      viaRouter.push(await send(router, '/v1/chat/completions', body));
      viaDirect.push(await send(direct, '/v1/chat/completions', body));
    }
  }
  viaRouter.sort((a, b) => a - b);
  viaDirect.sort((a, b) => a - b);
  return { n: viaRouter.length, router: viaRouter, direct: viaDirect };
}

async function throughput(pool: Pool, concurrency: number, maxRequests: number, durationMs: number) {
  const body = JSON.stringify({ model: MODEL, prompt: 'Say hi.', max_tokens: 1 });
  let done = 0;
  let errors = 0;
  let started = 0;
  const t0 = performance.now();
  const end = t0 + durationMs;
  const worker = async () => {
    while (started < maxRequests && performance.now() < end) {
      started++;
      try {
        await send(pool, '/v1/completions', body);
        done++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const secs = (performance.now() - t0) / 1000;
  return { done, errors, secs, rps: done / secs };
}

async function main(): Promise<void> {
  const quick = process.env.BENCH_QUICK === '1';
  const n = Number(args.get('n') ?? (quick ? 150 : 400));
  const concurrency = Number(args.get('concurrency') ?? 32);
  const seconds = Number(args.get('seconds') ?? (quick ? 2 : 5));
  const routerFrom = `--router=${args.get('router') === 'src' ? 'src' : 'dist'}`;
  if (routerFrom === '--router=dist') {
    // dist/ up to date with src/ (an incremental tsc build: seconds when little changed).
    const build = spawnSync(process.execPath, [fileURLToPath(new URL('../scripts/build.js', import.meta.url))], { stdio: 'inherit' });
    if (build.status !== 0) throw new Error(`npm run build failed (exit ${build.status}); --router=src runs the sources instead`);
  }
  const up = child(['--role=upstream']);
  const { ports } = (await up.first) as { ports: number[] };
  // --prof: CPU profile of the router process into .tmp/prof (open in Chrome DevTools).
  const rt = child(['--role=router', `--ports=${ports.join(',')}`, routerFrom], args.has('prof') ? ['--cpu-prof', '--cpu-prof-dir=.tmp/prof'] : []);
  const { url } = (await rt.first) as { url: string };
  const router = new Pool(url, { connections: concurrency, pipelining: 1 });
  const direct = new Pool(`http://127.0.0.1:${ports[0]}`, { connections: concurrency, pipelining: 1 });
  // The bare node:http + undici hop and nginx run beside the router, so the three are measured
  // in interleaved rounds on the same requests (a noisy machine drifts between phases).
  const fl = child([`--ports=${ports.join(',')}`], [], BARE_HOP);
  const floorPool = new Pool(((await fl.first) as { url: string }).url, { connections: concurrency, pipelining: 1 });
  const ng = await startNginx(ports[0]);
  const ngPool = ng ? new Pool(ng.url, { connections: concurrency, pipelining: 1 }) : undefined;
  const baselineTree = process.env.BENCH_ROUTER_BASELINE;
  const bl = baselineTree ? child(['--role=router', `--ports=${ports.join(',')}`], ['--import', 'tsx'], join(baselineTree, 'bench/router.bench.ts')) : undefined;
  const blUrl = bl ? ((await bl.first) as { url: string }).url : undefined;
  const blPool = blUrl ? new Pool(blUrl, { connections: concurrency, pipelining: 1 }) : undefined;
  try {
    // Warm every path (JIT tiers, connections, tokenizer caches of the template): a router in
    // service is warm; 40 requests left the first measured ones in V8's baseline tiers.
    const warm = Number(args.get('warm') ?? 3000);
    const warmMs = Math.max(20_000, warm * 20);
    await latency(router, direct, warm, warmMs, (i) => distinct(i + 100_000));
    await latency(floorPool, direct, warm, warmMs, (i) => distinct(i + 100_000));
    if (ngPool) await latency(ngPool, direct, warm, warmMs, (i) => distinct(i + 100_000));
    if (blPool) await latency(blPool, direct, warm, warmMs, (i) => distinct(i + 100_000));
    let cpu0 = await cpuOf(rt.proc);
    const h0 = await histograms(url as string);
    // The baseline router is asked the same things at the same points (a /metrics scrape, CPU
    // readings around its phases), so neither process does work the other does not.
    if (blUrl) await histograms(blUrl);
    // A /metrics scrape right before the rounds left the scraped router ~0.07 ms slower in them
    // (the same build measured as this tree and as the baseline, only this tree scraped): its
    // garbage is collected while they run. Every hop serves 500 more requests after the scrapes.
    for (const pool of [router, floorPool, ngPool, blPool]) if (pool) await latency(pool, direct, 500, 20_000, (i) => distinct(i + 200_000));
    // Each round runs every hop once, and the order rotates by one hop per round, so each hop
    // takes each place in the order equally often: a fixed order gave the same router ~0.07 ms
    // less added p50 in the last place than in the first (the same build in both).
    const ROUNDS = 8;
    const per = Math.ceil(n / ROUNDS);
    type Lat = Awaited<ReturnType<typeof latency>>;
    const merge = (a: Lat | undefined, b: Lat): Lat =>
      a ? { n: a.n + b.n, router: [...a.router, ...b.router].sort((x, y) => x - y), direct: [...a.direct, ...b.direct].sort((x, y) => x - y) } : b;
    let lat: Lat | undefined;
    let latFloor: Lat | undefined;
    let latNginx: Lat | undefined;
    let latBaseline: Lat | undefined;
    let routerCpu = 0;
    let routerMain = 0;
    let blCpu = 0;
    let blMain = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const messages = (i: number) => distinct(i + r * per);
      const hops: (() => Promise<void>)[] = [
        async () => {
          const c0 = await cpuOf(rt.proc);
          const main0 = lastMain.get(rt.proc)!;
          lat = merge(lat, await latency(router, direct, per, 15_000, messages));
          routerCpu += (await cpuOf(rt.proc, '1k chat')) - c0;
          routerMain += lastMain.get(rt.proc)! - main0;
        },
        async () => void (latFloor = merge(latFloor, await latency(floorPool, direct, per, 15_000, messages))),
      ];
      if (ngPool) hops.push(async () => void (latNginx = merge(latNginx, await latency(ngPool, direct, per, 15_000, messages))));
      if (blPool && bl)
        hops.push(async () => {
          const c0 = await cpuOf(bl.proc);
          const main0 = lastMain.get(bl.proc)!;
          latBaseline = merge(latBaseline, await latency(blPool, direct, per, 15_000, messages));
          blCpu += (await cpuOf(bl.proc)) - c0;
          blMain += lastMain.get(bl.proc)! - main0;
        });
      for (let k = 0; k < hops.length; k++) await hops[(k + r) % hops.length]();
    }
    lat = lat!;
    latFloor = latFloor!;
    let cpu1 = await cpuOf(rt.proc);
    cpu0 = cpu1 - routerCpu;
    const h1 = await histograms(url as string);
    if (blUrl) await histograms(blUrl);
    const cpuLat = (cpu1 - cpu0) / lat.n;
    const latShared = await latency(router, direct, n, 60_000, shared);
    cpu0 = await cpuOf(rt.proc, 'shared-prefix chat');
    const h2 = await histograms(url as string);
    const cpuShared = (cpu0 - cpu1) / latShared.n;
    const p50r = pct(lat.router, 50);
    const p99r = pct(lat.router, 99);
    const p50d = pct(lat.direct, 50);
    const p99d = pct(lat.direct, 99);
    await throughput(router, concurrency, 2000, 2000); // warm-up
    const tpDirect = await throughput(direct, concurrency, 200_000, seconds * 1000);
    cpu0 = await cpuOf(rt.proc);
    const tpRouter = await throughput(router, concurrency, 200_000, seconds * 1000);
    cpu1 = await cpuOf(rt.proc, 'small');
    const cpuSmall = (cpu1 - cpu0) / Math.max(1, tpRouter.done);
    await router.close();
    rt.proc.kill('SIGTERM');
    await new Promise((r) => rt.proc.once('exit', r));
    await floorPool.close();
    fl.proc.kill('SIGTERM');
    await ngPool?.close();
    await ng?.stop();
    const rt2 = child(['--role=router', '--config=load-only', `--ports=${ports.join(',')}`, routerFrom]);
    const { url: url2 } = (await rt2.first) as { url: string };
    const router2 = new Pool(url2, { connections: concurrency, pipelining: 1 });
    await throughput(router2, concurrency, 2000, 2000);
    cpu0 = await cpuOf(rt2.proc);
    const tpLoadOnly = await throughput(router2, concurrency, 200_000, seconds * 1000);
    cpu1 = await cpuOf(rt2.proc);
    const cpuLoadOnly = (cpu1 - cpu0) / Math.max(1, tpLoadOnly.done);
    await router2.close();
    rt2.proc.kill('SIGTERM');
    await new Promise((r) => rt2.proc.once('exit', r));

    const added50 = p50r - p50d;
    const added99 = p99r - p99d;
    const floorAdded50 = pct(latFloor.router, 50) - pct(latFloor.direct, 50);
    const budget50 = floorAdded50 + 0.25;
    const f = (x: number) => x.toFixed(3);
    console.log(`\nkvrouter bench:router  (${lat.n} x 1k-token chat requests per hop, sequential, after ${warm} warm-up requests per hop, in ${ROUNDS} interleaved rounds of router / bare hop / nginx (/ before), the order rotated by one each round; throughput: ${concurrency} concurrent small requests for ${seconds} s)\n`);
    console.log('| measure | direct to pod | through router | added / ratio | target |');
    console.log('|---|---|---|---|---|');
    console.log(`| 1k-token chat latency p50 (ms) | ${f(p50d)} | ${f(p50r)} | +${f(added50)} ms | <= +${f(budget50)} ms (bare hop's +${f(floorAdded50)} + 0.25) |`);
    console.log(`| 1k-token chat latency p99 (ms) | ${f(p99d)} | ${f(p99r)} | +${f(added99)} ms | <= 5 ms added |`);
    console.log(
      `| shared-prefix 1k-token chat p50 / p99 (ms) | ${f(pct(latShared.direct, 50))} / ${f(pct(latShared.direct, 99))} | ${f(pct(latShared.router, 50))} / ${f(pct(latShared.router, 99))} | +${f(pct(latShared.router, 50) - pct(latShared.direct, 50))} / +${f(pct(latShared.router, 99) - pct(latShared.direct, 99))} ms | (llm-d shape) |`,
    );
    console.log(
      `| reference: minimal node:http + undici proxy hop, 1k-token chat p50 / p99 (ms) | ${f(pct(latFloor.direct, 50))} / ${f(pct(latFloor.direct, 99))} | ${f(pct(latFloor.router, 50))} / ${f(pct(latFloor.router, 99))} | +${f(pct(latFloor.router, 50) - pct(latFloor.direct, 50))} / +${f(pct(latFloor.router, 99) - pct(latFloor.direct, 99))} ms | (no parsing or scheduling) |`,
    );
    if (latNginx) {
      console.log(
        `| floor: nginx proxy_pass hop, 1k-token chat p50 / p99 (ms) | ${f(pct(latNginx.direct, 50))} / ${f(pct(latNginx.direct, 99))} | ${f(pct(latNginx.router, 50))} / ${f(pct(latNginx.router, 99))} | +${f(pct(latNginx.router, 50) - pct(latNginx.direct, 50))} / +${f(pct(latNginx.router, 99) - pct(latNginx.direct, 99))} ms | (C, no scheduling) |`,
      );
    } else console.log('| floor: nginx proxy_pass hop | | | | (nginx not installed) |');
    if (latBaseline) {
      const b50 = pct(latBaseline.router, 50) - pct(latBaseline.direct, 50);
      const b99 = pct(latBaseline.router, 99) - pct(latBaseline.direct, 99);
      console.log(
        `| before: router of ${baselineTree}, 1k-token chat p50 / p99 (ms) | ${f(pct(latBaseline.direct, 50))} / ${f(pct(latBaseline.direct, 99))} | ${f(pct(latBaseline.router, 50))} / ${f(pct(latBaseline.router, 99))} | +${f(b50)} / +${f(b99)} ms | this tree's added p50 ${added50 - b50 >= 0 ? '+' : ''}${f(added50 - b50)} ms vs before |`,
      );
    }
    console.log(`| small requests/s | ${tpDirect.rps.toFixed(0)} | ${tpRouter.rps.toFixed(0)} | ${(tpRouter.rps / tpDirect.rps).toFixed(2)}x of direct | >= 3000/s routed |`);
    console.log(`| small requests/s, load-only config (no tokenization) | ${tpDirect.rps.toFixed(0)} | ${tpLoadOnly.rps.toFixed(0)} | ${(tpLoadOnly.rps / tpDirect.rps).toFixed(2)}x of direct | |`);
    const us = (ms: number) => `${(ms * 1000).toFixed(0)} us`;
    console.log(
      `| router CPU per request: 1k chat / shared-prefix chat / small / small load-only | | ${us(cpuLat)} / ${us(cpuShared)} / ${us(cpuSmall)} / ${us(cpuLoadOnly)} | | |`,
    );
    console.log(
      `| router CPU per 1k chat request: main thread / other threads (V8 compiler and GC helpers) | | ${us(routerMain / lat.n)} / ${us(cpuLat - routerMain / lat.n)} | | |`,
    );
    if (latBaseline)
      console.log(
        `| router CPU per 1k chat request, this tree / before (main thread) | | ${us(cpuLat)} (${us(routerMain / lat.n)}) / ${us(blCpu / latBaseline.n)} (${Number.isFinite(blMain) ? us(blMain / latBaseline.n) : 'main thread not reported by that tree'}) | | |`,
      );
    console.log(`| errors | ${tpDirect.errors} | ${tpRouter.errors} / ${tpLoadOnly.errors} | | 0 |`);
    console.log(`\nmean wall time in the router (us), 1k chat: ${breakdown(h0, h1)}`);
    console.log(`mean wall time in the router (us), shared-prefix chat: ${breakdown(h1, h2)}`);
    console.log(
      `router GC pauses: ${[...gcOfPhase].map(([k, g]) => `${k} ${g.count}, ${g.major} major (${g.totalMs.toFixed(1)} ms, longest ${g.maxMs.toFixed(2)} ms)`).join('; ')}\n`,
    );
    const verdict = added50 <= budget50 && added99 <= 5 && tpRouter.rps >= 3000 && tpRouter.errors === 0;
    const load = (await import('node:os')).loadavg()[0];
    console.log(`load average (1 min): ${load.toFixed(2)}${quick ? '; quick mode (BENCH_QUICK=1)' : ''}`);
    if (load > 2.5) console.log(`note: 1-minute load average ${load.toFixed(1)} on ${(await import('node:os')).cpus().length} cores: other processes share the CPU, figures are pessimistic`);
    const over = added50 - floorAdded50;
    console.log(
      `\nbudget (issue 13): kvrouter added p50 ${f(added50)} - bare node:http + undici hop ${f(floorAdded50)} = ${over >= 0 ? '+' : ''}${f(over)} ms, ` +
        `<= 0.25 ms: ${over <= 0.25 ? 'MET' : 'MISSED'}${latNginx ? ` (nginx hop +${f(pct(latNginx.router, 50) - pct(latNginx.direct, 50))} ms)` : ''}; router from ${routerFrom.slice(9)}/`,
    );
    console.log(
      `${verdict ? 'PASS' : 'MISS'}: added p50 ${f(added50)} ms (budget ${f(budget50)}: bare node:http + undici hop ${f(floorAdded50)} + 0.25), p99 ${f(added99)} ms; ${tpRouter.rps.toFixed(0)} routed req/s\n`,
    );
    mkdirSync('bench-results', { recursive: true });
    writeFileSync(
      'bench-results/router.json',
      JSON.stringify(
        {
          at: new Date().toISOString(),
          latency: { n: lat.n, direct: { p50: p50d, p99: p99d }, router: { p50: p50r, p99: p99r }, added: { p50: added50, p99: added99 } },
          floorLatency: {
            direct: { p50: pct(latFloor.direct, 50), p99: pct(latFloor.direct, 99) },
            floor: { p50: pct(latFloor.router, 50), p99: pct(latFloor.router, 99) },
          },
          budgetP50: budget50,
          nginxLatency: latNginx
            ? { direct: { p50: pct(latNginx.direct, 50), p99: pct(latNginx.direct, 99) }, nginx: { p50: pct(latNginx.router, 50), p99: pct(latNginx.router, 99) } }
            : null,
          sharedPrefixLatency: {
            direct: { p50: pct(latShared.direct, 50), p99: pct(latShared.direct, 99) },
            router: { p50: pct(latShared.router, 50), p99: pct(latShared.router, 99) },
          },
          loadAverage: (await import('node:os')).loadavg(),
          throughput: { concurrency, direct: tpDirect, router: tpRouter, ratio: tpRouter.rps / tpDirect.rps, loadOnly: tpLoadOnly },
          routerCpuMsPerRequest: { chat1k: cpuLat, sharedPrefixChat: cpuShared, small: cpuSmall, smallLoadOnly: cpuLoadOnly },
          quick,
          pass: verdict,
        },
        null,
        2,
      ),
    );
  } finally {
    await router.close().catch(() => {});
    await floorPool.close().catch(() => {});
    await ngPool?.close().catch(() => {});
    await blPool?.close().catch(() => {});
    await ng?.stop().catch(() => {});
    await direct.close();
    for (const p of spawned) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    up.proc.kill('SIGTERM');
  }
}

if (role === 'upstream') await runUpstream();
else if (role === 'router') await runRouter();
else await main();
