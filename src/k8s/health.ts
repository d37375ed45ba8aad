// grpc.health.v1.Health as the EPP serves it on its health port: services "liveness",
// "readiness", the ext_proc service name, and "" (the server as a whole). Kubernetes' native
// gRPC probes (`grpc: {port: 9003, service: readiness}`) and Envoy's health checks ask here.
import * as grpc from '@grpc/grpc-js';

export const SERVING = 1;
export const NOT_SERVING = 2;
export const SERVICE_UNKNOWN = 3;

type Status = typeof SERVING | typeof NOT_SERVING;

interface Req {
  service?: string;
}
interface Res {
  status: number;
}

export class HealthStatus {
  private readonly statuses = new Map<string, Status>();
  private readonly watchers = new Map<string, Set<grpc.ServerWritableStream<Req, Res>>>();

  set(service: string, serving: boolean): void {
    const status: Status = serving ? SERVING : NOT_SERVING;
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const w of this.watchers.get(service) ?? []) w.write({ status });
  }

  get(service: string): number | undefined {
    return this.statuses.get(service);
  }

  implementation(): grpc.UntypedServiceImplementation {
    return {
      Check: (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
        const status = this.statuses.get(call.request.service ?? '');
        if (status === undefined) cb({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service ?? ''}` });
        else cb(null, { status });
      },
      List: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<{ statuses: Record<string, Res> }>) => {
        const statuses: Record<string, Res> = {};
        for (const [k, v] of this.statuses) statuses[k] = { status: v };
        cb(null, { statuses });
      },
      Watch: (call: grpc.ServerWritableStream<Req, Res>) => {
        const service = call.request.service ?? '';
        call.write({ status: this.statuses.get(service) ?? SERVICE_UNKNOWN });
        let set = this.watchers.get(service);
        if (!set) this.watchers.set(service, (set = new Set()));
        set.add(call);
        const drop = () => set.delete(call);
        call.on('cancelled', drop);
        call.on('close', drop);
      },
    };
  }

  /** Ends every Watch stream (server shutdown). */
  close(): void {
    for (const set of this.watchers.values()) for (const w of set) w.end();
    this.watchers.clear();
  }
}
