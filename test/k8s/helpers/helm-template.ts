// `helm template` for tests, where no helm binary exists: a Go text/template interpreter for the
// subset our chart uses (actions with {{- -}} trimming, comments, if/else if/else, range, with,
// define/include, pipelines, parenthesised calls, . / $ / field chains) and Helm's functions
// the chart calls (toYaml, nindent, indent, default, quote, printf, print, trunc, trimSuffix,
// required, eq, ne, not, and, or, sha256sum, empty). Unknown functions and syntax are errors,
// so a chart edit beyond this subset fails loudly instead of rendering wrong.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml';

type Value = unknown;

// ---------- lexing ----------

type Piece = { kind: 'text'; text: string } | { kind: 'action'; src: string; pos: number };

function lex(src: string, file: string): Piece[] {
  const out: Piece[] = [];
  let i = 0;
  let trimNext = false;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    let text = open < 0 ? src.slice(i) : src.slice(i, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    trimNext = false;
    if (open < 0) {
      if (text) out.push({ kind: 'text', text });
      break;
    }
    const trimPrev = src[open + 2] === '-' && /\s/.test(src[open + 3] ?? '');
    if (trimPrev) text = text.replace(/\s+$/, '');
    if (text) out.push({ kind: 'text', text });
    const start = open + (trimPrev ? 3 : 2);
    // Find the closing }} outside string literals.
    let j = start;
    let quote: string | null = null;
    for (; j < src.length; j++) {
      const c = src[j];
      if (quote) {
        if (c === '\\' && quote === '"') j++;
        else if (c === quote) quote = null;
      } else if (c === '"' || c === '`') quote = c;
      else if (c === '}' && src[j + 1] === '}') break;
    }
    if (j >= src.length) throw new Error(`${file}: unclosed action at ${open}`);
    let inner = src.slice(start, j);
    if (/\s-$/.test(inner)) {
      inner = inner.slice(0, -1);
      trimNext = true;
    }
    inner = inner.trim();
    if (!(inner.startsWith('/*') && inner.endsWith('*/'))) out.push({ kind: 'action', src: inner, pos: open });
    i = j + 2;
  }
  return out;
}

// ---------- pipelines ----------

type Tok = { t: 'str' | 'num' | 'ident' | 'field' | 'var' | 'lp' | 'rp' | 'pipe' | 'bool' | 'nil'; v: string };

function tokenize(s: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '(') {
      toks.push({ t: 'lp', v: c });
      i++;
    } else if (c === ')') {
      toks.push({ t: 'rp', v: c });
      i++;
      // A field chain right after ")" is not supported.
    } else if (c === '|') {
      toks.push({ t: 'pipe', v: c });
      i++;
    } else if (c === '"') {
      let j = i + 1;
      let str = '';
      while (j < s.length && s[j] !== '"') {
        if (s[j] === '\\') {
          const n = s[j + 1];
          str += n === 'n' ? '\n' : n === 't' ? '\t' : n;
          j += 2;
        } else str += s[j++];
      }
      toks.push({ t: 'str', v: str });
      i = j + 1;
    } else if (c === '`') {
      const j = s.indexOf('`', i + 1);
      toks.push({ t: 'str', v: s.slice(i + 1, j) });
      i = j + 1;
    } else {
      const m = /^[^\s()|]+/.exec(s.slice(i))!;
      const w = m[0];
      i += w.length;
      if (/^-?\d+(\.\d+)?$/.test(w)) toks.push({ t: 'num', v: w });
      else if (w === 'true' || w === 'false') toks.push({ t: 'bool', v: w });
      else if (w === 'nil') toks.push({ t: 'nil', v: w });
      else if (w.startsWith('.')) toks.push({ t: 'field', v: w });
      else if (w.startsWith('$')) toks.push({ t: 'var', v: w });
      else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(w)) toks.push({ t: 'ident', v: w });
      else throw new Error(`unsupported token "${w}"`);
    }
  }
  return toks;
}

type Expr = { k: 'lit'; v: Value } | { k: 'field'; base: 'dot' | 'root'; path: string[] } | { k: 'call'; fn: string; args: Expr[] } | { k: 'pipe'; cmds: Expr[] };

