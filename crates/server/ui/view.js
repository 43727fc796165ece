// Log lines: one row per entry, newest first, expandable into its labels with
// "filter for" / "filter out" buttons.

/** The entry's level, from structured metadata, parsed fields or stream labels. */
export function levelOf(e) {
  const v = e.meta.detected_level || e.parsed.level || e.parsed.detected_level
    || e.stream.level || e.stream.detected_level || e.stream.severity || '';
  return String(v).toLowerCase();
}

/** RFC 3339 with nanoseconds, in UTC, from a nanosecond string. */
export function fmtNs(ns) {
  const ms = Number(BigInt(ns) / 1000000n);
  const frac = (BigInt(ns) % 1000000000n).toString().padStart(9, '0');
  return new Date(ms).toISOString().slice(0, 19) + '.' + frac + 'Z';
}

function detailTable(e, onFilter) {
  const table = document.createElement('table');
  table.className = 'details';
  const groups = [['Stream labels', e.stream], ['Structured metadata', e.meta], ['Parsed fields', e.parsed]];
  for (const [title, obj] of groups) {
    const keys = Object.keys(obj).sort();
    if (!keys.length) continue;
    const body = table.createTBody();
    const head = body.insertRow().insertCell();
    head.colSpan = 3;
    head.innerHTML = `<em>${title}</em>`;
    for (const k of keys) {
      const row = body.insertRow();
      const th = document.createElement('th');
      th.textContent = k;
      row.appendChild(th);
      row.insertCell().textContent = obj[k];
      const cell = row.insertCell();
      for (const [keep, text, label] of [[true, '+', 'Filter for'], [false, '−', 'Filter out']]) {
        const b = document.createElement('button');
        b.type = 'button';
        b.textContent = text;
        b.className = keep ? 'filter-for' : 'filter-out';
        b.title = `${label} ${k}="${obj[k]}"`;
        b.setAttribute('aria-label', b.title);
        b.addEventListener('click', (ev) => { ev.stopPropagation(); onFilter(k, obj[k], keep); });
        cell.appendChild(b);
      }
    }
  }
  return table;
}

/** Fills `list` with `entries`; a click (or Enter) on a row toggles its details. */
export function renderLines(list, entries, onFilter) {
  list.replaceChildren();
  const frag = document.createDocumentFragment();
  for (const e of entries) {
    const li = document.createElement('li');
    const lvl = levelOf(e);
    if (lvl) li.className = `lvl-${lvl}`;
    const row = document.createElement('div');
    row.className = 'row';
    row.tabIndex = 0;
    row.setAttribute('role', 'button');
    row.setAttribute('aria-expanded', 'false');
    const ts = document.createElement('span');
    ts.className = 'ts';
    ts.textContent = fmtNs(e.ts);
    const line = document.createElement('span');
    line.className = 'line';
    line.textContent = e.line;
    row.append(ts, line);
    const toggle = () => {
      const open = li.querySelector('.details');
      if (open) open.remove(); else li.appendChild(detailTable(e, onFilter));
      row.setAttribute('aria-expanded', String(!open));
    };
    row.addEventListener('click', toggle);
    row.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); toggle(); }
    });
    li.appendChild(row);
    frag.appendChild(li);
  }
  list.appendChild(frag);
}

/** Entries of a `streams` result (categorized labels), newest first. */
export function entriesOf(result) {
  const out = [];
  for (const s of result) {
    for (const v of s.values) {
      const extra = v[2] || {};
      out.push({
        ts: v[0], line: v[1], stream: s.stream || {},
        meta: extra.structuredMetadata || {}, parsed: extra.parsed || {},
      });
    }
  }
  out.sort((a, b) => (BigInt(b.ts) > BigInt(a.ts) ? 1 : BigInt(b.ts) < BigInt(a.ts) ? -1 : 0));
  return out;
}
