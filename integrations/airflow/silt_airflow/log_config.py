"""Airflow's default logging config with Silt as the remote task log:

    AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS=silt_airflow.log_config.LOGGING_CONFIG

Airflow 2: the `task` handler becomes SiltTaskHandler. Airflow 3: `REMOTE_TASK_LOG` is a
SiltRemoteLogIO (the task handler stays). Settings come from the `[silt]` section
(`AIRFLOW__SILT__URL`, ...); see docs/airflow.md.
"""

from copy import deepcopy

import airflow
from airflow.config_templates.airflow_local_settings import DEFAULT_LOGGING_CONFIG

LOGGING_CONFIG = deepcopy(DEFAULT_LOGGING_CONFIG)
REMOTE_TASK_LOG = None

if int(airflow.__version__.split(".")[0]) >= 3:
    from silt_airflow.remote_io import SiltRemoteLogIO

    REMOTE_TASK_LOG = SiltRemoteLogIO(LOGGING_CONFIG["handlers"]["task"]["base_log_folder"])
else:
    LOGGING_CONFIG["handlers"]["task"]["class"] = "silt_airflow.handler.SiltTaskHandler"
