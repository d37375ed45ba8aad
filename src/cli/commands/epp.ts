// Placeholder until the epp subsystem lands; replaced by its owner.
export async function run(_argv: string[]): Promise<number> {
  console.error('kvrouter epp: not available yet');
  return 1;
}
