"""
# dbt_realtime_platform_workflow

rtdp's transformation: raw events (loaded continuously by `rtdp load` or Snowpipe) →
`stg_events` → `int_events_sessionized` → `fact_sessions`, plus `events_quarantine`.

1. `dbt_source_freshness` — `dbt source freshness`: a stalled loader fails the run before
   anything is rebuilt from stale data.
2. `dbt_seed` — `dbt seed`: reference data (users, products) before the models that join it.
3. `dbt_build` — `dbt build --exclude-resource-type unit_test --exclude-resource-type seed`:
   each model, then its tests, in dependency order, so nothing untested is published.
4. `dbt_docs_generate` — `dbt docs generate`: documentation artifacts of what was built.

Every 15 minutes, one run at a time, no catch-up: the models are incremental, so a run
processes what arrived since the last one, and a missed interval is covered by the next.
Failed tasks retry with exponential backoff; a final failure is logged and, when
`RTDP_ALERT_WEBHOOK_URL` is set, posted there.

**Modes** (`RTDP_AIRFLOW_MODE`): `kubernetes` (default) runs each step in its own pod from the
dbt image (`images/dbt`, tag `RTDP_DBT_IMAGE_TAG`) against Snowflake, credentials from
Kubernetes Secrets; `local` runs the same dbt commands in a subprocess (`RTDP_DBT_BIN`) on the
embedded DuckDB warehouse in `RTDP_HOME`, under the warehouse lock the loader also takes.
Configuration comes from environment variables only (`dags/rtdp_airflow/settings.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, BaseOperator, chain
from rtdp_airflow import settings as rtdp_settings
from rtdp_airflow.alerts import failure_callback
from rtdp_airflow.steps import STEPS, DbtStep

DAG_ID = "dbt_realtime_platform_workflow"
SETTINGS = rtdp_settings.from_env()
on_failure = failure_callback(SETTINGS.alert_webhook_url)


def dbt_task(step: DbtStep) -> BaseOperator:
    """The step as a pod (kubernetes mode) or as a local subprocess (local mode)."""
    common: dict[str, Any] = {"execution_timeout": SETTINGS.execution_timeout}
    if SETTINGS.mode is rtdp_settings.Mode.LOCAL:
        from rtdp_airflow.local import LocalDbtOperator

        return LocalDbtOperator(task_id=step.task_id, doc_md=step.doc, arguments=step.args,
                                settings=SETTINGS.local, dbt_env=dict(SETTINGS.dbt_env),
                                **common)
    from rtdp_airflow.pods import dbt_pod_operator

    return dbt_pod_operator(step, SETTINGS.kubernetes, dict(SETTINGS.dbt_env), **common)


with DAG(
    dag_id=DAG_ID,
    description="dbt: source freshness → seed → build (run + test per model) → docs",
    doc_md=__doc__,
    schedule=SETTINGS.schedule,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=SETTINGS.execution_timeout * len(STEPS),
    tags=["rtdp", "dbt", "transformation"],
    default_args={
        "owner": "rtdp",
        "retries": SETTINGS.retries,
        "retry_delay": SETTINGS.retry_delay,
        "retry_exponential_backoff": 2.0,  # 1 min, 2 min, 4 min, ... up to max_retry_delay
        "max_retry_delay": SETTINGS.max_retry_delay,
        "on_failure_callback": on_failure,
    },
    on_failure_callback=on_failure,
) as dag:
    chain(*(dbt_task(step) for step in STEPS))
