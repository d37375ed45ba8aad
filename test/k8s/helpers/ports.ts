import { createServer } from 'node:net';

function tryListen(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(null));
    s.listen(port, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** `n` consecutive free TCP ports on loopback (data-parallel ranks use port + rank). */
export async function freePortRange(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await tryListen(0);
    if (base === null || base + n > 65535) continue;
    let ok = true;
    for (let i = 1; i < n && ok; i++) ok = (await tryListen(base + i)) !== null;
    if (ok) return base;
  }
  throw new Error(`no ${n} consecutive free ports`);
}
