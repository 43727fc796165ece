"""SiltTaskHandler: Airflow 2.x task-log handler backed by Silt (or Loki)."""

from __future__ import annotations

import json
import os
import urllib.parse
from datetime import datetime, timedelta, timezone

from airflow.configuration import conf
from airflow.utils.log.file_task_handler import FileTaskHandler
from airflow.utils.log.logging_mixin import ExternalLoggingMixin, LoggingMixin

from silt_airflow.client import SiltClient, SiltError, records, task_query, to_ns

_CLIENT_KEYS = ("tenant", "username", "password", "bearer_token", "ca_file", "cert_file", "key_file")
_CLIENT_NUMBERS = {"timeout": float, "retries": int, "push_batch_bytes": int}


def _setting(key: str, value, fallback=None):
    """An explicit handler argument, else `[silt] key` (env AIRFLOW__SILT__KEY)."""
    if value is not None:
        return value
    return conf.get("silt", key, fallback=fallback)


def _flag(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class SiltTaskHandler(FileTaskHandler, ExternalLoggingMixin, LoggingMixin):
    """Writes the local file like FileTaskHandler; at task end ships it to Silt (unless
    `upload` is off because silt-agent collects the files); reads a try back from Silt
    through `/loki/api/v1/query_range`, paged and merged by timestamp."""

    trigger_should_wrap = True

    def __init__(
        self,
        base_log_folder: str,
        url: str | None = None,
        labels: dict | str | None = None,
        upload: bool | str | None = None,
        page_size: int | str | None = None,
        lookback_hours: float | str | None = None,
        grafana_url: str | None = None,
        grafana_datasource: str | None = None,
        filename_template: str | None = None,
        **client_kwargs,
    ):
        super().__init__(base_log_folder, filename_template)
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
        self.upload_on_close = False
        self.closed = False
        self._stream: dict = {}
        self._metadata: dict = {}

    # -- write path ---------------------------------------------------------------------

    def set_context(self, ti, *, identifier: str | None = None):
        super().set_context(ti, identifier=identifier)
        # The supervising process (not `--raw`) or the triggerer ships the file at the end.
        is_trigger = getattr(ti, "is_trigger_log_context", False)
        self.upload_on_close = self.upload and (is_trigger or not getattr(ti, "raw", None))
        self._stream = {"dag_id": ti.dag_id, "task_id": ti.task_id, **self.labels}
        self._metadata = {"run_id": ti.run_id, "try_number": ti.try_number}
        if getattr(ti, "map_index", -1) >= 0:
            self._metadata["map_index"] = ti.map_index

    def close(self):
        if self.closed:
            return
        super().close()
        if self.upload_on_close and self.handler is not None:
            self.ship(self.handler.baseFilename)
        self.closed = True

    def ship(self, path: str) -> int:
        """Pushes the file's records; times come from the lines, so a re-upload only adds
        what is new (the server drops exact duplicates)."""
        if not os.path.exists(path):
            return 0
        with open(path, encoding="utf-8", errors="backslashreplace") as f:
            text = f.read()
        entries = records(text, int(os.path.getmtime(path) * 1e9))
        try:
            return self.client.push(self._stream, entries, self._metadata)
        except SiltError as e:
            # The local file stays; logging must not fail the task.
            self.log.error("Could not ship %s to %s: %s", path, self.url, e)
            return 0

    # -- read path ----------------------------------------------------------------------

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
            start, end = ti.start_date or ti.queued_dttm, ti.end_date
        else:
            start, end = _history_dates(ti, try_number)
            if start is None and ti.start_date:
                start, end = ti.start_date - self.lookback, ti.start_date
        start = (start or now - self.lookback) - timedelta(hours=1)
        end = min((end or now) + timedelta(hours=1), now + timedelta(hours=1))
        return start, end

    def read_entries(self, ti, try_number: int) -> tuple[list[tuple[int, str]], list[str], str]:
        query = self.query(ti, try_number)
        start, end = self.window(ti, try_number)
        entries, notes = self.client.query_range(query, to_ns(start), to_ns(end))
        return entries, notes, query

    def _read_remote_logs(self, ti, try_number, metadata=None) -> tuple[list[str], list[str]]:
        try:
            entries, notes, query = self.read_entries(ti, try_number)
        except SiltError as e:
            return [f"Could not read logs from {self.url}: {e}"], []
        if not entries:
            return [f"No logs in Silt at {self.url} for {query}"], []
        messages = [f"Read {len(entries)} entries from Silt at {self.url}: {query}", *notes]
        return messages, ["\n".join(line for _, line in entries) + "\n"]

    # -- Grafana link ---------------------------------------------------------------------

    @property
    def log_name(self) -> str:
        return "Grafana"

    @property
    def supports_external_link(self) -> bool:
        return bool(self.grafana_url)

    def get_external_log_url(self, task_instance, try_number) -> str:
        start, end = self.window(task_instance, try_number)
        ds = {"type": "loki", "uid": self.grafana_datasource}
        pane = {
            "datasource": self.grafana_datasource,
            "queries": [{"refId": "A", "expr": self.query(task_instance, try_number), "datasource": ds}],
            "range": {"from": str(to_ns(start) // 10**6), "to": str(to_ns(end) // 10**6)},
        }
        panes = json.dumps({"silt": pane}, separators=(",", ":"))
        return f"{self.grafana_url.rstrip('/')}/explore?schemaVersion=1&orgId=1&panes={urllib.parse.quote(panes)}"


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