function parsePipeline(toks: Tok[], pos: { i: number }, stopAtRp: boolean): Expr {
  const cmds: Expr[] = [];
  let cur: Expr[] = [];
  const flush = () => {
    if (cur.length === 0) throw new Error('empty command in pipeline');
    const [head, ...rest] = cur;
    if (head.k === 'call' && head.args.length === 0 && (head as { bare?: boolean }).bare) cmds.push({ k: 'call', fn: head.fn, args: rest });
    else if (rest.length === 0) cmds.push(head);
    else throw new Error('a non-function cannot take arguments');
    cur = [];
  };
  while (pos.i < toks.length) {
    const tk = toks[pos.i];
    if (tk.t === 'rp') {
      if (!stopAtRp) throw new Error('unexpected )');
      break;
    }
    pos.i++;
    if (tk.t === 'pipe') {
      flush();
      continue;
    }
    if (tk.t === 'lp') {
      cur.push(parsePipeline(toks, pos, true));
      if (toks[pos.i]?.t !== 'rp') throw new Error('missing )');
      pos.i++;
      continue;
    }
    cur.push(operand(tk));
  }
  flush();
  return cmds.length === 1 ? cmds[0] : { k: 'pipe', cmds };
}

function operand(tk: Tok): Expr {
  switch (tk.t) {
    case 'str':
      return { k: 'lit', v: tk.v };
    case 'num':
      return { k: 'lit', v: Number(tk.v) };
    case 'bool':
      return { k: 'lit', v: tk.v === 'true' };
    case 'nil':
      return { k: 'lit', v: null };
    case 'field':
      return { k: 'field', base: 'dot', path: tk.v === '.' ? [] : tk.v.slice(1).split('.') };
    case 'var':
      if (tk.v !== '$' && !tk.v.startsWith('$.')) throw new Error(`variables other than $ are not supported (${tk.v})`);
      return { k: 'field', base: 'root', path: tk.v === '$' ? [] : tk.v.slice(2).split('.') };
    case 'ident': {
      const e = { k: 'call' as const, fn: tk.v, args: [] as Expr[], bare: true };
      return e;
    }
    default:
      throw new Error(`unexpected token ${tk.v}`);
  }
}

function parseExpr(src: string): Expr {
  const toks = tokenize(src);
  const pos = { i: 0 };
  const e = parsePipeline(toks, pos, false);
  if (pos.i !== toks.length) throw new Error(`trailing tokens in "${src}"`);
  return e;
}

// ---------- tree ----------

type Node =
  | { n: 'text'; text: string }
  | { n: 'out'; e: Expr }
  | { n: 'if'; branches: Array<{ cond: Expr; body: Node[] }>; else: Node[] }
  | { n: 'range' | 'with'; e: Expr; body: Node[]; else: Node[] };

function build(pieces: Piece[], defines: Map<string, Node[]>, file: string): Node[] {
  let i = 0;
  function block(): { nodes: Node[]; end: string } {
    const nodes: Node[] = [];
    while (i < pieces.length) {
      const p = pieces[i++];
      if (p.kind === 'text') {
        nodes.push({ n: 'text', text: p.text });
        continue;
      }
      const s = p.src;
      const kw = /^(if|else if|else|end|range|with|define)\b\s*(.*)$/s.exec(s);
      try {
        if (!kw) {
          nodes.push({ n: 'out', e: parseExpr(s) });
          continue;
        }
        const [, word, rest] = kw;
        if (word === 'end' || word === 'else' || word === 'else if') return { nodes, end: word === 'else if' ? `else if ${rest}` : word };
        if (word === 'define') {
          const name = /^"([^"]+)"$/.exec(rest.trim())?.[1];
          if (!name) throw new Error('define needs a quoted name');
          const b = block();
          if (b.end !== 'end') throw new Error('define must end with end');
          defines.set(name, b.nodes);
          continue;
        }
        if (word === 'if') {
          const branches = [{ cond: parseExpr(rest), body: [] as Node[] }];
          let els: Node[] = [];
          for (;;) {
            const b = block();
            if (b.end === 'end') {
              if (els === branches[branches.length - 1].body) break;
              branches[branches.length - 1].body = b.nodes;
              break;
            }
            branches[branches.length - 1].body = b.nodes;
            if (b.end.startsWith('else if ')) {
              branches.push({ cond: parseExpr(b.end.slice(8)), body: [] });
              continue;
            }
            // plain else
            const e2 = block();
            if (e2.end !== 'end') throw new Error('else must be followed by end');
            els = e2.nodes;
            break;
          }
          nodes.push({ n: 'if', branches, else: els });
          continue;
        }
        // range / with
        if (/:=/.test(rest)) throw new Error(`variable declarations are not supported: ${s}`);
        const e = parseExpr(rest);
        const b = block();
        let els: Node[] = [];
        if (b.end === 'else') {
          const e2 = block();
          if (e2.end !== 'end') throw new Error(`${word} else must end with end`);
          els = e2.nodes;
        } else if (b.end !== 'end') throw new Error(`${word} cannot have ${b.end}`);
        nodes.push({ n: word as 'range' | 'with', e, body: b.nodes, else: els });
      } catch (err) {
        throw new Error(`${file}: {{ ${s} }}: ${(err as Error).message}`, { cause: err });
      }
    }
    return { nodes, end: 'eof' };
  }
  const top = block();
  if (top.end !== 'eof') throw new Error(`${file}: unexpected {{ ${top.end} }}`);
  return top.nodes;
}

