// kvrouter command-line entry: dispatches to one lazily loaded module per subcommand,
// so `kvrouter keys` never pays for loading the gateway, ZeroMQ or the tokenizers.
import { commands } from './commands.js';

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'kvrouter: precise prefix-cache aware router for vLLM',
    '',
    'Usage: kvrouter <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `kvrouter <command> --help` for the options of a command.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  if (name === '--version' || name === '-v') {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    console.log(pkg.version);
    return 0;
  }
  const command = commands[name];
  if (!command) {
    console.error(`kvrouter: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const mod = await command.load();
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`kvrouter: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
