"""What the Airflow 2 handler and the Airflow 3 remote-log IO share: settings, the task
schema (labels dag_id/task_id, metadata run_id/try_number/map_index), shipping a log file
and reading a try back."""

from __future__ import annotations

import json
import os
import urllib.parse
from datetime import datetime, timedelta, timezone

from silt_airflow.client import SiltClient, SiltError, records, task_query, to_ns

_CLIENT_KEYS = ("tenant", "username", "password", "bearer_token", "ca_file", "cert_file", "key_file")
_CLIENT_NUMBERS = {"timeout": float, "retries": int, "push_batch_bytes": int}


def _setting(key: str, value, fallback=None):
    """An explicit argument, else `[silt] key` (env AIRFLOW__SILT__KEY)."""
    if value is not None:
        return value
    from airflow.configuration import conf

    return conf.get("silt", key, fallback=fallback)


def _flag(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class SiltTaskLogs:
    """Ships and reads task logs; every argument falls back to the `[silt]` section."""

    def __init__(
        self,
        url: str | None = None,
        labels: dict | str | None = None,
        upload: bool | str | None = None,
        page_size: int | str | None = None,
        lookback_hours: float | str | None = None,
        grafana_url: str | None = None,
        grafana_datasource: str | None = None,
        **client_kwargs,
    ):
        self.url = _setting("url", url, "http://localhost:3100")
        raw_labels = _setting("labels", labels, "{}")
        self.labels = json.loads(raw_labels) if isinstance(raw_labels, str) else dict(raw_labels)
        self.upload = _flag(_setting("upload", upload, "true"))
        self.lookback = timedelta(hours=float(_setting("lookback_hours", lookback_hours, "168")))
        self.grafana_url = _setting("grafana_url", grafana_url, "") or ""
        self.grafana_datasource = _setting("grafana_datasource", grafana_datasource, "silt") or "silt"
        for key in _CLIENT_KEYS:
            client_kwargs[key] = _setting(key, client_kwargs.get(key)) or None
        for key, kind in _CLIENT_NUMBERS.items():
            value = _setting(key, client_kwargs.pop(key, None))
            if value not in (None, ""):
                client_kwargs[key] = kind(value)
        self.client = SiltClient(
            self.url, page_size=int(_setting("page_size", page_size, "5000")), **client_kwargs
        )

    # -- write ----------------------------------------------------------------------------

    def ship(self, path: str, ti, try_number: int | None = None, done: int = 0) -> int:
        """Pushes the file's records after the first `done` as the try's entries; returns
        the file's record count. Times come from the lines, so a re-upload only adds what
        is new (the server drops exact duplicates)."""
        if not os.path.exists(path):
            return done
        stream = {"dag_id": ti.dag_id, "task_id": ti.task_id, **self.labels}
        metadata = {"run_id": ti.run_id, "try_number": try_number or ti.try_number}
        map_index = getattr(ti, "map_index", -1)
        if map_index is not None and map_index >= 0:
            metadata["map_index"] = map_index
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "backslashreplace")
        entries = records(text, int(os.path.getmtime(path) * 1e9))
        self.client.push(stream, entries[done:], metadata)
        return len(entries)

    # -- read -----------------------------------------------------------------------------

    def query(self, ti, try_number: int) -> str:
        """The LogQL that selects one try of a task instance."""
        return task_query(
            ti.dag_id, ti.task_id, ti.run_id, try_number, getattr(ti, "map_index", -1), self.labels
        )

    def window(self, ti, try_number: int) -> tuple[datetime, datetime]:
        """Time range to search: the try's own dates when known, padded by an hour."""
        now = datetime.now(timezone.utc)
        start = end = None
        if try_number == ti.try_number:
            start, end = ti.start_date or getattr(ti, "queued_dttm", None), ti.end_date
        else:
            start, end = _history_dates(ti, try_number)
            if start is None and ti.start_date:
                start, end = ti.start_date - self.lookback, ti.start_date
        start = (start or now - self.lookback) - timedelta(hours=1)
        end = min((end or now) + timedelta(hours=1), now + timedelta(hours=1))
        return start, end

    def read_entries(self, ti, try_number: int) -> tuple[list[tuple[int, str]], list[str], str]:
        """All entries of the try, merged by time, with notes and the query used."""
        query = self.query(ti, try_number)
        start, end = self.window(ti, try_number)
        entries, notes = self.client.query_range(query, to_ns(start), to_ns(end))
        return entries, notes, query

    def read(self, ti, try_number: int) -> tuple[list[str], list[str]]:
        """Airflow's (messages, [log text]) for the try; no logs when Silt has none."""
        try:
            entries, notes, query = self.read_entries(ti, try_number)
        except SiltError as e:
            return [f"Could not read logs from {self.url}: {e}"], []
        if not entries:
            return [f"No logs in Silt at {self.url} for {query}"], []
        messages = [f"Read {len(entries)} entries from Silt at {self.url}: {query}", *notes]
        return messages, ["\n".join(line for _, line in entries) + "\n"]

    def grafana_link(self, ti, try_number: int) -> str:
        """Grafana Explore with the try's query and time range."""
        start, end = self.window(ti, try_number)
        ds = {"type": "loki", "uid": self.grafana_datasource}
        pane = {
            "datasource": self.grafana_datasource,
            "queries": [{"refId": "A", "expr": self.query(ti, try_number), "datasource": ds}],
            "range": {"from": str(to_ns(start) // 10**6), "to": str(to_ns(end) // 10**6)},
        }
        panes = urllib.parse.quote(json.dumps({"silt": pane}, separators=(",", ":")))
        return f"{self.grafana_url.rstrip('/')}/explore?schemaVersion=1&orgId=1&panes={panes}"


def _history_dates(ti, try_number: int):
    """Start and end of an earlier try from TaskInstanceHistory (Airflow >= 2.10)."""
    try:
        from airflow.models.taskinstancehistory import TaskInstanceHistory
        from airflow.utils.session import create_session

        with create_session() as session:
            row = (
                session.query(TaskInstanceHistory.start_date, TaskInstanceHistory.end_date)
                .filter_by(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id)
                .filter_by(map_index=getattr(ti, "map_index", -1), try_number=try_number)
                .first()
            )
        return (row[0], row[1]) if row else (None, None)
    except Exception:
        return None, None
