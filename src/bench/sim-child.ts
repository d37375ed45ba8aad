// Child process hosting the simulated pods of one strategy run, so the simulator gets its own
// core while the router and the load generator share the parent's. Protocol over IPC:
//   parent -> {cmd:'start', spec}   child -> {ok:true, urls, addresses} | {ok:false, error}
//   parent -> {cmd:'lag'}           child -> {lag}
//   parent -> {cmd:'kill'|'restart', pod}  child -> {ok:true} | {ok:false, error}   (scenarios)
//   parent -> {cmd:'close'}         child exits when closed.
import { SimHost, RealClock } from '../sim/index.js';
import type { SimSpec } from './harness.js';
import { simPodOptions } from './sim-options.js';

let host: SimHost | undefined;

function send(msg: unknown): void {
  process.send?.(msg);
}

process.on('message', (m: { cmd: string; spec?: SimSpec; pod?: number }) => {
  void (async () => {
    try {
      if (m.cmd === 'start' && m.spec) {
        host = await SimHost.start(simPodOptions(m.spec));
        send({ ok: true, urls: host.pods.map((p) => p.url), addresses: host.pods.map((p) => p.podId) });
      } else if (m.cmd === 'lag') {
        send(host?.clock instanceof RealClock ? { lag: host.clock.lagSeconds, timers: host.clock.firedTimers } : {});
      } else if (m.cmd === 'kill' || m.cmd === 'restart') {
        const pod = host?.pods[m.pod ?? -1];
        if (!pod) throw new Error(`no pod ${m.pod}`);
        await (m.cmd === 'kill' ? pod.kill() : pod.restart());
        send({ ok: true });
      } else if (m.cmd === 'close') {
        await host?.close();
        process.exit(0);
      }
    } catch (err) {
      send({ ok: false, error: (err as Error).stack ?? String(err) });
    }
  })();
});
process.on('disconnect', () => process.exit(0));
