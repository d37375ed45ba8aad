#!/usr/bin/env node
// Builds the published JavaScript (tsc -p tsconfig.build.json, incremental: a rebuild with no
// change takes a few seconds), then deletes outputs whose source is gone so dist/ never serves
// a stale module.
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const res = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit', cwd: root });
if (res.status !== 0) process.exit(res.status ?? 1);

const OUT = /(\.d\.ts|\.js\.map|\.js)$/;
function prune(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      prune(p);
      if (readdirSync(p).length === 0) rmSync(p, { recursive: true });
    } else if (OUT.test(name) && !existsSync(join(root, 'src', relative(join(root, 'dist'), p)).replace(OUT, '.ts'))) {
      rmSync(p);
    }
  }
}
prune(join(root, 'dist'));
