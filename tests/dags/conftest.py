"""Airflow DAG tests: run with .venv-airflow's python (`make test` does), where Airflow and its
Kubernetes provider are installed; skipped from collection in any environment without Airflow
(rtdp's .venv: Airflow and dbt do not install together).

Airflow reads its configuration when first imported, so this module points it at a throwaway
AIRFLOW_HOME (SQLite metadata database) and at the repository's dags/ before any test imports it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_ID = "dbt_realtime_platform_workflow"

if importlib.util.find_spec("airflow") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    _AIRFLOW_HOME = tempfile.mkdtemp(prefix="rtdp-airflow-home-")
    os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
    # The provider loads a Kubernetes configuration to build a pod object; this one names a
    # server nobody listens on, so nothing here can reach a real cluster by accident. Set
    # before anything imports the Kubernetes client (it reads KUBECONFIG once, at import).
    _KUBECONFIG = Path(_AIRFLOW_HOME) / "kubeconfig"
    _KUBECONFIG.write_text("""\
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: nobody
  user: {token: not-a-token}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: nobody, namespace: default}
current-context: nowhere
""")
    os.environ["KUBECONFIG"] = str(_KUBECONFIG)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    home = os.environ.get("AIRFLOW_HOME", "")
    if home.startswith(tempfile.gettempdir()) and "rtdp-airflow-home-" in home:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The metadata database (SQLite in this session's AIRFLOW_HOME) that ``dag.test()``
    records its run in, created once."""
    from airflow.utils.db import initdb

    initdb()


# Every setting the DAG reads: a test states the ones it wants, the rest are unset.
DAG_ENV_PREFIXES = ("RTDP_",)


@pytest.fixture
def dag_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A clean RTDP_* environment for parsing the DAG."""
    for name in list(os.environ):
        if name.startswith(DAG_ENV_PREFIXES):
            monkeypatch.delenv(name)
    yield monkeypatch


def parse_dags(env: Mapping[str, str] | None = None) -> Any:
    """A fresh parse of dags/ as the DAG processor does it (bundle path on sys.path),
    with ``env`` set for the parse only."""
    from airflow.dag_processing.dagbag import BundleDagBag

    saved = {name: os.environ.get(name) for name in (env or {})}
    os.environ.update(env or {})
    try:
        return BundleDagBag(str(DAGS), bundle_path=DAGS)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value




def pytest_configure(config: pytest.Config) -> None:
    # Airflow 3.3's own .airflowignore reader and in-process API client, not ours
    config.addinivalue_line("filterwarnings", "ignore:GitWildMatchPattern:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")
