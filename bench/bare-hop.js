// bench:router's reference hop: a node:http server that forwards each request body's bytes to
// the upstream through an undici Pool and returns the answer, with no parsing and no scheduling:
// what the usual Node proxy stack costs. Plain JavaScript run by plain node, as the router runs
// from dist/: through tsx, esbuild's keepNames would add an Object.defineProperty per closure
// made on every request to this hop alone.
//   node bench/bare-hop.js --ports=<upstream port>,...   prints {"url"} and serves until SIGTERM
import { createServer } from 'node:http';
import { Pool } from 'undici';

const port = (process.argv.find((a) => a.startsWith('--ports=')) ?? '--ports=').slice(8).split(',')[0];
const upstream = new Pool(`http://127.0.0.1:${port}`, { connections: 64, pipelining: 1 });
const server = createServer({ keepAlive: true, noDelay: true }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    upstream
      .request({ path: req.url ?? '/', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(body.length) }, body })
      .then(async (up) => {
        const parts = [];
        for await (const c of up.body) parts.push(c);
        const out = Buffer.concat(parts);
        res.writeHead(up.statusCode, { 'content-type': 'application/json', 'content-length': out.length }).end(out);
      })
      .catch(() => res.writeHead(502).end());
  });
});
server.keepAliveTimeout = 60_000;
await new Promise((r) => server.listen(0, '127.0.0.1', r));
process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${server.address().port}` }) + '\n');
// An orderly exit (a --cpu-prof profile is written at exit, not on a fatal signal).
process.once('SIGTERM', () => process.exit(0));
