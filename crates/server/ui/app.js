// Explore view: query editor, time range, volume histogram, log lines, graphs, live tail.
// State lives in the URL (?query=…&from=…&to=…&limit=…), so a link reopens the same view.

import { highlight, errorOffset, filterStage } from './logql.js';
import { histogram, lines } from './chart.js';
import { renderLines, entriesOf, fmtNs } from './view.js';
import { showStatus } from './status.js';
import { attach } from './complete.js';

const $ = (id) => document.getElementById(id);
const UNITS = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 };
let shown = [];
let live = null;
let authEnabled = false;
let refreshTimer = null;

/** Milliseconds of `now`, `now-15m`, RFC 3339, or epoch seconds/ms/ns; NaN if none. */
export function parseTime(s, now = Date.now()) {
  s = String(s || '').trim();
  const rel = /^now(?:\s*([-+])\s*(\d+(?:\.\d+)?)([smhdw]))?$/.exec(s);
  if (rel) return rel[1] ? now + (rel[1] === '-' ? -1 : 1) * Number(rel[2]) * UNITS[rel[3]] : now;
  if (/^\d+(\.\d+)?$/.test(s)) {
    const n = Number(s);
    return n > 1e17 ? n / 1e6 : n > 1e11 ? n : n * 1e3;
  }
  return Date.parse(s);
}

function headers() {
  const h = { 'X-Loki-Response-Encoding-Flags': 'categorize-labels' };
  const t = $('tenant').value.trim();
  if (authEnabled && t) h['X-Scope-OrgID'] = t;
  return h;
}

async function api(path, params) {
  const res = await fetch(`${path}?${new URLSearchParams(params)}`, { headers: headers() });
  const text = await res.text();
  if (!res.ok) throw new Error(text.trim() || `${res.status} ${res.statusText}`);
  return JSON.parse(text);
}

function paint(errAt = -1) {
  $('highlight').innerHTML = highlight($('query').value, errAt);
}

function showError(msg) {
  const box = $('error');
  box.hidden = !msg;
  box.textContent = msg || '';
  paint(msg ? errorOffset($('query').value, msg) : -1);
}

function range() {
  const now = Date.now();
  const t0 = parseTime($('from').value, now);
  const t1 = parseTime($('to').value, now);
  if (!Number.isFinite(t0) || !Number.isFinite(t1)) {
    throw new Error('From and To take "now", "now-1h" (s, m, h, d, w), RFC 3339 or epoch time.');
  }
  if (t0 >= t1) throw new Error('From must be before To.');
  return [t0, t1];
}

function saveUrl() {
  const p = new URLSearchParams();
  p.set('query', $('query').value);
  p.set('from', $('from').value);
  p.set('to', $('to').value);
  p.set('limit', $('limit').value);
  if (authEnabled && $('tenant').value) p.set('tenant', $('tenant').value);
  if ($('refresh').value) p.set('refresh', $('refresh').value);
  history.replaceState(null, '', `?${p}${location.hash}`);
}

const ns = (ms) => (BigInt(Math.round(ms)) * 1000000n).toString();

/** The current range as API parameters, or none when it does not parse. */
function rangeParams() {
  try {
    const [t0, t1] = range();
    return { start: ns(t0), end: ns(t1) };
  } catch {
    return {};
  }
}

async function run() {
  stopLive();
  saveUrl();
  showError('');
  const q = $('query').value.trim();
  document.body.dataset.state = 'running';
  for (const id of ['volume', 'graph', 'logs']) $(id).hidden = true;
  if (!q) { document.body.dataset.state = 'done'; return; }
  try {
    const [t0, t1] = range();
    const width = Math.max($('explore').clientWidth - 32, 300);
    const step = Math.max(1, Math.ceil((t1 - t0) / 1000 / 250));
    const res = await api('/loki/api/v1/query_range', {
      query: q, start: ns(t0), end: ns(t1), limit: $('limit').value, direction: 'backward', step: `${step}s`,
    });
    const data = res.data;
    if (data.resultType === 'streams') {
      showLines(entriesOf(data.result));
      await showVolume(q, t0, t1, width);
    } else {
      const series = (data.resultType === 'matrix' ? data.result : []).map((s) => ({
        name: labelString(s.metric),
        points: s.values.map(([t, v]) => [t * 1000, Number(v)]),
      }));
      $('graph').replaceChildren(lines(series, t0, t1, width));
      $('graph').hidden = false;
    }
  } catch (e) {
    showError(e.message);
  }
  document.body.dataset.state = 'done';
}

