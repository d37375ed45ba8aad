// Loads llm-d's EndpointPickerConfig (YAML or JSON) into plugin instances and scheduling
// profiles, with llm-d's defaults (pkg/epp/config/loader/defaults.go):
//   scorer weight 1; no picker -> max-score-picker; one profile and no handler ->
//   single-profile-handler; no profiles -> `default` with every filter/scorer/picker;
//   empty config -> queue-scorer 2, kv-cache-utilization-scorer 2, prefix-cache-scorer 3.
// Validation is two-stage: the document shape here (zod), each plugin's parameters in its
// factory. Either failure names the offending plugin and stops startup.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { getPluginFactory, resolvePluginType } from './registry.js';
import { registerBuiltinPlugins } from './plugins/builtin.js';
import { ServiceError } from './services.js';
import { limitsSectionSchema } from '../gateway/limit-settings.js';
import {
  isDataProducer,
  isEndpointLifecycle,
  isFilter,
  isPicker,
  isPreRequest,
  isProfileHandler,
  isResponseHooks,
  isScorer,
  type DataProducer,
  type EndpointLifecycle,
  type Filter,
  type Picker,
  type Plugin,
  type PluginContext,
  type PreRequest,
  type ProfileHandler,
  type ResponseHooks,
  type SchedulerProfile,
  type WeightedScorer,
} from './types.js';

export const API_VERSIONS = ['llm-d.ai/v1alpha1', 'inference.networking.x-k8s.io/v1alpha1'] as const;

const pluginSpecSchema = z
  .object({
    name: z.string().min(1).optional(),
    type: z.string().min(1),
    parameters: z.unknown().optional(),
  })
  .strict();

const profilePluginRefSchema = z
  .object({
    pluginRef: z.string().min(1),
    weight: z.number().finite().nonnegative().optional(),
  })
  .strict();

const profileSchema = z
  .object({
    name: z.string().min(1),
    plugins: z.array(profilePluginRefSchema).default([]),
  })
  .strict();

export const endpointPickerConfigSchema = z
  .object({
    apiVersion: z.enum(API_VERSIONS).optional(),
    kind: z.literal('EndpointPickerConfig').optional(),
    featureGates: z.array(z.string()).optional(),
    plugins: z.array(pluginSpecSchema).default([]),
    schedulingProfiles: z.array(profileSchema).default([]),
    // Accepted for compatibility with llm-d configs; kvrouter's data layer is built in.
    dataLayer: z.unknown().optional(),
    saturationDetector: z.unknown().optional(),
    parser: z.unknown().optional(),
    flowControl: z.unknown().optional(),
    // kvrouter extension: the static endpoint list for `kvrouter serve`.
    endpoints: z
      .array(
        z
          .object({
            address: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d+$/, 'address must be ip:port'),
            name: z.string().optional(),
            labels: z.record(z.string(), z.string()).optional(),
          })
          .strict(),
      )
      .optional(),
    // kvrouter extension: HTTP edge, upstream and request limits (`serve` flags override them).
    limits: limitsSectionSchema.optional(),
  })
  .strict();

