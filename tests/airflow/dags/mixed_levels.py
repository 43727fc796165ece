"""A task whose log mixes levels, has multi-line records and runs past 5000 lines."""

import logging
from datetime import datetime

from airflow import DAG
from airflow.operators.python import PythonOperator

LINES = 6000
LEVELS = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]


def chatter():
    log = logging.getLogger("airflow.task")
    for i in range(LINES):
        # Irregular level pattern, varied lengths, some non-ASCII.
        level = LEVELS[(i * 7 + i // 13) % 4]
        log.log(level, "line %05d of %d %s %s", i, LINES, "ü€" if i % 97 == 0 else "", "x" * (i % 61))
        if i == 2500:
            try:
                {}["missing"]
            except KeyError:
                log.exception("caught at line %d", i)
        if i == 4000:
            log.warning("a multi-line message\n  second line\n\n  after an empty line")
            print("printed to stdout")
    raise_and_catch()


def raise_and_catch():
    try:
        int("not a number")
    except ValueError:
        logging.getLogger("airflow.task").error("final error", exc_info=True)


with DAG("mixed_levels", start_date=datetime(2024, 1, 1), schedule=None, catchup=False):
    PythonOperator(task_id="chatter", python_callable=chatter)
