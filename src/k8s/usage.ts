// Reads token usage out of a response body as it streams through the picker: the last SSE
// `data:` event carrying a non-null `usage` (stream_options.include_usage), or the `usage`
// object of a plain JSON response. Only what is needed is kept: for SSE, the unfinished last
// line; for JSON, the body up to a cap.

export interface Usage {
  promptTokens?: number;
  completionTokens?: number;
  cachedTokens?: number;
}

const MAX_JSON_BYTES = 4 * 1024 * 1024;
const MAX_LINE_BYTES = 1024 * 1024;

function readUsage(obj: unknown): Usage | undefined {
  if (!obj || typeof obj !== 'object') return undefined;
  const u = (obj as { usage?: unknown }).usage;
  if (!u || typeof u !== 'object') return undefined;
  const r = u as { prompt_tokens?: unknown; completion_tokens?: unknown; prompt_tokens_details?: { cached_tokens?: unknown } | null };
  const out: Usage = {};
  if (typeof r.prompt_tokens === 'number') out.promptTokens = r.prompt_tokens;
  if (typeof r.completion_tokens === 'number') out.completionTokens = r.completion_tokens;
  const cached = r.prompt_tokens_details?.cached_tokens;
  if (typeof cached === 'number') out.cachedTokens = cached;
  return out;
}

export class UsageReader {
  private usage: Usage | undefined;
  private carry = '';
  private json: Buffer[] = [];
  private jsonBytes = 0;
  private overflow = false;

  /** @param sse true when the response is `text/event-stream`. */
  constructor(private readonly sse: boolean) {}

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (!this.sse) {
      if (this.overflow) return;
      this.jsonBytes += chunk.length;
      if (this.jsonBytes > MAX_JSON_BYTES) {
        this.overflow = true;
        this.json = [];
        return;
      }
      this.json.push(Buffer.from(chunk));
      return;
    }
    const text = this.carry + Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      this.line(text.slice(start, nl));
      start = nl + 1;
    }
    this.carry = text.length - start > MAX_LINE_BYTES ? '' : text.slice(start);
  }

  private line(raw: string): void {
    // Cheap test first: only usage-bearing events are parsed.
    if (!raw.startsWith('data:') || !raw.includes('"usage"')) return;
    const payload = raw.slice(5).trim();
    if (!payload.startsWith('{')) return;
    try {
      const u = readUsage(JSON.parse(payload));
      if (u) this.usage = u;
    } catch {
      // Not JSON after all: not a usage event.
    }
  }

  /** Usage once the body is complete (undefined when the response carried none). */
  finish(): Usage | undefined {
    if (this.sse) {
      if (this.carry) this.line(this.carry);
      this.carry = '';
      return this.usage;
    }
    if (this.overflow || this.json.length === 0) return undefined;
    try {
      return readUsage(JSON.parse(Buffer.concat(this.json).toString('utf8')));
    } catch {
      return undefined;
    } finally {
      this.json = [];
    }
  }
}
