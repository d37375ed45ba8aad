// Which endpoints start slow (outlier.ts's slow start), as Envoy does it for a cluster's hosts
// (envoyproxy/envoy, docs intro/arch_overview/upstream/load_balancing/slow_start, v1.31: slow
// start ramps "newly added upstream endpoints"; it is "most effective for cases where few new
// endpoints come up e.g. scale event in Kubernetes"):
// - an endpoint that comes back: ready again after being unready (restarted, network fault);
// - an endpoint that joins the pool while others are ready (a scale-up, a new discovered pod),
//   from its first readiness on (a vLLM pod answers /metrics only once its model is loaded).
// The initial set does not: endpoints in the pool when this starts watching (the static list),
// and endpoints that join while none is ready (discovery's first listing, or a pool whose every
// endpoint is gone): there is no traffic on peers to protect them from.
import type { Logger } from 'pino';
import type { EndpointPool, PoolEndpoint } from './pool.js';
import type { OutlierDetector } from './outlier.js';

/** Puts arriving endpoints of `pool` into `outlier`'s slow start; returns a function that stops watching. */
export function slowStartArrivals(pool: EndpointPool, outlier: OutlierDetector, logger?: Logger): () => void {
  const everReady = new Set<string>(pool.all().filter((e) => e.ready).map((e) => e.address));
  /** Joined while peers were ready, not ready yet: slow start at first readiness. */
  const joining = new Set<string>();
  const start = (e: PoolEndpoint, why: string) => {
    outlier.returned(e.address);
    logger?.info({ endpoint: e.address }, `${why}: slow start`);
  };
  const onAdded = (e: PoolEndpoint) => {
    if (!pool.ready().some((p) => p !== e)) return;
    if (!e.ready) joining.add(e.address);
    else {
      // Ready on arrival (a pool that does not scrape): new from now.
      everReady.add(e.address);
      start(e, 'new endpoint');
    }
  };
  const onReady = (e: PoolEndpoint) => {
    if (everReady.has(e.address)) start(e, 'endpoint ready again');
    else if (joining.delete(e.address)) start(e, 'new endpoint ready');
    everReady.add(e.address);
  };
  const onRemoved = (e: PoolEndpoint) => {
    outlier.forget(e.address);
    everReady.delete(e.address);
    joining.delete(e.address);
  };
  pool.on('added', onAdded);
  pool.on('ready', onReady);
  pool.on('removed', onRemoved);
  return () => {
    pool.off('added', onAdded);
    pool.off('ready', onReady);
    pool.off('removed', onRemoved);
  };
}
