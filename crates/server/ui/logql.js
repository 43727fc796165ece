// LogQL helpers for the editor: highlighting and the position of a parse error.

export const KEYWORDS = new Set([
  'json', 'logfmt', 'regexp', 'pattern', 'unpack', 'line_format', 'label_format', 'unwrap',
  'drop', 'keep', 'decolorize', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right',
  'offset', 'bool', 'and', 'or', 'unless', 'ip', 'duration', 'duration_seconds', 'bytes',
  'sum', 'avg', 'min', 'max', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'sort',
  'sort_desc', 'approx_topk', 'rate', 'rate_counter', 'count_over_time', 'bytes_rate',
  'bytes_over_time', 'absent_over_time', 'sum_over_time', 'avg_over_time', 'max_over_time',
  'min_over_time', 'first_over_time', 'last_over_time', 'stdvar_over_time',
  'stddev_over_time', 'quantile_over_time', 'label_replace', 'vector', 'label_values',
]);

const TOKEN = new RegExp([
  '("(?:[^"\\\\]|\\\\.)*"?|`[^`]*`?)', // 1 string
  '(\\[[0-9a-zA-Z.]+\\])', // 2 range
  '([0-9]+(?:\\.[0-9]+)?(?:ns|us|µs|ms|s|m|h|d|w|y|b|kb|mb|gb|kib|mib|gib)?)\\b', // 3 number
  '([A-Za-z_][A-Za-z0-9_.]*)', // 4 word
  '(\\|=|\\|~|!=|!~|=~|==|>=|<=|\\||=|>|<|\\+|-|\\*|/|%|\\^)', // 5 operator
].join('|'), 'g');

function esc(s) {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

/** HTML of `q` with token classes; `errAt` (a character offset or -1) is underlined. */
export function highlight(q, errAt = -1) {
  let out = '';
  let last = 0;
  const wrap = (from, to, cls) => {
    for (let i = from; i < to;) {
      // Split at the error offset so it can be marked on its own.
      const cut = errAt >= i && errAt < to ? (errAt === i ? i + 1 : errAt) : to;
      const text = esc(q.slice(i, cut));
      const c = [cls, errAt === i ? 'tok-err' : ''].filter(Boolean).join(' ');
      out += c ? `<span class="${c}">${text}</span>` : text;
      i = cut;
    }
  };
  for (const m of q.matchAll(TOKEN)) {
    wrap(last, m.index, '');
    const next = q.slice(m.index + m[0].length).match(/^\s*(.)/);
    let cls = '';
    if (m[1] !== undefined) cls = 'tok-str';
    else if (m[2] !== undefined || m[3] !== undefined) cls = 'tok-num';
    else if (m[4] !== undefined) {
      if (KEYWORDS.has(m[4])) cls = 'tok-kw';
      else if (next && /[=!<>]/.test(next[1])) cls = 'tok-label';
    } else if (m[5] !== undefined) cls = 'tok-op';
    wrap(m.index, m.index + m[0].length, cls);
    last = m.index + m[0].length;
  }
  wrap(last, q.length, '');
  if (errAt >= q.length) out += '<span class="tok-err"> </span>';
  // A trailing newline needs a character after it to take up its line.
  return out + '\n';
}

/** The character offset a Loki parse error points at, or -1. */
export function errorOffset(q, message) {
  const m = /line (\d+), col (\d+)/.exec(message || '');
  if (!m) return -1;
  const lines = q.split('\n');
  const line = Number(m[1]) - 1;
  if (line >= lines.length) return q.length;
  let off = 0;
  for (let i = 0; i < line; i++) off += lines[i].length + 1;
  // Loki counts columns in bytes from 1; close enough for the ASCII of most queries.
  return Math.min(off + Number(m[2]) - 1, q.length);
}

/** A label filter stage that keeps (or drops) lines where `name` is `value`. */
export function filterStage(name, value, keep) {
  const v = JSON.stringify(value);
  return ` | ${name}${keep ? '=' : '!='}${v}`;
}