// ---------- evaluation ----------

function truthy(v: Value): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

function toText(v: Value): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return Array.isArray(v) ? `[${v.map(toText).join(' ')}]` : `map[${Object.entries(v as object).map(([k, x]) => `${k}:${toText(x)}`).join(' ')}]`;
  return String(v);
}

function toYaml(v: Value): string {
  if (v === null || v === undefined) return 'null';
  return stringify(v, { lineWidth: 0 }).replace(/\n$/, '');
}

function indentText(n: number, s: string): string {
  const pad = ' '.repeat(n);
  return s
    .split('\n')
    .map((l) => pad + l)
    .join('\n');
}

function sprintf(fmt: string, args: Value[]): string {
  let i = 0;
  return fmt.replace(/%[svdq%]/g, (m) => {
    if (m === '%%') return '%';
    const a = args[i++];
    return m === '%q' ? JSON.stringify(toText(a)) : toText(a);
  });
}

interface Ctx {
  dot: Value;
  root: Value;
}

export class TemplateSet {
  readonly defines = new Map<string, Node[]>();
  private readonly files = new Map<string, Node[]>();

  add(name: string, src: string): void {
    this.files.set(name, build(lex(src, name), this.defines, name));
  }

  render(name: string, data: Value): string {
    const nodes = this.files.get(name);
    if (!nodes) throw new Error(`no template ${name}`);
    return this.exec(nodes, { dot: data, root: data });
  }

  private exec(nodes: Node[], ctx: Ctx): string {
    let out = '';
    for (const node of nodes) {
      switch (node.n) {
        case 'text':
          out += node.text;
          break;
        case 'out':
          out += toText(this.eval(node.e, ctx));
          break;
        case 'if': {
          const hit = node.branches.find((b) => truthy(this.eval(b.cond, ctx)));
          out += this.exec(hit ? hit.body : node.else, ctx);
          break;
        }
        case 'with': {
          const v = this.eval(node.e, ctx);
          out += truthy(v) ? this.exec(node.body, { dot: v, root: ctx.root }) : this.exec(node.else, ctx);
          break;
        }
        case 'range': {
          const v = this.eval(node.e, ctx);
          const items = Array.isArray(v) ? v : v && typeof v === 'object' ? Object.keys(v).sort().map((k) => (v as Record<string, Value>)[k]) : [];
          if (items.length === 0) out += this.exec(node.else, ctx);
          for (const it of items) out += this.exec(node.body, { dot: it, root: ctx.root });
          break;
        }
      }
    }
    return out;
  }

  private eval(e: Expr, ctx: Ctx, piped?: { v: Value }): Value {
    switch (e.k) {
      case 'lit':
        if (piped) throw new Error('cannot pipe into a literal');
        return e.v;
      case 'field': {
        if (piped) throw new Error('cannot pipe into a field');
        let v: Value = e.base === 'dot' ? ctx.dot : ctx.root;
        for (const p of e.path) v = v && typeof v === 'object' ? (v as Record<string, Value>)[p] : undefined;
        return v;
      }
      case 'pipe': {
        let v = this.eval(e.cmds[0], ctx);
        for (const c of e.cmds.slice(1)) v = this.eval(c, ctx, { v });
        return v;
      }
      case 'call': {
        const args = e.args.map((a) => this.eval(a, ctx));
        if (piped) args.push(piped.v);
        return this.call(e.fn, args);
      }
    }
  }

