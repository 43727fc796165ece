// SVG charts: the log volume histogram (stacked by level) and metric time series.

const NS = 'http://www.w3.org/2000/svg';
const LEVEL_COLOURS = {
  critical: '#b71c1c', fatal: '#b71c1c', error: '#c62828', warn: '#e39b00', warning: '#e39b00',
  info: '#2e7d32', debug: '#6d7fa0', trace: '#9aa5b4', unknown: '#8d99a6',
};
const PALETTE = ['#2f6fdd', '#e8590c', '#2b8a3e', '#c2255c', '#6741d9', '#0c8599', '#f08c00',
  '#5c940d', '#a61e4d', '#364fc7'];

function el(name, attrs = {}, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function niceTicks(max, n = 4) {
  if (max <= 0) return [0];
  const raw = max / n;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw);
  const ticks = [];
  for (let v = 0; v <= max * 1.0001; v += step) ticks.push(v);
  return ticks;
}

function fmtNum(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(2)}k`;
  return `${+v.toFixed(3)}`;
}

function fmtTime(ms, span) {
  const d = new Date(ms);
  const p = (x) => String(x).padStart(2, '0');
  const hm = `${p(d.getHours())}:${p(d.getMinutes())}`;
  if (span > 2 * 86400e3) return `${d.getMonth() + 1}/${d.getDate()} ${hm}`;
  return span < 600e3 ? `${hm}:${p(d.getSeconds())}` : hm;
}

/** Axes and grid for [t0, t1] × [0, ymax]; returns the coordinate mappers. */
function frame(svg, w, h, t0, t1, ymax) {
  const m = { l: 48, r: 8, t: 6, b: 20 };
  const x = (t) => m.l + ((t - t0) / Math.max(t1 - t0, 1)) * (w - m.l - m.r);
  const ticks = niceTicks(ymax);
  const top = ticks[ticks.length - 1] || 1;
  const y = (v) => h - m.b - (v / top) * (h - m.t - m.b);
  for (const v of ticks) {
    el('line', { class: 'grid', x1: m.l, x2: w - m.r, y1: y(v), y2: y(v) }, svg);
    el('text', { x: m.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, svg).textContent = fmtNum(v);
  }
  for (let i = 0; i <= 5; i++) {
    const t = t0 + ((t1 - t0) * i) / 5;
    el('text', { x: x(t), y: h - 4, 'text-anchor': i === 0 ? 'start' : i === 5 ? 'end' : 'middle' }, svg)
      .textContent = fmtTime(t, t1 - t0);
  }
  return { x, y };
}

function legend(items) {
  const div = document.createElement('div');
  div.className = 'legend';
  for (const { name, colour } of items) {
    const s = document.createElement('span');
    const i = document.createElement('i');
    i.style.background = colour;
    s.append(i, name);
    div.appendChild(s);
  }
  return div;
}

/**
 * Stacked bars: `series` is [{level, points: [[ms, count]]}], `stepMs` the bar width.
 * Returns the element to insert.
 */
export function histogram(series, t0, t1, stepMs, width) {
  const h = 110;
  const svg = el('svg', { class: 'histogram', width, height: h, role: 'img' });
  const totals = new Map();
  for (const s of series) for (const [t, v] of s.points) totals.set(t, (totals.get(t) || 0) + v);
  const ymax = Math.max(0, ...totals.values());
  const { x, y } = frame(svg, width, h, t0, t1, ymax);
  const base = new Map();
  const order = [...series].sort((a, b) => a.level.localeCompare(b.level));
  for (const s of order) {
    const colour = LEVEL_COLOURS[s.level] || LEVEL_COLOURS.unknown;
    for (const [t, v] of s.points) {
      const b = base.get(t) || 0;
      // Each point counts the step that ends at t.
      const x0 = x(t - stepMs), x1 = x(t);
      el('rect', {
        class: 'bar', x: x0, width: Math.max(x1 - x0 - 1, 1), y: y(b + v), height: y(b) - y(b + v),
        fill: colour, 'data-level': s.level,
      }, svg).appendChild(el('title')).textContent = `${s.level}: ${v}`;
      base.set(t, b + v);
    }
  }
  const total = [...totals.values()].reduce((a, b) => a + b, 0);
  svg.setAttribute('aria-label', `Log volume: ${total} lines`);
  const wrap = document.createElement('div');
  wrap.append(svg, legend(order.map((s) => ({ name: s.level, colour: LEVEL_COLOURS[s.level] || LEVEL_COLOURS.unknown }))));
  return wrap;
}

/** Line chart of a matrix result: `series` is [{name, points: [[ms, value]]}]. */
export function lines(series, t0, t1, width) {
  const h = 260;
  const svg = el('svg', { class: 'timeseries', width, height: h, role: 'img' });
  let ymax = 0;
  for (const s of series) for (const [, v] of s.points) if (Number.isFinite(v)) ymax = Math.max(ymax, v);
  const { x, y } = frame(svg, width, h, t0, t1, ymax);
  const items = [];
  series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    let d = '';
    let prev = null;
    for (const [t, v] of s.points) {
      if (!Number.isFinite(v)) { prev = null; continue; }
      d += `${prev === null ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      prev = t;
    }
    el('path', { class: 'series', d, fill: 'none', stroke: colour, 'stroke-width': 1.5 }, svg)
      .appendChild(el('title')).textContent = s.name;
    items.push({ name: s.name, colour });
  });
  svg.setAttribute('aria-label', `Graph of ${series.length} series`);
  const wrap = document.createElement('div');
  wrap.append(svg, legend(items));
  return wrap;
}
