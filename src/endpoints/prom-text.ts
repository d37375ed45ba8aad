// A Prometheus text exposition (0.0.4) parser: enough of the format to read any vLLM or
// SGLang /metrics page (comments, labels with escapes, +Inf/NaN, optional timestamps).

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseValue(s: string): number {
  switch (s) {
    case '+Inf':
    case 'Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
    case 'NaN':
      return NaN;
    default:
      return Number(s);
  }
}

/** Parses every sample; malformed lines are skipped and counted in `errors`. */
export function parsePrometheusText(text: string, onlyNames?: ReadonlySet<string>): { samples: Sample[]; errors: number } {
  const samples: Sample[] = [];
  let errors = 0;
  let pos = 0;
  const n = text.length;
  while (pos < n) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = n;
    const line = text.slice(pos, end).trim();
    pos = end + 1;
    if (line === '' || line.charCodeAt(0) === 35 /* # */) continue;
    let i = 0;
    while (i < line.length && line[i] !== '{' && line[i] !== ' ' && line[i] !== '\t') i++;
    const name = line.slice(0, i);
    if (!name) {
      errors++;
      continue;
    }
    if (onlyNames && !onlyNames.has(name)) continue;
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i++;
      let ok = true;
      while (true) {
        while (line[i] === ' ' || line[i] === ',') i++;
        if (line[i] === '}') {
          i++;
          break;
        }
        const eq = line.indexOf('=', i);
        if (eq < 0 || line[eq + 1] !== '"') {
          ok = false;
          break;
        }
        const key = line.slice(i, eq).trim();
        let j = eq + 2;
        let val = '';
        while (j < line.length && line[j] !== '"') {
          if (line[j] === '\\' && j + 1 < line.length) {
            const c = line[j + 1];
            val += c === 'n' ? '\n' : c;
            j += 2;
          } else val += line[j++];
        }
        if (j >= line.length) {
          ok = false;
          break;
        }
        labels[key] = val;
        i = j + 1;
      }
      if (!ok) {
        errors++;
        continue;
      }
    }
    const rest = line.slice(i).trim().split(/\s+/);
    const value = parseValue(rest[0] ?? '');
    if (rest[0] === undefined || rest[0] === '' || (Number.isNaN(value) && rest[0] !== 'NaN')) {
      errors++;
      continue;
    }
    samples.push({ name, labels, value });
  }
  return { samples, errors };
}
