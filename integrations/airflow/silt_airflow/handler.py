"""SiltTaskHandler: Airflow 2.x task-log handler backed by Silt (or Loki)."""

from __future__ import annotations

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

    def set_context(self, ti, *, identifier: str | None = None):
        super().set_context(ti, identifier=identifier)
        # The supervising process (not `--raw`) or the triggerer ships the file at the end.
        is_trigger = getattr(ti, "is_trigger_log_context", False)
        self.upload_on_close = self.silt.upload and (is_trigger or not getattr(ti, "raw", None))
        self._ti, self._try_number = ti, ti.try_number

    def close(self):
        if self.closed:
            return
        super().close()
        if self.upload_on_close and self.handler is not None and self._ti is not None:
            try:
                self.silt.ship(self.handler.baseFilename, self._ti, self._try_number)
            except SiltError as e:
                # The local file stays; logging must not fail the task.
                self.log.error("Could not ship %s to %s: %s", self.handler.baseFilename, self.silt.url, e)
        self.closed = True

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
