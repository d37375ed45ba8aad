// Placeholder until the serve subsystem lands; replaced by its owner.
export async function run(_argv: string[]): Promise<number> {
  console.error('kvrouter serve: not available yet');
  return 1;
}
