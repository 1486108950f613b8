"""The DAG's configuration, read from environment variables only, once, at parse time.

Nothing here touches the network, a database or a file: Airflow parses DAG files every
``min_file_process_interval`` seconds, so parsing must stay cheap. A bad value raises
:class:`ValueError`, which Airflow shows as the DAG file's import error.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

# dags/ sits beside dbt/ in the repository; the image sets RTDP_DBT_PROJECT_DIR instead.
_REPO_DBT_DIR: Final = Path(__file__).resolve().parents[2] / "dbt"


class Mode(enum.Enum):
    """Where the dbt steps run."""

    KUBERNETES = "kubernetes"  # one pod per step, from the dbt image (the default)
    LOCAL = "local"  # a subprocess on the Airflow worker, on the embedded DuckDB warehouse


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


@dataclass(frozen=True)
class KubernetesSettings:
    """How the dbt pods are made (``RTDP_AIRFLOW_MODE=kubernetes``)."""

    image: str  # repository:tag or repository@sha256:digest — never a moving tag
    namespace: str
    service_account: str
    conn_id: str
    resources: Resources
    # A Secret whose keys become the pod's environment (SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER,
    # optionally SNOWFLAKE_PRIVATE_KEY_PASSPHRASE, SNOWFLAKE_ROLE, ...: profiles.yml's names).
    snowflake_secret: str
    # A Secret holding the private key (key-pair auth), mounted read-only as a file.
    snowflake_key_secret: str
    snowflake_key_secret_key: str
    dbt_target: str
    docs_pvc: str | None  # a PersistentVolumeClaim for the docs artifacts, else kept in the pod
    startup_timeout_seconds: int


@dataclass(frozen=True)
class LocalSettings:
    """How dbt runs on the worker (``RTDP_AIRFLOW_MODE=local``)."""

    dbt_bin: str  # rtdp's dbt (its .venv), not Airflow's environment
    project_dir: Path
    home: Path  # RTDP_HOME: the embedded warehouse is $RTDP_HOME/warehouse.duckdb
    lock_timeout_seconds: float


@dataclass(frozen=True)
class Settings:
    mode: Mode
    schedule: str
    retries: int
    retry_delay: timedelta
    max_retry_delay: timedelta
    execution_timeout: timedelta
    alert_webhook_url: str | None
    # Passed to dbt in either mode when set (same names as rtdp's settings and dbt vars).
    dbt_env: Mapping[str, str]
    kubernetes: KubernetesSettings
    local: LocalSettings


_PASSED_TO_DBT: Final = ("RTDP_SESSION_GAP_SECONDS", "RTDP_INCREMENTAL_LOOKBACK_SECONDS")


def image_reference(repository: str, tag: str) -> str:
    """``repository:tag`` (or ``repository@sha256:…``); refuses a missing or moving tag."""
    if not repository or ":" in repository.rsplit("/", 1)[-1] or "@" in repository:
        raise ValueError(f"RTDP_DBT_IMAGE must be a repository without a tag: {repository!r}")
    if tag.startswith("sha256:"):
        return f"{repository}@{tag}"
    if not tag or tag == "latest":
        raise ValueError("RTDP_DBT_IMAGE_TAG must name one build (a version or commit SHA), "
                         f"not {tag!r}: a moving tag makes runs unreproducible")
    return f"{repository}:{tag}"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = int(env.get(name, default))
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    try:
        mode = Mode(env.get("RTDP_AIRFLOW_MODE", Mode.KUBERNETES.value))
    except ValueError:
        raise ValueError("RTDP_AIRFLOW_MODE must be 'kubernetes' or 'local', "
                         f"got {env.get('RTDP_AIRFLOW_MODE')!r}") from None
    kubernetes = KubernetesSettings(
        image=image_reference(env.get("RTDP_DBT_IMAGE", "rtdp-dbt"),
                              env.get("RTDP_DBT_IMAGE_TAG", "0.1.0")),
        namespace=env.get("RTDP_K8S_NAMESPACE", "rtdp"),
        service_account=env.get("RTDP_DBT_SERVICE_ACCOUNT", "rtdp-dbt"),
        conn_id=env.get("RTDP_K8S_CONN_ID", "kubernetes_default"),
        resources=Resources(
            cpu_request=env.get("RTDP_DBT_CPU_REQUEST", "250m"),
            memory_request=env.get("RTDP_DBT_MEMORY_REQUEST", "512Mi"),
            cpu_limit=env.get("RTDP_DBT_CPU_LIMIT", "1"),
            memory_limit=env.get("RTDP_DBT_MEMORY_LIMIT", "1Gi"),
        ),
        snowflake_secret=env.get("RTDP_SNOWFLAKE_SECRET", "rtdp-snowflake"),
        snowflake_key_secret=env.get("RTDP_SNOWFLAKE_KEY_SECRET", "rtdp-snowflake-key"),
        snowflake_key_secret_key=env.get("RTDP_SNOWFLAKE_KEY_SECRET_KEY", "rsa_key.p8"),
        dbt_target=env.get("RTDP_DBT_TARGET", "snowflake"),
        docs_pvc=env.get("RTDP_DBT_DOCS_PVC") or None,
        startup_timeout_seconds=_int(env, "RTDP_DBT_POD_STARTUP_TIMEOUT_SECONDS", 300),
    )
    local = LocalSettings(
        dbt_bin=env.get("RTDP_DBT_BIN", "dbt"),
        project_dir=Path(env.get("RTDP_DBT_PROJECT_DIR", str(_REPO_DBT_DIR))),
        home=Path(env.get("RTDP_HOME", ".rtdp")),
        lock_timeout_seconds=float(env.get("RTDP_WAREHOUSE_LOCK_TIMEOUT_SECONDS", "600")),
    )
    return Settings(
        mode=mode,
        # Every 15 minutes: the lake lands continuously and the models are incremental, so a
        # run costs the new rows only; one run at a time (max_active_runs=1) keeps runs from
        # queueing on the warehouse when one is slow.
        schedule=env.get("RTDP_DBT_SCHEDULE", "*/15 * * * *"),
        retries=_int(env, "RTDP_DBT_RETRIES", 2),
        retry_delay=timedelta(seconds=_int(env, "RTDP_DBT_RETRY_DELAY_SECONDS", 60)),
        max_retry_delay=timedelta(seconds=_int(env, "RTDP_DBT_MAX_RETRY_DELAY_SECONDS", 600)),
        execution_timeout=timedelta(seconds=_int(env, "RTDP_DBT_TIMEOUT_SECONDS", 1800)),
        alert_webhook_url=env.get("RTDP_ALERT_WEBHOOK_URL") or None,
        dbt_env={name: env[name] for name in _PASSED_TO_DBT if env.get(name)},
        kubernetes=kubernetes,
        local=local,
    )
