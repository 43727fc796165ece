// Completion in the query editor: label names inside a selector, label values after
// `name="`, pipeline stages after `|`, functions elsewhere. Follows the ARIA combobox
// pattern: arrows move, Enter or Tab accepts, Escape closes.

import { KEYWORDS } from './logql.js';

const STAGES = ['json', 'logfmt', 'regexp', 'pattern', 'unpack', 'line_format', 'label_format',
  'unwrap', 'drop', 'keep', 'decolorize'];
const FUNCTIONS = [...KEYWORDS].filter((k) => /_over_time$|^(rate|bytes_rate|sum|avg|min|max|count|topk|bottomk|sort|sort_desc|stddev|stdvar|rate_counter|label_replace|vector)$/.test(k)).sort();

/** What to complete at the end of `before` (the text left of the caret), or null. */
export function context(before) {
  let depth = 0;
  let inStr = false;
  for (let i = 0; i < before.length; i++) {
    const c = before[i];
    if (inStr) {
      if (c === '\\') i++;
      else if (c === inStr) inStr = false;
    } else if (c === '"' || c === '`') inStr = c;
    else if (c === '{') depth++;
    else if (c === '}') depth = Math.max(0, depth - 1);
  }
  if (depth > 0) {
    const v = /([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)$/.exec(before);
    if (v && inStr === '"') return { kind: 'value', label: v[1], prefix: v[3] };
    const n = /(?:^|[{,])\s*([A-Za-z_][A-Za-z0-9_]*)?$/.exec(before);
    if (n && !inStr) return { kind: 'label', prefix: n[1] || '' };
    return null;
  }
  if (inStr) return null;
  const s = /\|\s*([a-z_]*)$/.exec(before);
  if (s) return { kind: 'stage', prefix: s[1] };
  const f = /(?:^|[(\s])([a-z_]+)$/.exec(before);
  if (f) return { kind: 'function', prefix: f[1] };
  return null;
}

/** Attaches completion to `textarea`; `fetchJson(path, params)` asks the API. */
export function attach(textarea, list, fetchJson, onChange) {
  const cache = new Map();
  let items = [];
  let active = 0;
  let ctx = null;
  let seq = 0;

  const cached = async (key, load) => {
    if (!cache.has(key)) cache.set(key, load().catch(() => []));
    return cache.get(key);
  };

  function close() {
    items = [];
    list.hidden = true;
    list.replaceChildren();
    textarea.setAttribute('aria-expanded', 'false');
    textarea.removeAttribute('aria-activedescendant');
  }

  function show() {
    list.replaceChildren();
    if (!items.length) { close(); return; }
    items.forEach((text, i) => {
      const li = document.createElement('li');
      li.id = `completion-${i}`;
      li.setAttribute('role', 'option');
      li.textContent = text;
      li.setAttribute('aria-selected', String(i === active));
      li.addEventListener('mousedown', (ev) => { ev.preventDefault(); active = i; accept(); });
      list.appendChild(li);
    });
    list.hidden = false;
    textarea.setAttribute('aria-expanded', 'true');
    textarea.setAttribute('aria-activedescendant', `completion-${active}`);
    list.children[active]?.scrollIntoView({ block: 'nearest' });
  }

  async function candidates(c) {
    if (c.kind === 'label') return cached('labels', async () => (await fetchJson('/loki/api/v1/labels')).data || []);
    if (c.kind === 'value') {
      return cached(`values:${c.label}`, async () => (await fetchJson(`/loki/api/v1/label/${encodeURIComponent(c.label)}/values`)).data || []);
    }
    if (c.kind === 'stage') return STAGES;
    return FUNCTIONS;
  }

  async function update() {
    const my = ++seq;
    const before = textarea.value.slice(0, textarea.selectionStart);
    ctx = textarea.selectionStart === textarea.selectionEnd ? context(before) : null;
    if (!ctx || (ctx.kind === 'function' && !ctx.prefix)) { close(); return; }
    const all = await candidates(ctx);
    if (my !== seq) return;
    items = all.filter((x) => x.startsWith(ctx.prefix) && x !== ctx.prefix).slice(0, 50);
    active = 0;
    show();
  }

  function accept() {
    const text = items[active];
    if (text === undefined || !ctx) return;
    const at = textarea.selectionStart;
    let insert = text.slice(ctx.prefix.length);
    const after = textarea.value.slice(at);
    if (ctx.kind === 'value') {
      insert = insert.replace(/["\\]/g, '\\$&');
      if (!after.startsWith('"')) insert += '"';
    }
    textarea.setRangeText(insert, at, at, 'end');
    if (ctx.kind === 'value' && after.startsWith('"')) textarea.selectionStart = textarea.selectionEnd = at + insert.length + 1;
    close();
    onChange();
  }

  textarea.setAttribute('role', 'combobox');
  textarea.setAttribute('aria-autocomplete', 'list');
  textarea.setAttribute('aria-controls', list.id);
  textarea.setAttribute('aria-expanded', 'false');
  textarea.addEventListener('input', update);
  textarea.addEventListener('blur', close);
  textarea.addEventListener('keydown', (ev) => {
    if (list.hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      active = (active + (ev.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
      show();
    } else if (ev.key === 'Enter' || ev.key === 'Tab') {
      ev.preventDefault();
      ev.stopImmediatePropagation();
      accept();
    } else if (ev.key === 'Escape') {
      ev.preventDefault();
      close();
    }
  });
  return { forget: () => cache.clear() };
}
