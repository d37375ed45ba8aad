// Topic `kv@<pod>@<model>`: the middle part names the pod verbatim (`ip` or `ip:port`), and
// the model is everything after the second '@' (model names may contain '@').

export interface ParsedTopic {
  prefix: string;
  pod: string;
  model: string;
}

/** Parses a topic. Without two '@' separators the whole topic is the pod and the model is '' (as llm-d). */
export function parseTopic(topic: string): ParsedTopic {
  const a = topic.indexOf('@');
  const b = a < 0 ? -1 : topic.indexOf('@', a + 1);
  if (a < 0 || b < 0) return { prefix: '', pod: topic, model: '' };
  return { prefix: topic.slice(0, a), pod: topic.slice(a + 1, b), model: topic.slice(b + 1) };
}

/** Splits `host:port`, `[v6]:port`, or a bare host (port null). */
export function splitHostPort(ep: string): { host: string; port: number | null } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(ep) ?? /^([^:]+):(\d+)$/.exec(ep);
  if (m) return { host: m[1], port: Number(m[2]) };
  return { host: ep.replace(/^\[(.*)\]$/, '$1'), port: null };
}

/**
 * The pod identity of data-parallel rank `rank` of `pod`: rank r of `ip:port` is
 * `ip:(port+r)`, as vLLM offsets its endpoints. A pod without a port keeps its id.
 */
export function podForRank(pod: string, rank: number | null | undefined): string {
  if (!rank) return pod;
  const { host, port } = splitHostPort(pod);
  if (port === null) return pod;
  const h = host.includes(':') ? `[${host}]` : host;
  return `${h}:${port + rank}`;
}

/** vLLM's offset_endpoint_port: tcp endpoints get rank added to the port, inproc gets `_dp<rank>`. */
export function offsetEndpointPort(endpoint: string, rank: number): string {
  if (!rank) return endpoint;
  if (endpoint.includes('inproc')) return `${endpoint}_dp${rank}`;
  if (endpoint.includes('tcp')) {
    const i = endpoint.lastIndexOf(':');
    const port = Number(endpoint.slice(i + 1));
    if (!Number.isInteger(port)) throw new RangeError(`endpoint has no numeric port: ${endpoint}`);
    return `${endpoint.slice(0, i + 1)}${port + rank}`;
  }
  throw new RangeError(`cannot offset endpoint for data-parallel rank: ${endpoint}`);
}