export type EndpointPickerConfig = z.infer<typeof endpointPickerConfigSchema>;
/** The config as written (defaults not yet applied). */
export type EndpointPickerConfigInput = z.input<typeof endpointPickerConfigSchema>;
export type PluginSpec = z.infer<typeof pluginSpecSchema>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function formatZod(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

/** Parse and validate the document shape (no plugin instantiation). */
export function parseEndpointPickerConfig(input: string | unknown, source = 'config'): EndpointPickerConfig {
  let doc: unknown = input;
  if (typeof input === 'string') {
    try {
      doc = parseYaml(input);
    } catch (err) {
      throw new ConfigError(`${source}: not valid YAML: ${(err as Error).message}`);
    }
  }
  if (doc === null || doc === undefined) doc = {};
  const res = endpointPickerConfigSchema.safeParse(doc);
  if (!res.success) throw new ConfigError(`${source}: invalid EndpointPickerConfig: ${formatZod(res.error)}`);
  return res.data;
}

export function readEndpointPickerConfig(path: string): EndpointPickerConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${path}: ${(err as Error).message}`);
  }
  return parseEndpointPickerConfig(text, path);
}

/** llm-d's defaults for an empty config. */
export function defaultEndpointPickerConfig(): EndpointPickerConfig {
  return parseEndpointPickerConfig({
    plugins: [{ type: 'queue-scorer' }, { type: 'kv-cache-utilization-scorer' }, { type: 'prefix-cache-scorer' }],
    schedulingProfiles: [
      {
        name: 'default',
        plugins: [
          { pluginRef: 'queue-scorer', weight: 2 },
          { pluginRef: 'kv-cache-utilization-scorer', weight: 2 },
          { pluginRef: 'prefix-cache-scorer', weight: 3 },
        ],
      },
    ],
  });
}

/** The instantiated scheduler configuration. */
export interface LoadedSchedulerConfig {
  plugins: Map<string, Plugin>;
  profiles: Map<string, SchedulerProfile>;
  profileHandler: ProfileHandler;
  preRequest: PreRequest[];
  responseHooks: ResponseHooks[];
  /** Plugins told when endpoints join or leave the pool. */
  endpointLifecycle: EndpointLifecycle[];
  source: EndpointPickerConfig;
}

function instantiate(spec: PluginSpec, ctx: PluginContext, plugins: Map<string, Plugin>): Plugin {
  const name = spec.name ?? spec.type;
  const factory = getPluginFactory(spec.type);
  if (!factory) throw new ConfigError(`plugin "${name}": unknown plugin type "${spec.type}"`);
  try {
    return factory(spec.parameters ?? {}, { ...ctx, name, type: resolvePluginType(spec.type), getPlugin: (n) => plugins.get(n) });
  } catch (err) {
    if (err instanceof ServiceError) throw new ConfigError(`plugin "${name}" (type ${spec.type}): ${err.message}`);
    const msg = err instanceof z.ZodError ? formatZod(err) : (err as Error).message;
    throw new ConfigError(`plugin "${name}" (type ${spec.type}): invalid parameters: ${msg}`);
  }
}

/** Every declared dependency is met and every declared service was registered. */
function checkServices(plugins: Iterable<Plugin>, ctx: PluginContext): void {
  for (const p of plugins) {
    for (const key of p.provides ?? []) {
      if (!ctx.services.has(key)) throw new ConfigError(`plugin "${p.name}" (type ${p.type}) declares service "${key.id}" but did not provide it`);
    }
  }
  for (const p of plugins) {
    for (const key of p.requires ?? []) {
      if (!ctx.services.has(key)) throw new ConfigError(`plugin "${p.name}" (type ${p.type}) requires service "${key.id}", which nothing provides`);
    }
  }
}

/** Instantiate every plugin and resolve the profiles, applying llm-d's defaults. */
export function buildSchedulerConfig(config: EndpointPickerConfig, ctx: PluginContext): LoadedSchedulerConfig {
  registerBuiltinPlugins();
  if (config.plugins.length === 0 && config.schedulingProfiles.length === 0) config = defaultEndpointPickerConfig();

  const plugins = new Map<string, Plugin>();
  for (const spec of config.plugins) {
    const name = spec.name ?? spec.type;
    if (plugins.has(name)) throw new ConfigError(`plugin "${name}" is defined twice`);
    plugins.set(name, instantiate(spec, ctx, plugins));
  }

  let profileSpecs = config.schedulingProfiles;
  if (profileSpecs.length === 0) {
    profileSpecs = [
      {
        name: 'default',
        plugins: [...plugins.entries()]
          .filter(([, p]) => isFilter(p) || isScorer(p) || isPicker(p))
          .map(([n]) => ({ pluginRef: n })),
      },
    ];
  }

  const profiles = new Map<string, SchedulerProfile>();
  let autoPicker: Picker | undefined;
  for (const ps of profileSpecs) {
    if (profiles.has(ps.name)) throw new ConfigError(`scheduling profile "${ps.name}" is defined twice`);
    const filters: Filter[] = [];
    const scorers: WeightedScorer[] = [];
    const producers: DataProducer[] = [];
    let picker: Picker | undefined;
    for (const ref of ps.plugins) {
      const p = plugins.get(ref.pluginRef);
      if (!p) throw new ConfigError(`scheduling profile "${ps.name}": pluginRef "${ref.pluginRef}" names no plugin`);
      let used = false;
      if (isFilter(p)) {
        filters.push(p);
        used = true;
      }
      if (isScorer(p)) {
        scorers.push({ scorer: p, weight: ref.weight ?? 1 });
        used = true;
      }
      if (isPicker(p)) {
        if (picker) throw new ConfigError(`scheduling profile "${ps.name}": more than one picker ("${picker.name}", "${p.name}")`);
        picker = p;
        used = true;
      }
      if (isDataProducer(p)) {
        producers.push(p);
        used = true;
      }
      if (!used && isProfileHandler(p)) {
        throw new ConfigError(`scheduling profile "${ps.name}": "${ref.pluginRef}" is a profile handler, not a profile plugin`);
      }
    }
    if (!picker) {
      autoPicker ??= instantiate({ type: 'max-score-picker' }, ctx, plugins) as Picker;
      picker = autoPicker;
    }
    profiles.set(ps.name, { name: ps.name, filters, scorers, picker, producers });
  }

  const handlers = [...plugins.values()].filter(isProfileHandler);
  if (handlers.length > 1) throw new ConfigError(`more than one profile handler (${handlers.map((h) => h.name).join(', ')})`);
  let profileHandler = handlers[0];
  if (!profileHandler) {
    if (profiles.size !== 1) {
      throw new ConfigError(`${profiles.size} scheduling profiles need a profile handler plugin (e.g. disagg-profile-handler)`);
    }
    profileHandler = instantiate({ type: 'single-profile-handler' }, ctx, plugins) as ProfileHandler;
  }

  const all = [...new Set([...plugins.values(), ...[...profiles.values()].map((p) => p.picker), profileHandler])];
  checkServices(all, ctx);
  return {
    plugins,
    profiles,
    profileHandler,
    preRequest: all.filter(isPreRequest),
    responseHooks: all.filter(isResponseHooks),
    endpointLifecycle: all.filter(isEndpointLifecycle),
    source: config,
  };
}