  private call(fn: string, a: Value[]): Value {
    switch (fn) {
      case 'include': {
        const body = this.defines.get(String(a[0]));
        if (!body) throw new Error(`include: no template "${String(a[0])}"`);
        return this.exec(body, { dot: a[1], root: a[1] });
      }
      case 'toYaml':
        return toYaml(a[0]);
      case 'nindent':
        return '\n' + indentText(Number(a[0]), toText(a[1]));
      case 'indent':
        return indentText(Number(a[0]), toText(a[1]));
      case 'default':
        return truthy(a[1]) ? a[1] : a[0];
      case 'quote':
        return a.map((x) => JSON.stringify(toText(x))).join(' ');
      case 'printf':
        return sprintf(String(a[0]), a.slice(1));
      case 'print':
        return a.map(toText).join('');
      case 'trunc': {
        const s = toText(a[1]);
        return s.slice(0, Number(a[0]));
      }
      case 'trimSuffix': {
        const s = toText(a[1]);
        const suf = String(a[0]);
        return suf && s.endsWith(suf) ? s.slice(0, -suf.length) : s;
      }
      case 'required':
        if (!truthy(a[1])) throw new Error(`required: ${String(a[0])}`);
        return a[1];
      case 'eq':
        return a.slice(1).some((x) => x === a[0]);
      case 'ne':
        return a[0] !== a[1];
      case 'not':
        return !truthy(a[0]);
      case 'and':
        return a.reduce((acc, x) => (truthy(acc) ? x : acc));
      case 'or':
        return a.find(truthy) ?? a[a.length - 1];
      case 'empty':
        return !truthy(a[0]);
      case 'sha256sum':
        return createHash('sha256').update(toText(a[0])).digest('hex');
      default:
        throw new Error(`function "${fn}" is not supported by the test renderer`);
    }
  }
}

function deepMerge(base: Value, over: Value): Value {
  if (over === undefined) return base;
  if (base && over && typeof base === 'object' && typeof over === 'object' && !Array.isArray(base) && !Array.isArray(over)) {
    const out: Record<string, Value> = { ...(base as Record<string, Value>) };
    for (const [k, v] of Object.entries(over as Record<string, Value>)) out[k] = deepMerge(out[k], v);
    return out;
  }
  return over;
}

export interface RenderedManifest {
  source: string;
  doc: Record<string, unknown>;
}

/** Renders a chart directory like `helm template <release> <chart> -n <ns> [--set ...]`. */
export function helmTemplate(chartDir: string, release: { name: string; namespace: string }, overrides: Record<string, unknown> = {}): { manifests: RenderedManifest[]; notes: string } {
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, string>;
  const values = deepMerge(parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8')), overrides);
  const ts = new TemplateSet();
  const tdir = join(chartDir, 'templates');
  const files = readdirSync(tdir).sort();
  const base = `${chart.name}/templates`;
  for (const f of files) ts.add(`${base}/${f}`, readFileSync(join(tdir, f), 'utf8'));
  const manifests: RenderedManifest[] = [];
  let notes = '';
  for (const f of files) {
    if (f.startsWith('_')) continue;
    const name = `${base}/${f}`;
    const data = {
      Values: values,
      Release: { Name: release.name, Namespace: release.namespace, Service: 'Helm', IsInstall: true, IsUpgrade: false, Revision: 1 },
      Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion, ApiVersion: chart.apiVersion },
      Template: { Name: name, BasePath: base },
      Capabilities: { KubeVersion: { Version: 'v1.32.0', Major: '1', Minor: '32' } },
    };
    // `include (print $.Template.BasePath "/x.yaml") .` resolves file templates by path.
    for (const g of files) if (!g.startsWith('_')) ts.defines.set(`${base}/${g}`, (ts as unknown as { files: Map<string, Node[]> }).files.get(`${base}/${g}`)!);
    const text = ts.render(name, data);
    if (f === 'NOTES.txt') {
      notes = text;
      continue;
    }
    for (const d of parseAllDocuments(text)) {
      if (d.errors.length) throw new Error(`${name}: rendered YAML does not parse: ${d.errors[0].message}\n${text}`);
      const doc = d.toJS() as Record<string, unknown> | null;
      if (doc) manifests.push({ source: name, doc });
    }
  }
  return { manifests, notes };
}
