// Hand-written SVG line charts (no chart library): one line per series, linear or log y axis.

export interface Series {
  name: string;
  points: [number, number][];
  dashed?: boolean;
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** 'auto': log scale when the positive values span more than 50x. */
  yScale?: 'linear' | 'log' | 'auto';
  width?: number;
  height?: number;
  yMin?: number;
  yMax?: number;
}

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export function fmtNum(v: number): string {
  if (!Number.isFinite(v)) return '-';
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a === 0) return '0';
  return v.toPrecision(2);
}

export function lineChart(spec: ChartSpec): string {
  const W = spec.width ?? 720;
  const H = spec.height ?? 420;
  const m = { l: 70, r: 200, t: 40, b: 50 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const pts = spec.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const xMin = xs.length ? Math.min(...xs) : 0;
  const xMax = xs.length ? Math.max(...xs) : 1;
  const pos = ys.filter((y) => y > 0);
  const log =
    spec.yScale === 'log' || (spec.yScale !== 'linear' && pos.length > 1 && Math.max(...pos) / Math.min(...pos) > 50);
  let yLo: number;
  let yHi: number;
  if (log) {
    yLo = Math.pow(10, Math.floor(Math.log10(pos.length ? Math.min(...pos) : 1)));
    yHi = Math.pow(10, Math.ceil(Math.log10(pos.length ? Math.max(...pos) : 10)));
    if (yHi === yLo) yHi = yLo * 10;
  } else {
    yLo = spec.yMin ?? 0;
    yHi = spec.yMax ?? (ys.length ? Math.max(...ys) * 1.08 : 1);
    if (!(yHi > yLo)) yHi = yLo + 1;
  }
  const xPad = xMax > xMin ? 0 : 1;
  const X = (x: number) => m.l + ((x - (xMin - xPad)) / (xMax + xPad - (xMin - xPad))) * pw;
  const Y = (y: number) => {
    const f = log ? (Math.log10(Math.max(y, yLo)) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo)) : (y - yLo) / (yHi - yLo);
    return m.t + ph - f * ph;
  };
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(spec.title)}</text>`);
  // Grid and axes.
  const yTicks = log
    ? Array.from({ length: Math.round(Math.log10(yHi / yLo)) + 1 }, (_, i) => yLo * Math.pow(10, i))
    : niceTicks(yLo, yHi);
  for (const t of yTicks) {
    const y = Y(t);
    out.push(`<line x1="${m.l}" y1="${y.toFixed(1)}" x2="${m.l + pw}" y2="${y.toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.l - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${fmtNum(t)}</text>`);
  }
  const xTicks = [...new Set(xs)].sort((a, b) => a - b);
  const xTickList = xTicks.length <= 12 ? xTicks : niceTicks(xMin, xMax, 8);
  for (const t of xTickList) {
    const x = X(t);
    out.push(`<line x1="${x.toFixed(1)}" y1="${m.t}" x2="${x.toFixed(1)}" y2="${m.t + ph}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${x.toFixed(1)}" y="${m.t + ph + 16}" text-anchor="middle">${fmtNum(t)}</text>`);
  }
  out.push(`<line x1="${m.l}" y1="${m.t + ph}" x2="${m.l + pw}" y2="${m.t + ph}" stroke="#333"/>`);
  out.push(`<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${m.t + ph}" stroke="#333"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(spec.xLabel)}</text>`);
  out.push(
    `<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}${log ? ' (log scale)' : ''}</text>`,
  );
  // Lines.
  spec.series.forEach((s, i) => {
    const color = s.dashed ? '#444' : PALETTE[i % PALETTE.length];
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!log || y > 0)).sort((a, b) => a[0] - b[0]);
    if (p.length > 0) {
      const d = p.map(([x, y], k) => `${k ? 'L' : 'M'}${X(x).toFixed(1)} ${Y(y).toFixed(1)}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}><title>${esc(s.name)}</title></path>`);
      for (const [x, y] of p) {
        out.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3" fill="${color}"><title>${esc(s.name)}: ${fmtNum(x)} -> ${fmtNum(y)}</title></circle>`);
      }
    }
    const ly = m.t + 10 + i * 18;
    out.push(`<line x1="${m.l + pw + 14}" y1="${ly}" x2="${m.l + pw + 38}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${m.l + pw + 44}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
