// A gRPC server on one address with the given services; resolves once bound.
import * as grpc from '@grpc/grpc-js';

export interface GrpcServerHandle {
  readonly port: number;
  close(): Promise<void>;
}

export interface GrpcServiceEntry {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

export async function startGrpcServer(host: string, port: number, services: GrpcServiceEntry[]): Promise<GrpcServerHandle> {
  const server = new grpc.Server({
    // Bodies arrive in chunks Envoy sizes; replies carry up to 62,000-byte chunks.
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.max_send_message_length': 16 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
  });
  for (const s of services) server.addService(s.definition, s.implementation);
  const addr = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
