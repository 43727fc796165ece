// Status view: what the server holds and how it is doing, from /metrics and
// /silt/api/v1/status (settings; no secrets).

function parseMetrics(text) {
  const sums = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const name = m[1].replace(/_total$/, '');
    sums.set(name, (sums.get(name) || 0) + Number(m[2]));
  }
  return sums;
}

function bytes(n) {
  if (!Number.isFinite(n)) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

function duration(s) {
  if (s % 86400 === 0) return `${s / 86400}d`;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

function table(title, rows) {
  const t = document.createElement('table');
  t.createCaption().textContent = title;
  for (const [k, v, cls] of rows) {
    const r = t.insertRow();
    const th = document.createElement('th');
    th.textContent = k;
    r.appendChild(th);
    const td = r.insertCell();
    td.textContent = v;
    if (cls) td.className = cls;
  }
  return t;
}

/** Fills `root`; ingestion rates come from two scrapes of /metrics two seconds apart. */
export async function showStatus(root, headers) {
  try {
    const get = async (p) => {
      const r = await fetch(p, { headers: headers() });
      if (!r.ok) throw new Error(`${p}: ${r.status} ${(await r.text()).trim()}`);
      return r;
    };
    const st = await (await get('/silt/api/v1/status')).json();
    const a = parseMetrics(await (await get('/metrics')).text());
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 2000));
    const b = parseMetrics(await (await get('/metrics')).text());
    const secs = (performance.now() - t0) / 1000;
    const rate = (k) => ((b.get(k) || 0) - (a.get(k) || 0)) / secs;
    const raw = b.get('silt_segment_raw_bytes') || 0;
    const seg = b.get('silt_segment_bytes') || 0;
    const failing = st.object_store.failing;
    const backend = st.object_store.backend;
    root.replaceChildren(
      table('Ingestion', [
        ['Lines per second', rate('silt_ingested_entries').toFixed(1)],
        ['Bytes per second', bytes(rate('silt_ingested_bytes')) + '/s'],
        ['Lines since start', String(b.get('silt_ingested_entries') || 0)],
        ['Discarded lines since start', String(b.get('silt_discarded_entries') || 0)],
      ]),
      table('Storage', [
        ['Active streams (in the head)', String(b.get('silt_head_streams') || 0)],
        ['In memory (head)', bytes(b.get('silt_head_bytes'))],
        ['Head memory', bytes(b.get('silt_head_memory_bytes'))],
        ['WAL', bytes(b.get('silt_wal_bytes')), st.wal_full ? 'bad' : ''],
        ['Segments', String(b.get('silt_segments') || 0)],
        ['Segment bytes', bytes(seg)],
        ['Compression', seg ? `${(raw / seg).toFixed(2)}x` : '–'],
      ]),
      table('Object store', [
        ['Backend', backend.type === 's3' ? `s3://${backend.bucket}/${backend.prefix || ''} at ${backend.endpoint || 'AWS'}` : 'local disk'],
        ['Health', failing ? `failing: ${failing}` : 'ok', failing ? 'bad' : 'ok'],
        ['Errors since start', String(b.get('silt_object_store_errors') || 0)],
      ]),
      table('Settings', [
        ['Version', st.version],
        ['Multi-tenant (auth_enabled)', String(st.auth_enabled)],
        ['Retention', st.retention.enabled ? duration(st.retention.period_seconds) : 'off'],
        ['Compaction', st.compaction.enabled ? `every ${duration(st.compaction.interval_seconds)}` : 'off'],
        ['Data directory', st.storage.data_dir],
        ['WAL fsync before ack', String(st.storage.wal_fsync)],
        ['Flush at', `${bytes(st.storage.flush_max_bytes)} or ${duration(st.storage.flush_max_age_seconds)}`],
        ['Head memory cap', bytes(st.storage.max_head_memory)],
        ['Content index', String(st.storage.content_index)],
        ['Alertmanagers', String(st.ruler.alertmanagers)],
      ]),
    );
  } catch (e) {
    root.textContent = `Status unavailable: ${e.message}`;
  }
  document.body.dataset.state = 'done';
}
