"""SiltRemoteLogIO: Airflow 3's remote task-log interface (`RemoteLogIO`) backed by Silt.

Airflow 3 loads `REMOTE_TASK_LOG` from the logging config module; the task supervisor
calls `upload(relative_path, ti)` after the task and the API server's FileTaskHandler
calls `read(relative_path, ti)`. `silt_airflow.log_config` sets it up.
"""

from __future__ import annotations

import logging
import os
import re

from silt_airflow.client import SiltError
from silt_airflow.core import SiltTaskLogs

log = logging.getLogger(__name__)
_ATTEMPT = re.compile(r"attempt=(\d+)")


class SiltRemoteLogIO:
    """Ships the finished task's log file and reads a try back, paged and merged."""

    processors: tuple = ()

    def __init__(self, base_log_folder: str, **kwargs):
        self.base_log_folder = base_log_folder
        self.silt = SiltTaskLogs(**kwargs)

    def upload(self, path, ti=None) -> None:
        if ti is None or not self.silt.upload:
            return
        path = os.fspath(path)
        local = path if os.path.isabs(path) else os.path.join(self.base_log_folder, path)
        if not os.path.exists(local):
            log.warning("No task log to ship at %s", local)
            return
        try:
            self.silt.ship(local, ti, _try_number(path, ti))
        except SiltError as e:
            # The local file stays; logging must not fail the task.
            log.error("Could not ship %s to %s: %s", local, self.silt.url, e)

    def read(self, relative_path: str, ti) -> tuple[list[str], list[str] | None]:
        return self.silt.read(ti, _try_number(relative_path, ti))


def _try_number(path: str, ti) -> int:
    """The try a log path belongs to (`attempt=N` in Airflow's file names), else the ti's."""
    m = _ATTEMPT.search(os.path.basename(os.fspath(path)))
    return int(m.group(1)) if m else ti.try_number
