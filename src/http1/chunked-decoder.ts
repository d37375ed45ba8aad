// Decodes a chunked transfer-coding (RFC 9112 section 7.1) incrementally: data pieces are
// views of the input, chunk extensions and trailer fields are read and dropped.

export class ChunkedError extends Error {}

const enum Step {
  Size,
  Data,
  DataCr,
  DataLf,
  Trailers,
  Done,
}

const CR = 13;
const LF = 10;
/** Longest size or trailer line accepted. */
const MAX_LINE = 8192;

export class ChunkedDecoder {
  private step = Step.Size;
  private remaining = 0;
  private line = '';

  get done(): boolean {
    return this.step === Step.Done;
  }

  /**
   * Feeds bytes from `pos`; calls `onData` for each data piece and returns the position after
   * the last byte consumed (it stops at the end of the coding). Throws ChunkedError.
   */
  feed(buf: Buffer, pos: number, onData: (piece: Buffer) => void): number {
    const end = buf.length;
    while (pos < end && this.step !== Step.Done) {
      switch (this.step) {
        case Step.Size:
        case Step.Trailers: {
          const lf = buf.indexOf(LF, pos);
          const stop = lf < 0 ? end : lf;
          this.line += buf.toString('latin1', pos, stop);
          if (this.line.length > MAX_LINE) throw new ChunkedError('chunked body: line too long');
          if (lf < 0) return end;
          pos = lf + 1;
          let line = this.line;
          this.line = '';
          if (line.charCodeAt(line.length - 1) !== CR) throw new ChunkedError('chunked body: line not ended by CRLF');
          line = line.slice(0, -1);
          if (this.step === Step.Trailers) {
            if (line.length === 0) this.step = Step.Done;
            break;
          }
          const semi = line.indexOf(';');
          const hex = semi < 0 ? line : line.slice(0, semi);
          if (!/^[0-9a-fA-F]{1,12}$/.test(hex.trimEnd())) throw new ChunkedError(`chunked body: invalid chunk size ${JSON.stringify(hex.slice(0, 20))}`);
          const size = parseInt(hex, 16);
          if (size === 0) this.step = Step.Trailers;
          else {
            this.remaining = size;
            this.step = Step.Data;
          }
          break;
        }
        case Step.Data: {
          const n = Math.min(this.remaining, end - pos);
          onData(buf.subarray(pos, pos + n));
          pos += n;
          this.remaining -= n;
          if (this.remaining === 0) this.step = Step.DataCr;
          break;
        }
        case Step.DataCr:
          if (buf[pos++] !== CR) throw new ChunkedError('chunked body: missing CRLF after chunk data');
          this.step = Step.DataLf;
          break;
        case Step.DataLf:
          if (buf[pos++] !== LF) throw new ChunkedError('chunked body: missing CRLF after chunk data');
          this.step = Step.Size;
          break;
      }
    }
    return pos;
  }
}
