"""Loki API client for task logs: paged, merged reads and retried pushes (stdlib only)."""

from __future__ import annotations

import base64
import gzip
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

RETRY_STATUS = {429, 500, 502, 503, 504}
# Loki's 400 when `limit` exceeds max_entries_limit_per_query: "... (6000 > 5000)".
_MAX_ENTRIES = re.compile(r"max entries limit.*\((\d+) > (\d+)\)")
_STAMP = (
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d)?"
)
# Airflow 2's task log prefix "[2024-05-01T12:00:00.123+0000] {file.py:1} INFO - ..." and
# Airflow 3's JSON lines {"timestamp":"2024-05-01T12:00:00.123456Z","level":...}.
_TS = re.compile(r"^\[" + _STAMP + r"\]")
_JSON_TS = re.compile(r'^\{.{0,200}?"timestamp": ?"' + _STAMP + '"')
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class SiltError(Exception):
    """A request that failed for good (after retries, or not retryable)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def logql_string(s: str) -> str:
    """A LogQL double-quoted string literal (Go escapes; JSON's are a subset)."""
    return json.dumps(str(s), ensure_ascii=False)


def task_query(dag_id, task_id, run_id, try_number, map_index=None, labels=None) -> str:
    """LogQL for one task try: dag_id/task_id select the stream, metadata filters the try."""
    sel = {"dag_id": dag_id, "task_id": task_id, **(labels or {})}
    q = "{" + ",".join(f"{k}={logql_string(v)}" for k, v in sel.items()) + "}"
    q += f" | run_id={logql_string(run_id)} | try_number={logql_string(int(try_number))}"
    if map_index is not None and int(map_index) >= 0:
        return q + f" | map_index={logql_string(int(map_index))}"
    # Unmapped tasks carry no map_index (the agent) or -1 (some shippers).
    return q + ' | map_index="" or map_index="-1"'


def to_ns(dt: datetime) -> int:
    """Unix nanoseconds of an aware (or UTC naive) datetime, without float rounding."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def line_ns(line: str) -> int | None:
    """An Airflow log line's timestamp in ns, else None (no zone = UTC)."""
    m = _TS.match(line) or (_JSON_TS.match(line) if line.startswith("{") else None)
    if not m:
        return None
    y, mo, d, h, mi, s, frac, zone = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=timezone.utc)
    except ValueError:
        return None
    ns = to_ns(dt) + int((frac or "0").ljust(9, "0"))
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        z = zone[1:].replace(":", "")
        ns -= sign * (int(z[:2]) * 3600 + int(z[2:]) * 60) * 10**9
    return ns


