// The package's public entry (`import { startRouter } from 'kvrouter'`): the router, the
// endpoint picker, the block index and keys, plugin registration, and the simulator.
// Deeper modules are internal; `kvrouter/sim` and `kvrouter/tokenize` are the other entries.
export { startRouter, type Router, type RouterOptions } from './gateway/router.js';
export { startEmbedded, type Embedded, type EmbeddedOptions } from './gateway/embedded.js';
export { startEpp, type Epp, type EppOptions } from './k8s/epp.js';
export { createKvBlockIndex, type IndexFactoryConfig } from './index/factory.js';
export { BlockKeyer, type KeyConfig, type KeyOptions, type HashAlgorithm } from './index/keys.js';
export type { KvBlockIndex } from './index/types.js';
export { registerPlugin } from './scheduler/registry.js';
export type { Plugin, Filter, Scorer, Picker, PluginFactory, Endpoint, InferenceRequest } from './scheduler/types.js';
