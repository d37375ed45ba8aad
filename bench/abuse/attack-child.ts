// Runs one attack of bench/abuse in its own process, so the attacker's CPU and event loop are
// not the bench client's: node --import tsx bench/abuse/attack-child.ts <list> <name> <ms> <target JSON>
// Prints "started" when the attack begins; any other stdout line is the attack's summary.
// Ends on its own after <ms>, or on SIGTERM.
import type { AbuseTarget, Attack } from './types.js';

const [list, name, ms, targetJson] = process.argv.slice(2);
const mod = (list === 'http' ? await import('./http-attacks.js') : await import('./events-attacks.js')) as Record<string, Attack[]>;
const attacks = Object.values(mod).find(Array.isArray) ?? [];
const attack = attacks.find((a) => a.name === name);
if (!attack) {
  console.error(`no attack named ${name} in ${list}`);
  process.exit(2);
}
const ac = new AbortController();
process.once('SIGTERM', () => ac.abort());
const target = JSON.parse(targetJson) as AbuseTarget;
try {
  process.stdout.write('started\n');
  await attack.run(target, ac.signal, Number(ms));
  process.exit(0);
} catch (err) {
  console.error(`attack ${name} failed: ${(err as Error).message}`);
  process.exit(1);
}
