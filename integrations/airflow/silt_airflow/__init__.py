"""Airflow task logs in Silt: `SiltTaskHandler` (Airflow 2.x) and `SiltRemoteLogIO` (3.x)."""

__version__ = "0.1.0"
