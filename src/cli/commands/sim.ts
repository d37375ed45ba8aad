// Placeholder until the sim subsystem lands; replaced by its owner.
export async function run(_argv: string[]): Promise<number> {
  console.error('kvrouter sim: not available yet');
  return 1;
}
