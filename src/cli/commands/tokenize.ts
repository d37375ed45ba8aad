// Placeholder until the tokenize subsystem lands; replaced by its owner.
export async function run(_argv: string[]): Promise<number> {
  console.error('kvrouter tokenize: not available yet');
  return 1;
}
