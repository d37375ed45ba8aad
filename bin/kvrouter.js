#!/usr/bin/env node
// CLI entry: runs the built JavaScript in dist/ (`npm run build`; `npm start` and `npm pack` build first).
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  console.error('kvrouter: dist/ is missing; run `npm run build` in the kvrouter checkout first');
  process.exit(1);
}
await import(main.href);
