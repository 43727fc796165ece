"""Airflow's default logging config with the task handler swapped for SiltTaskHandler.

    AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS=silt_airflow.log_config.LOGGING_CONFIG

Settings come from the `[silt]` section (`AIRFLOW__SILT__URL`, ...); see docs/airflow.md.
"""

from copy import deepcopy

from airflow.config_templates.airflow_local_settings import DEFAULT_LOGGING_CONFIG

LOGGING_CONFIG = deepcopy(DEFAULT_LOGGING_CONFIG)
LOGGING_CONFIG["handlers"]["task"]["class"] = "silt_airflow.handler.SiltTaskHandler"
