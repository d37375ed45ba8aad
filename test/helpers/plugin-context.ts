// A PluginContext as the router builds one: silent logger, fresh registry, and the router's
// services (the real KV-event subscriber factory; it binds nothing until a plugin starts).
import pino from 'pino';
import { Registry } from 'prom-client';
import { KvEventSubscriber } from '../../src/events/subscriber.js';
import { KV_EVENT_SOURCE_FACTORY } from '../../src/scheduler/kv-services.js';
import { ServiceRegistry } from '../../src/scheduler/services.js';
import type { PluginContext } from '../../src/scheduler/types.js';

export function pluginContext(o: { kvEvents?: boolean } = {}): PluginContext {
  const services = new ServiceRegistry();
  if (o.kvEvents !== false) services.provide(KV_EVENT_SOURCE_FACTORY, (opts) => new KvEventSubscriber(opts), 'the test');
  return { logger: pino({ level: 'silent' }), registry: new Registry(), services };
}