function labelString(m) {
  const parts = Object.entries(m || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `{${parts.join(', ')}}`;
}

function showLines(entries) {
  shown = entries;
  renderLines($('lines'), entries, addFilter);
  $('summary').textContent = `${entries.length} lines`;
  $('logs').hidden = false;
}

async function showVolume(q, t0, t1, width) {
  const step = Math.max(1, Math.ceil((t1 - t0) / 1000 / 100));
  const res = await api('/loki/api/v1/query_range', {
    query: `sum by (detected_level) (count_over_time(${q} [${step}s]))`,
    start: ns(t0), end: ns(t1), step: `${step}s`,
  });
  const series = res.data.result.map((s) => ({
    level: (s.metric.detected_level || 'unknown').toLowerCase(),
    points: s.values.map(([t, v]) => [t * 1000, Number(v)]),
  }));
  $('volume').replaceChildren(histogram(series, t0, t1, step * 1000, width));
  $('volume').hidden = false;
}

/** Re-runs the query every `refresh` (relative ranges move with the clock). */
function setRefresh() {
  clearInterval(refreshTimer);
  refreshTimer = null;
  const m = /^(\d+)([sm])$/.exec($('refresh').value);
  if (m) {
    refreshTimer = setInterval(() => {
      if (!live && document.body.dataset.state !== 'running') run();
    }, Number(m[1]) * UNITS[m[2]]);
  }
  saveUrl();
}

function addFilter(name, value, keep) {
  $('query').value = $('query').value.trim() + filterStage(name, value, keep);
  run();
}

function stopLive() {
  if (live) { live.close(); live = null; }
  $('live').setAttribute('aria-pressed', 'false');
}

function startLive() {
  const q = $('query').value.trim();
  if (!q) return;
  saveUrl();
  showError('');
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const params = new URLSearchParams({ query: q, limit: $('limit').value, start: ns(Date.now() - 60e3) });
  live = new WebSocket(`${proto}//${location.host}/loki/api/v1/tail?${params}`);
  $('live').setAttribute('aria-pressed', 'true');
  $('volume').hidden = true;
  $('graph').hidden = true;
  showLines([]);
  live.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    const add = entriesOf(msg.streams || []);
    showLines(add.concat(shown).slice(0, Number($('limit').value) || 1000));
  };
  live.onclose = (ev) => {
    if (live && ev.code !== 1000) {
      // Browsers cannot set X-Scope-OrgID on a WebSocket: with auth_enabled, only a
      // gateway in front that sets it makes live tail work.
      const hint = authEnabled ? ' (with auth_enabled, live tail needs a gateway that sets X-Scope-OrgID)' : '';
      showError(`Live tail closed: ${ev.reason || `code ${ev.code}`}${hint}`);
    }
    stopLive();
  };
}

function download() {
  const text = shown.map((e) => JSON.stringify({
    ts: fmtNs(e.ts), line: e.line, labels: e.stream, structured_metadata: e.meta, parsed: e.parsed,
  })).join('\n');
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text + '\n'], { type: 'application/x-ndjson' }));
  a.download = 'silt-logs.jsonl';
  a.click();
  URL.revokeObjectURL(a.href);
}

function route() {
  const status = location.hash === '#status';
  $('explore').hidden = status;
  $('status').hidden = !status;
  $('nav-explore').toggleAttribute('aria-current', !status);
  $('nav-status').toggleAttribute('aria-current', status);
  if (status) $('nav-status').setAttribute('aria-current', 'page');
  else $('nav-explore').setAttribute('aria-current', 'page');
  return status ? showStatus($('status-body'), headers) : Promise.resolve();
}

async function init() {
  const p = new URLSearchParams(location.search);
  try {
    const st = await (await fetch('/silt/api/v1/status')).json();
    authEnabled = !!st.auth_enabled;
  } catch { /* the explore view works without it */ }
  $('tenant-box').hidden = !authEnabled;
  $('tenant').value = p.get('tenant') || localStorage.getItem('silt.tenant') || '';
  $('tenant').addEventListener('change', () => localStorage.setItem('silt.tenant', $('tenant').value));
  $('query').value = p.get('query') || '';
  if (p.get('from')) $('from').value = p.get('from');
  if (p.get('to')) $('to').value = p.get('to');
  if (p.get('limit')) $('limit').value = p.get('limit');
  if ([...$('refresh').options].some((o) => o.value === p.get('refresh'))) $('refresh').value = p.get('refresh');
  $('refresh').addEventListener('change', setRefresh);
  const preset = [...$('range').options].find((o) => o.value === $('from').value && $('to').value === 'now');
  $('range').value = preset ? preset.value : 'custom';
  $('range').addEventListener('change', () => {
    if ($('range').value === 'custom') return;
    $('from').value = $('range').value;
    $('to').value = 'now';
    run();
  });
  const completion = attach($('query'), $('completions'), (path) => api(path, rangeParams()), () => paint());
  $('tenant').addEventListener('change', () => completion.forget());
  $('query').addEventListener('input', () => paint());
  $('query').addEventListener('scroll', () => { $('highlight').scrollTop = $('query').scrollTop; });
  $('query').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); run(); }
  });
  $('query-form').addEventListener('submit', (ev) => { ev.preventDefault(); run(); });
  $('live').addEventListener('click', () => (live ? stopLive() : startLive()));
  $('wrap').addEventListener('change', () => $('lines').classList.toggle('wrap', $('wrap').checked));
  $('download').addEventListener('click', download);
  window.addEventListener('hashchange', route);
  paint();
  if ($('refresh').value) setRefresh();
  if (location.hash === '#status') await route();
  else if ($('query').value) { route(); await run(); }
  else { route(); document.body.dataset.state = 'done'; }
}

init();