def records(text: str, fallback_ns: int, max_bytes: int = 128 * 1024) -> list[tuple[int, str]]:
    """Splits a task log into entries: a record starts at a timestamped line and keeps its
    continuation lines (tracebacks); times are strictly increasing so the order survives
    any split into streams. Lines before the first timestamp get the first one found."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    groups: list[list] = []
    for line in lines:
        ts = line_ns(line)
        if ts is not None or not groups:
            groups.append([ts, [line]])
        else:
            groups[-1][1].append(line)
    first = next((g[0] for g in groups if g[0] is not None), fallback_ns)
    out: list[tuple[int, str]] = []
    prev = None
    for ts, body in groups:
        for chunk in _chunks(body, max_bytes):
            t = first if ts is None else ts
            if prev is not None and t <= prev:
                t = prev + 1
            out.append((t, chunk))
            prev = t
    return out


def _chunks(lines: list[str], max_bytes: int):
    """Joins lines into entries of at most max_bytes (a longer line is cut)."""
    cur: list[str] = []
    size = 0
    for line in lines:
        b = line.encode("utf-8", "surrogatepass")
        while len(b) > max_bytes:
            if cur:
                yield "\n".join(cur)
                cur, size = [], 0
            cut = max_bytes
            while cut > 0 and (b[cut] & 0xC0) == 0x80:  # not inside a UTF-8 sequence
                cut -= 1
            yield b[:cut].decode("utf-8", "surrogatepass")
            b = b[cut:]
        if cur and size + 1 + len(b) > max_bytes:
            yield "\n".join(cur)
            cur, size = [], 0
        size += len(b) + (1 if cur else 0)
        cur.append(b.decode("utf-8", "surrogatepass"))
    if cur:
        yield "\n".join(cur)


class SiltClient:
    """Talks to Silt's (Loki's) push and query_range endpoints."""

    def __init__(
        self,
        url: str,
        tenant: str | None = None,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        timeout: float = 30.0,
        retries: int = 6,
        backoff: float = 0.5,
        page_size: int = 5000,
        push_batch_bytes: int = 256 * 1024,
    ):
        self.url = url.rstrip("/")
        self.headers = {"User-Agent": "silt-airflow/0.1"}
        if tenant:
            self.headers["X-Scope-OrgID"] = tenant
        if bearer_token:
            self.headers["Authorization"] = f"Bearer {bearer_token}"
        elif username:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.ssl = None
        if ca_file or cert_file:
            self.ssl = ssl.create_default_context(cafile=ca_file)
            if cert_file:
                self.ssl.load_cert_chain(cert_file, key_file)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.page_size = page_size
        self.push_batch_bytes = push_batch_bytes

    def _request(self, method: str, path: str, body: bytes | None = None, headers=None) -> bytes:
        """One call, retried on 429/5xx and network errors with exponential backoff."""
        attempt = 0
        while True:
            req = urllib.request.Request(
                self.url + path, data=body, method=method, headers={**self.headers, **(headers or {})}
            )
            wait = None
            try:
                with urllib.request.urlopen(req, timeout=self.timeout, context=self.ssl) as resp:
                    return resp.read()
            except urllib.error.HTTPError as e:
                text = e.read().decode("utf-8", "replace").strip()
                if e.code not in RETRY_STATUS or attempt >= self.retries:
                    raise SiltError(f"{method} {path}: {e.code} {text}", e.code) from None
                ra = e.headers.get("Retry-After", "")
                wait = float(ra) if ra.isdigit() else None
            except (urllib.error.URLError, OSError) as e:
                if attempt >= self.retries:
                    raise SiltError(f"{method} {path}: {e}") from None
            time.sleep(min(wait or self.backoff * 2**attempt, 30.0))
            attempt += 1

    def query_range(self, query: str, start_ns: int, end_ns: int) -> tuple[list[tuple[int, str]], list[str]]:
        """Every entry of a log query in [start, end), all streams merged by timestamp (equal
        timestamps keep the server's order), paged forward past the per-query limit.
        Returns the (ns, line) entries and notes for the reader."""
        out: list[tuple[int, str]] = []
        notes: list[str] = []
        edge: set = set()  # entries at the last timestamp already taken
        start, limit = start_ns, self.page_size
        while start < end_ns:
            params = {"query": query, "start": str(start), "end": str(end_ns),
                      "limit": str(limit), "direction": "forward"}
            try:
                raw = self._request("GET", "/loki/api/v1/query_range?" + urllib.parse.urlencode(params))
            except SiltError as e:
                m = _MAX_ENTRIES.search(str(e))
                if e.status == 400 and m and int(m.group(2)) < limit:
                    limit = int(m.group(2))
                    continue
                raise
            page = []
            for stream in json.loads(raw)["data"]["result"]:
                key = json.dumps(stream.get("stream", {}), sort_keys=True)
                page.extend((int(v[0]), key, v[1]) for v in stream["values"])
            page.sort(key=lambda e: e[0])  # stable: streams in server order
            new = [e for e in page if e not in edge]
            out.extend((ts, line) for ts, _, line in new)
            if len(page) < limit:
                break
            last = page[-1][0]
            if not new:
                # More than `limit` entries share one timestamp: step past it.
                notes.append(f"entries at {last} beyond {limit} were not read")
                start, edge = last + 1, set()
                continue
            if start != last:
                edge = set()
            edge |= {e for e in page if e[0] == last}
            start = last
        return out, notes

    def push(self, labels: dict, entries, metadata: dict | None = None) -> int:
        """Pushes (ns, line) entries as one stream in gzip'd JSON batches; returns the count."""
        md = {k: str(v) for k, v in (metadata or {}).items()}
        batch: list = []
        size = n = 0
        for ts, line in entries:
            batch.append([str(ts), line, md] if md else [str(ts), line])
            size += len(line) + 32
            n += 1
            if size >= self.push_batch_bytes:
                self._push_batch(labels, batch)
                batch, size = [], 0
        if batch:
            self._push_batch(labels, batch)
        return n

    def _push_batch(self, labels: dict, values: list) -> None:
        body = json.dumps({"streams": [{"stream": labels, "values": values}]}).encode()
        self._request(
            "POST",
            "/loki/api/v1/push",
            gzip.compress(body, 6),
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
