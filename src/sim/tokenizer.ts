// The bridge to src/tokenize (loaded lazily so token-id prompts work without it). Only the
// structural contract the simulator uses is declared here.
import type { ChatMessage, ChatOptions } from '../tokenize/types.js';

export interface TokenizerRegistryLike {
  encodeCompletion(model: string, prompt: string, addSpecial?: boolean): Promise<unknown> | unknown;
  encodeChat(model: string, messages: ChatMessage[], opts?: ChatOptions): Promise<unknown> | unknown;
}

interface TokenizeModule {
  TokenizerRegistry: { create(...args: unknown[]): Promise<TokenizerRegistryLike> | TokenizerRegistryLike };
  handleTokenize?: (registry: TokenizerRegistryLike, body: unknown) => Promise<unknown> | unknown;
}

let shared: Promise<{ mod: TokenizeModule; registry: TokenizerRegistryLike } | null> | null = null;

/** The process-wide default registry from src/tokenize, or null when that module is absent. */
export function defaultTokenizers(): Promise<{ mod: TokenizeModule; registry: TokenizerRegistryLike } | null> {
  if (shared === null) {
    shared = (async () => {
      try {
        const spec = '../tokenize/index.js';
        const mod = (await import(spec)) as TokenizeModule;
        if (typeof mod.TokenizerRegistry?.create !== 'function') return null;
        return { mod, registry: await mod.TokenizerRegistry.create() };
      } catch {
        return null;
      }
    })();
  }
  return shared;
}

/** handleTokenize from src/tokenize when present. */
export async function tokenizeHandler(): Promise<TokenizeModule['handleTokenize'] | null> {
  const t = await defaultTokenizers();
  return t?.mod.handleTokenize ?? null;
}

/** Normalizes what an encode call returned (ids array, typed array or {ids|tokens|input_ids}). */
export function asTokenIds(v: unknown): number[] {
  if (Array.isArray(v)) return v as number[];
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of ['ids', 'tokens', 'input_ids', 'tokenIds']) if (k in o) return asTokenIds(o[k]);
  }
  throw new Error('tokenizer returned no token ids');
}
