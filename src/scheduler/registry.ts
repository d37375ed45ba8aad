// Plugin type registry: maps an EndpointPickerConfig `type` to a factory. Built-in plugins
// register themselves from ./plugins/builtin.ts; other subsystems (benchmark peer strategies,
// Kubernetes extras) call registerPlugin before loading a config.
import type { PluginFactory } from './types.js';

const factories = new Map<string, PluginFactory>();
const aliases = new Map<string, string>();

/** Register (or replace) the factory for a plugin type. */
export function registerPlugin(type: string, factory: PluginFactory): void {
  factories.set(type, factory);
}

/** Make an old or alternative type name resolve to a registered one (e.g. kv-cache-scorer). */
export function registerAlias(alias: string, type: string): void {
  aliases.set(alias, type);
}

export function resolvePluginType(type: string): string {
  return aliases.get(type) ?? type;
}

export function getPluginFactory(type: string): PluginFactory | undefined {
  return factories.get(resolvePluginType(type));
}

export function registeredPluginTypes(): string[] {
  return [...factories.keys(), ...aliases.keys()].sort();
}
