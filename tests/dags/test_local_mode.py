"""``RTDP_AIRFLOW_MODE=local``: real Airflow runs the DAG (``dag.test()``: scheduler logic and
task runner in one process, a SQLite metadata database) and each task runs rtdp's real dbt
from ``.venv`` on an embedded DuckDB warehouse that rtdp's real CLI loaded first."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dags.conftest import DAG_ID, REPO, parse_dags
from tests.support import make_corpus

VENV_BIN = REPO / ".venv" / "bin"  # rtdp's environment: rtdp, dbt, duckdb (`make setup`)
ORDER = ["dbt_source_freshness", "dbt_seed", "dbt_build", "dbt_docs_generate"]


def _rtdp(*args: str, home: Path) -> dict[str, object]:
    proc = subprocess.run([str(VENV_BIN / "rtdp"), *args, "--json"], capture_output=True,
                          text=True, env={**os.environ, "RTDP_HOME": str(home)}, timeout=300)
    assert proc.returncode == 0, f"rtdp {' '.join(args)}:\n{proc.stderr}\n{proc.stdout}"
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _query(home: Path, sql: str) -> list[tuple[object, ...]]:
    """A read-only query on the warehouse with .venv's DuckDB (Airflow's env has none)."""
    code = ("import duckdb, json, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
            "print(json.dumps(con.execute(sys.argv[2]).fetchall(), default=str))")
    proc = subprocess.run([str(VENV_BIN / "python"), "-c", code,
                           str(home / "warehouse.duckdb"), sql],
                          capture_output=True, text=True, check=True, timeout=60)
    return [tuple(row) for row in json.loads(proc.stdout)]


@pytest.fixture
def local_env(dag_env: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    assert (VENV_BIN / "dbt").is_file(), "rtdp's .venv is missing: run `make setup`"
    env = {"RTDP_AIRFLOW_MODE": "local", "RTDP_DBT_BIN": str(VENV_BIN / "dbt"),
           "RTDP_HOME": str(tmp_path / "rtdp-home"),
           "RTDP_DBT_RETRIES": "0"}  # a failure fails the run now, not after the backoff
    for name, value in env.items():
        dag_env.setenv(name, value)
    yield env


@pytest.mark.slow
def test_dag_test_builds_sessions_on_the_embedded_warehouse(
        airflow_db: None, local_env: dict[str, str], tmp_path: Path) -> None:
    home = Path(local_env["RTDP_HOME"])
    corpus = make_corpus(tmp_path / "events.ndjson", 2000)
    _rtdp("ingest", str(corpus.path), home=home)
    _rtdp("convert", "--once", home=home)
    _rtdp("load", "--once", home=home)

    dag = parse_dags().dags[DAG_ID]
    run = dag.test()

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == dict.fromkeys(ORDER, "success")
    assert run.state == "success"
    (sessions,) = _query(home, "select count(*) from analytics.fact_sessions")
    assert sessions[0] > 0
    # the build is complete: every valid event id of the input is in staging exactly once
    (events,) = _query(home, "select count(*), count(distinct event_id) from analytics.stg_events")
    assert events == (len(corpus.valid_event_ids), len(corpus.valid_event_ids))
    # each step left its artifacts where `rtdp transform` keeps dbt's (under $RTDP_HOME)
    target = home / "dbt" / "target"
    freshness = json.loads((target / "sources.json").read_text())
    assert {r["status"] for r in freshness["results"]} <= {"pass", "warn"}
    assert (target / "catalog.json").is_file() and (target / "index.html").is_file()
    run_results = json.loads((target / "run_results.json").read_text())
    assert run_results["args"]["which"] == "generate"


def test_a_failing_dbt_fails_the_task(local_env: dict[str, str]) -> None:
    from airflow.sdk.exceptions import AirflowException

    task = parse_dags({"RTDP_DBT_BIN": "false"}).dags[DAG_ID].get_task("dbt_seed")
    with pytest.raises(AirflowException, match="exited 1"):
        task.execute(context={})
    missing = parse_dags({"RTDP_DBT_BIN": "/nonexistent/dbt"}).dags[DAG_ID].get_task("dbt_seed")
    with pytest.raises(AirflowException, match="RTDP_DBT_BIN"):
        missing.execute(context={})


def test_steps_wait_for_the_warehouse_lock_rtdp_holds(local_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    """rtdp's own lock (rtdp.warehouse.warehouse_lock, in .venv) held by another process:
    the step starts dbt only once it is released — the loader and dbt never overlap."""
    home = Path(local_env["RTDP_HOME"])
    home.mkdir(parents=True)
    stamp = tmp_path / "dbt-started"
    fake_dbt = tmp_path / "dbt"
    fake_dbt.write_text(f"#!/bin/sh\ndate +%s.%N > {stamp}\n")
    fake_dbt.chmod(0o755)
    hold = ("import sys, time; from pathlib import Path\n"
            "from rtdp.warehouse import warehouse_lock\n"
            "with warehouse_lock(Path(sys.argv[1])):\n"
            "    print('locked', flush=True); time.sleep(2); print(time.time(), flush=True)\n")
    holder = subprocess.Popen([str(VENV_BIN / "python"), "-c", hold,
                               str(home / "warehouse.duckdb")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        task = parse_dags({"RTDP_DBT_BIN": str(fake_dbt)}).dags[DAG_ID].get_task("dbt_build")
        started = time.time()
        task.execute(context={})
        released = float(holder.stdout.readline())
    finally:
        holder.wait(timeout=30)
    assert float(stamp.read_text()) >= released > started
