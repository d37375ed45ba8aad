// Placeholder until the bench subsystem lands; replaced by its owner.
export async function run(_argv: string[]): Promise<number> {
  console.error('kvrouter bench: not available yet');
  return 1;
}
