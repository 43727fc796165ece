"""Reads a finished task's log back as the Airflow webserver does and prints facts as JSON
for the Rust test: the Silt copy versus the local file, and how Loki-style streams split.
Args: DAG_ID TASK_ID RUN_ID SILT_URL."""

import json
import os
import shutil
import sys
import tempfile
import urllib.parse

from airflow.models import TaskInstance
from airflow.utils.log.file_task_handler import FileTaskHandler
from airflow.utils.log.log_reader import TaskLogReader
from airflow.utils.session import create_session

from silt_airflow.client import SiltClient, records
from silt_airflow.handler import SiltTaskHandler

dag_id, task_id, run_id, url = sys.argv[1:5]


def body(text):
    """The log text after Airflow's "Log message source details" group."""
    return text.split("::endgroup::\n", 1)[1]


with create_session() as session:
    ti = session.query(TaskInstance).filter_by(dag_id=dag_id, task_id=task_id, run_id=run_id).one()
    session.expunge(ti)

reader = TaskLogReader()  # the configured task handler, as the webserver uses it
handler = reader.log_handler
assert isinstance(handler, SiltTaskHandler), type(handler)
try_number = ti.try_number
path = os.path.join(handler.local_base, handler._render_filename(ti, try_number))
with open(path, encoding="utf-8") as f:
    local = f.read()

requests = []
real_request = handler.silt.client._request
handler.silt.client._request = lambda m, p, *a: requests.append(p) or real_request(m, p, *a)
entries, notes, query = handler.silt.read_entries(ti, try_number)
handler.silt.client._request = real_request
remote = "\n".join(line for _, line in entries) + "\n"

# One page as the provider reads it (limit 5000): streams concatenated in the server's order.
start, end = handler.silt.window(ti, try_number)
params = {"query": query, "start": start.isoformat(), "end": end.isoformat(), "limit": 5000,
          "direction": "forward"}
raw = SiltClient(url)._request("GET", "/loki/api/v1/query_range?" + urllib.parse.urlencode(params))
streams = json.loads(raw)["data"]["result"]
provider = [v[1] for s in streams for v in s["values"]]
first = [line for _, line in entries[: len(provider)]]

# The UI path with the local file moved away, so only Silt can answer.
away = tempfile.mkdtemp()
shutil.move(path, away)
logs, meta = reader.read_log_chunks(ti, try_number, {})
ui_silt = logs[0][0][1]
shutil.move(os.path.join(away, os.path.basename(path)), path)
stock, _ = FileTaskHandler(handler.local_base)._read(ti, try_number, {})

print(
    json.dumps(
        {
            "try_number": try_number,
            "state": str(ti.state),
            "local_lines": local.count("\n"),
            "local_records": len(records(local, 0)),
            "entries": len(entries),
            "remote_equals_local": remote == local,
            "query_requests": sum(1 for p in requests if "query_range" in p),
            "notes": notes,
            "streams": len(streams),
            "stream_levels": sorted({s["stream"].get("detected_level", "") for s in streams}),
            "provider_entries": len(provider),
            "provider_in_order": provider == first,
            "provider_same_entries": sorted(provider) == sorted(first),
            "ui_equals_stock": body(ui_silt) == body(stock),
            "ui_lines": body(ui_silt).count("\n"),
            "ui_names_silt": "Read %d entries from Silt" % len(entries) in ui_silt,
            "end_of_log": meta.get("end_of_log"),
            "query": query,
            "grafana": handler.get_external_log_url(ti, try_number) if handler.supports_external_link else "",
        }
    )
)
