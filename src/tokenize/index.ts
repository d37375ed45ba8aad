// Public surface of the tokenize subsystem.
export type { ChatContentPart, ChatMessage, ChatOptions, EncodeOptions, TokenizeRequest, TokenizeResult } from './types.js';
export { ContextLengthError, TokenizeAbortedError, TokenizeError, UnknownModelError } from './types.js';
export { TokenizerRegistry, type TokenizerRegistryOptions } from './registry.js';
export { handleTokenize, errorBody, type HandlerResponse } from './handler.js';
export type { PrefixCacheOptions } from './prefix-cache.js';
export type { EngineChoice } from './model-tokenizer.js';
export { bundledModels, defaultHfCacheDir } from './locate.js';
