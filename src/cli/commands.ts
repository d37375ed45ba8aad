// The subcommand table. Each entry lazily imports a module exporting `run(argv): Promise<number>`.
export interface CommandModule {
  run(argv: string[]): Promise<number>;
}

export interface CommandEntry {
  summary: string;
  load(): Promise<CommandModule>;
}

export const commands: Record<string, CommandEntry> = {
  keys: { summary: 'print the request block keys of a token sequence', load: () => import('./commands/keys.js') },
  tokenize: { summary: 'tokenize a prompt or chat exactly as vLLM would', load: () => import('./commands/tokenize.js') },
  sim: { summary: 'run simulated vLLM pods (real block cache, byte-compatible KV events)', load: () => import('./commands/sim.js') },
  serve: { summary: 'run the OpenAI-compatible router (--embedded: with two simulated pods)', load: () => import('./commands/serve.js') },
  epp: { summary: 'run as a Gateway API Inference Extension endpoint picker (Envoy ext-proc)', load: () => import('./commands/epp.js') },
  bench: { summary: 'benchmark routing strategies side by side on standard workloads', load: () => import('./commands/bench.js') },
};
