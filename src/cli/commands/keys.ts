// Placeholder until the keys subsystem lands; replaced by its owner.
export async function run(_argv: string[]): Promise<number> {
  console.error('kvrouter keys: not available yet');
  return 1;
}
