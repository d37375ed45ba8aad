// A lean ext_proc client on node:http2 for benchmarks: Envoy's gRPC client is native code, so
// grpc-js's per-call machinery (and protobufjs) on the client side would overstate what the
// picker adds; it uses the hand-written codec (tested against protobufjs in extproc-codec.test.ts).
// One request = one HTTP/2 stream with length-prefixed protobuf messages, as gRPC frames them.
import http2 from 'node:http2';
import net from 'node:net';
import { decodeProcessingResponse, encodeProcessingRequestFrames } from '../../../src/k8s/extproc-codec.js';
import { extProcService, type ProcessingRequest, type ProcessingResponse } from '../../../src/k8s/proto.js';

export class H2ExtProcClient {
  private readonly session: http2.ClientHttp2Session;
  private readonly def = extProcService().Process;

  constructor(port: number) {
    // As Envoy: TCP_NODELAY and large receive windows (its HTTP/2 default is 256 MiB).
    this.session = http2.connect(`http://127.0.0.1:${port}`, {
      settings: { initialWindowSize: 256 << 20 },
      createConnection: () => net.connect({ host: '127.0.0.1', port, noDelay: true }),
    });
    this.session.on('error', () => undefined);
    this.session.once('connect', () => this.session.setLocalWindowSize(256 << 20));
  }

  /**
   * Sends `msgs` on a new stream and resolves with the responses once `done` holds over them;
   * then `after` messages are sent and the stream is half-closed.
   */
  exchange(msgs: ProcessingRequest[], done: (rs: ProcessingResponse[]) => boolean, after: ProcessingRequest[] = []): Promise<ProcessingResponse[]> {
    return new Promise((resolve, reject) => {
      const stream = this.session.request({ ':method': 'POST', ':path': this.def.path, 'content-type': 'application/grpc', te: 'trailers' });
      const out: ProcessingResponse[] = [];
      let pending: Buffer | null = null;
      let finished = false;
      stream.on('data', (chunk: Buffer) => {
        let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
        pending = null;
        while (buf.length >= 5) {
          const len = buf.readUInt32BE(1);
          if (buf.length < 5 + len) break;
          out.push(decodeProcessingResponse(buf.subarray(5, 5 + len)));
          buf = buf.subarray(5 + len);
        }
        if (buf.length) pending = Buffer.from(buf);
        if (!finished && done(out)) {
          finished = true;
          for (const m of after) stream.write(this.frame(m));
          stream.end();
          resolve(out);
        }
      });
      stream.on('error', (e) => !finished && reject(e));
      stream.on('close', () => !finished && reject(new Error(`stream closed after ${out.length} responses`)));
      stream.resume();
      for (const m of msgs) stream.write(this.frame(m));
    });
  }

  private frame(m: ProcessingRequest): Buffer {
    return encodeProcessingRequestFrames([m]);
  }

  close(): void {
    this.session.close();
  }
}
