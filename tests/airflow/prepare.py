"""Creates a running DAG run whose task instances are queued for try 1, as the scheduler
and executor leave them before `airflow tasks run --local`. Args: DAG_ID RUN_ID."""

import sys

from airflow.models import DagBag
from airflow.utils import timezone
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState, TaskInstanceState
from airflow.utils.types import DagRunType

dag_id, run_id = sys.argv[1:3]
dag = DagBag(include_examples=False).get_dag(dag_id)
dag.sync_to_db()
now = timezone.utcnow()
with create_session() as session:
    run = dag.create_dagrun(
        state=DagRunState.RUNNING,
        execution_date=now,
        run_id=run_id,
        start_date=now,
        external_trigger=True,
        run_type=DagRunType.MANUAL,
        data_interval=(now, now),
        session=session,
    )
    tis = run.get_task_instances(session=session)
    for ti in tis:
        ti.task = dag.get_task(ti.task_id)
    run.schedule_tis(tis, session=session)
    for ti in run.get_task_instances(session=session):
        ti.state = TaskInstanceState.QUEUED
