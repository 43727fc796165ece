"""Airflow 3 contract of SiltRemoteLogIO, without a scheduler: `REMOTE_TASK_LOG` as
Airflow 3 loads it from the logging config uploads a JSON-lines task log (Airflow 3's
format) and reads it back; Airflow 3's own log parser and merge must give the same
records as for the local file. Prints facts as JSON."""

import json
import os
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import airflow
from airflow.logging_config import load_logging_config
from airflow.utils.log.file_task_handler import _get_compatible_log_stream, _interleave_logs

load_logging_config()
import airflow.logging_config as logging_config  # noqa: E402

remote = logging_config.REMOTE_TASK_LOG
base = remote.base_log_folder
now = datetime.now(timezone.utc).replace(microsecond=0)
ti = SimpleNamespace(
    dag_id="v3_dag", task_id="v3_task", run_id="manual__v3", try_number=2, map_index=3,
    start_date=now - timedelta(minutes=5), end_date=now, queued_dttm=None,
)
relative = "dag_id=v3_dag/run_id=manual__v3/task_id=v3_task/map_index=3/attempt=2.log"
path = os.path.join(base, relative)
os.makedirs(os.path.dirname(path), exist_ok=True)
levels = ["debug", "info", "warning", "error"]
with open(path, "w") as f:
    for i in range(6000):
        # Four lines per millisecond: equal timestamps across levels.
        ts = ti.start_date + timedelta(milliseconds=i // 4)
        stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        line = {"timestamp": stamp, "level": levels[(i * 3 + i // 7) % 4], "event": f"v3 line {i}"}
        f.write(json.dumps(line) + "\n")

remote.upload(relative, ti)
sources, logs = remote.read(relative, ti)
with open(path) as f:
    local = f.read()


def parsed(texts):
    return [m.model_dump_json() for m in _interleave_logs(_get_compatible_log_stream(texts))]


print(
    json.dumps(
        {
            "airflow": airflow.__version__,
            "remote_type": type(remote).__name__,
            "sources": sources,
            "text_equals_local": logs == [local],
            "parsed_equal": parsed(logs) == parsed([local]),
            "parsed_records": len(parsed(logs)),
        }
    )
)
