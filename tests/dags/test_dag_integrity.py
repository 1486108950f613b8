"""The DAG as the DAG processor parses it: no import errors, and the schedule, retries, task
order and configuration it promises, in both execution modes."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest

from tests.dags.conftest import DAG_ID, parse_dags

ORDER = ["dbt_source_freshness", "dbt_seed", "dbt_build", "dbt_docs_generate"]
BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test", "--exclude-resource-type", "seed"]


def _dag(env: dict[str, str] | None = None) -> Any:
    bag = parse_dags(env)
    assert bag.import_errors == {}
    assert list(bag.dags) == [DAG_ID]
    return bag.dags[DAG_ID]


@pytest.mark.parametrize("mode", ["kubernetes", "local"])
def test_dag_imports_and_keeps_its_promises(dag_env: pytest.MonkeyPatch, mode: str) -> None:
    dag = _dag({"RTDP_AIRFLOW_MODE": mode})
    assert dag.schedule == "*/15 * * * *"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.start_date == datetime(2026, 1, 1, tzinfo=UTC)
    assert {"rtdp", "dbt"} <= set(dag.tags)
    assert dag.doc_md and dag.doc_md.lstrip().startswith(f"# {DAG_ID}")
    assert dag.on_failure_callback is not None
    # a straight line, in this order
    assert [t.task_id for t in dag.topological_sort()] == ORDER
    for upstream, downstream in itertools.pairwise(ORDER):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    for task in dag.tasks:
        assert task.retries == 2
        assert task.retry_exponential_backoff == 2.0
        assert task.max_retry_delay == timedelta(minutes=10)
        assert task.execution_timeout == timedelta(minutes=30)
        assert task.on_failure_callback, task.task_id
        assert task.doc_md, task.task_id


def test_modes_run_the_same_dbt_commands(dag_env: pytest.MonkeyPatch) -> None:
    pods = _dag({"RTDP_AIRFLOW_MODE": "kubernetes"})
    local = _dag({"RTDP_AIRFLOW_MODE": "local", "RTDP_DBT_BIN": "/opt/rtdp/.venv/bin/dbt"})
    assert {type(t).__name__ for t in pods.tasks} == {"KubernetesPodOperator"}
    assert {type(t).__name__ for t in local.tasks} == {"LocalDbtOperator"}
    for task_id in ORDER:
        pod, proc = pods.get_task(task_id), local.get_task(task_id)
        assert pod.cmds == ["dbt"]
        assert proc.command == ["/opt/rtdp/.venv/bin/dbt", *pod.arguments]
    assert pods.get_task("dbt_build").arguments == BUILD_ARGS
    assert pods.get_task("dbt_source_freshness").arguments == ["source", "freshness"]


def test_configuration_comes_from_the_environment(dag_env: pytest.MonkeyPatch) -> None:
    dag = _dag({"RTDP_DBT_SCHEDULE": "*/5 * * * *", "RTDP_DBT_RETRIES": "4",
                "RTDP_DBT_IMAGE": "registry.example/rtdp-dbt", "RTDP_DBT_IMAGE_TAG": "3f2a9c1",
                "RTDP_K8S_NAMESPACE": "analytics", "RTDP_SESSION_GAP_SECONDS": "900"})
    assert dag.schedule == "*/5 * * * *"
    build = dag.get_task("dbt_build")
    assert build.retries == 4
    assert build.image == "registry.example/rtdp-dbt:3f2a9c1"
    assert build.namespace == "analytics"
    assert {"name": "RTDP_SESSION_GAP_SECONDS", "value": "900"} in [
        {"name": e.name, "value": e.value} for e in build.env_vars]


@pytest.mark.parametrize(("env", "error"), [
    ({"RTDP_DBT_IMAGE_TAG": "latest"}, "RTDP_DBT_IMAGE_TAG"),
    ({"RTDP_DBT_IMAGE_TAG": ""}, "RTDP_DBT_IMAGE_TAG"),
    ({"RTDP_DBT_IMAGE": "rtdp-dbt:latest"}, "RTDP_DBT_IMAGE"),
    ({"RTDP_AIRFLOW_MODE": "docker"}, "RTDP_AIRFLOW_MODE"),
    ({"RTDP_DBT_RETRIES": "-1"}, "RTDP_DBT_RETRIES"),
])
def test_bad_configuration_is_an_import_error(dag_env: pytest.MonkeyPatch, env: dict[str, str],
                                              error: str) -> None:
    bag = parse_dags(env)
    assert bag.dags == {}
    (message,) = bag.import_errors.values()
    assert error in message


def test_an_image_digest_is_accepted(dag_env: pytest.MonkeyPatch) -> None:
    digest = "sha256:" + "ab" * 32
    dag = _dag({"RTDP_DBT_IMAGE_TAG": digest})
    assert dag.get_task("dbt_seed").image == f"rtdp-dbt@{digest}"


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_failure_callback_logs_and_posts_to_the_webhook(
        dag_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/alert"
        dag = _dag({"RTDP_ALERT_WEBHOOK_URL": url})
        ti = type("TI", (), {"dag_id": DAG_ID, "run_id": "scheduled__x", "task_id": "dbt_build",
                             "try_number": 3, "log_url": "http://airflow/log"})()
        callback = dag.get_task("dbt_build").on_failure_callback[0]
        callback({"ti": ti, "exception": RuntimeError("dbt build exited 1")})
    finally:
        server.shutdown()
    assert _Webhook.received == [{
        "dag_id": DAG_ID, "run_id": "scheduled__x", "task_id": "dbt_build", "try_number": 3,
        "error": "dbt build exited 1", "log_url": "http://airflow/log"}]
    assert "dbt build exited 1" in caplog.text


def test_a_broken_webhook_does_not_raise(dag_env: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    dag = _dag({"RTDP_ALERT_WEBHOOK_URL": "http://127.0.0.1:1/nobody-listens"})
    dag.on_failure_callback({"reason": "task_failure", "dag_run": None})
    assert "could not post the failure alert" in caplog.text
