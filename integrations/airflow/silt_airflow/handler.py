"""SiltTaskHandler: Airflow 2.x task-log handler backed by Silt (or Loki)."""

from __future__ import annotations

import threading

from airflow.utils.log.file_task_handler import FileTaskHandler
from airflow.utils.log.logging_mixin import ExternalLoggingMixin, LoggingMixin

from silt_airflow.client import SiltError
from silt_airflow.core import SiltTaskLogs


class SiltTaskHandler(FileTaskHandler, ExternalLoggingMixin, LoggingMixin):
    """Writes the local file like FileTaskHandler; at task end ships it to Silt (unless
    `upload` is off because silt-agent collects the files); reads a try back from Silt
    through `/loki/api/v1/query_range`, paged and merged by timestamp. Keyword arguments
    are SiltTaskLogs' (url, labels, upload, ...), else the `[silt]` section."""

    trigger_should_wrap = True

    def __init__(self, base_log_folder: str, filename_template: str | None = None, **kwargs):
        super().__init__(base_log_folder, filename_template)
        self.silt = SiltTaskLogs(**kwargs)
        self.upload_on_close = False
        self.closed = False
        self._ti = None
        self._try_number = None
        self._lock = threading.Lock()
        self._late = False  # records logged after the upload began are shipped too
        self._shipper = None  # the thread shipping now
        self._done = 0  # records shipped

    def set_context(self, ti, *, identifier: str | None = None):
        super().set_context(ti, identifier=identifier)
        # The supervising process (not `--raw`) or the triggerer ships the file at the end.
        is_trigger = getattr(ti, "is_trigger_log_context", False)
        self.upload_on_close = self.silt.upload and (is_trigger or not getattr(ti, "raw", None))
        self._ti, self._try_number = ti, ti.try_number

    def emit(self, record):
        super().emit(record)
        # Airflow's runner threads can still log after the upload began: ship those too.
        if self._late and self._shipper != threading.get_ident():
            self._ship()

    def close(self):
        if self.closed:
            return
        super().close()
        if self.upload_on_close and self.handler is not None and self._ti is not None:
            self._late = True
            self._ship()
        self.closed = True

    def _ship(self):
        """Pushes the records not shipped yet; no logging while the lock is held."""
        error = None
        with self._lock:
            if not self._late:
                return
            self._shipper = threading.get_ident()
            try:
                path = self.handler.baseFilename
                self._done = self.silt.ship(path, self._ti, self._try_number, self._done)
            except SiltError as e:
                self._late, error = False, e
            finally:
                self._shipper = None
        if error is not None:
            # The local file stays; logging must not fail the task.
            self.log.error("Could not ship %s to %s: %s", self.handler.baseFilename, self.silt.url, error)

    def _read_remote_logs(self, ti, try_number, metadata=None) -> tuple[list[str], list[str]]:
        return self.silt.read(ti, try_number)

    @property
    def log_name(self) -> str:
        return "Grafana"

    @property
    def supports_external_link(self) -> bool:
        return bool(self.silt.grafana_url)

    def get_external_log_url(self, task_instance, try_number) -> str:
        return self.silt.grafana_link(task_instance, try_number)
