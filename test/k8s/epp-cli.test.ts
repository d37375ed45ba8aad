// `kvrouter epp` as a process: flags, startup log, gRPC health, clean exit on SIGTERM, errors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { healthClientCtor } from '../../src/k8s/proto.js';
import { CLI } from '../helpers/cli.js';

describe('kvrouter epp (CLI)', () => {
  it('starts with static endpoints, answers health checks and exits 0 on SIGTERM', async (t) => {
    const child = spawn(process.execPath, [...CLI, 'epp', '--endpoints', '127.0.0.1:9', '--host', '127.0.0.1', '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--refresh-metrics-interval', '100ms', '--secure-serving=false', '--v=2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const started = await new Promise<{ grpcHealthPort: number; metricsPort: number }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no startup line:\n${out}`)), 60_000);
      const onData = () => {
        const line = out.split('\n').find((l) => l.includes('serving Envoy ext_proc'));
        if (line) {
          clearTimeout(t);
          resolve(JSON.parse(line));
        }
      };
      child.stdout.on('data', onData);
      child.once('exit', (c) => reject(new Error(`exited early (${c}):\n${out}`)));
    });
    const Ctor = healthClientCtor();
    const client = new Ctor(`127.0.0.1:${started.grpcHealthPort}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: number }) => void): void;
    };
    const status = await new Promise<number>((resolve, reject) => client.Check({ service: 'readiness' }, (err, res) => (err ? reject(err) : resolve(res!.status))));
    client.close();
    assert.equal(status, 1, 'readiness SERVING with static endpoints');
    const metrics = await (await fetch(`http://127.0.0.1:${started.metricsPort}/metrics`)).text();
    assert.match(metrics, /inference_pool_ready_pods/);
    const code = await new Promise<number | null>((resolve) => {
      child.once('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
    assert.equal(code, 0, out);
  });

  it('refuses to start without endpoints or with unsupported llm-d flags', () => {
    let r = spawnSync(process.execPath, [...CLI, 'epp'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no endpoints/);
    r = spawnSync(process.execPath, [...CLI, 'epp', '--endpoints', '127.0.0.1:9', '--secure-serving=true'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--secure-serving=true is not supported/);
    r = spawnSync(process.execPath, [...CLI, 'epp', '--endpoint-selector', 'app=vllm'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /needs --endpoint-target-ports/);
    r = spawnSync(process.execPath, [...CLI, 'epp', '--endpoints', '127.0.0.1:9', '--max-body-bytes', '1MB'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--max-body-bytes must be a positive integer/);
  });
});
