"""``RTDP_AIRFLOW_MODE=local``: a dbt step as a subprocess on the worker, on the embedded
DuckDB warehouse (``$RTDP_HOME/warehouse.duckdb``, the ``local`` target of profiles.yml).

dbt is rtdp's (``RTDP_DBT_BIN``, e.g. ``.venv/bin/dbt``), not a package of Airflow's
environment: the two do not install together. The step runs the same ``dbt`` arguments as
the pod does. It holds the warehouse lock for the whole run, exactly as ``rtdp transform``
and the loader do (``rtdp.warehouse.warehouse_lock``: an exclusive ``flock`` on
``$RTDP_HOME/warehouse.lock``): DuckDB allows one writing process, so the loader waits for dbt
and dbt for the loader instead of either failing on DuckDB's own file lock.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Final

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from rtdp_airflow.settings import LocalSettings

_POLL_SECONDS: Final = 0.2


@contextmanager
def warehouse_lock(home: Path, timeout_seconds: float) -> Iterator[None]:
    """The lock of ``rtdp.warehouse.warehouse_lock`` (same file, same ``flock``)."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / "warehouse.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AirflowException(f"warehouse {home} stayed locked for "
                                           f"{timeout_seconds:.0f} s") from None
                time.sleep(_POLL_SECONDS)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def dbt_environment(settings: LocalSettings, extra: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment plus what points dbt at the project and the embedded
    warehouse; target and logs under ``$RTDP_HOME/dbt`` as with ``rtdp transform``."""
    home = settings.home.resolve()
    project = settings.project_dir.resolve()
    return {
        **os.environ,
        **extra,
        "RTDP_HOME": str(home),
        "RTDP_DBT_TARGET": "local",
        "DBT_PROJECT_DIR": str(project),
        "DBT_PROFILES_DIR": str(project),
        "DBT_TARGET_PATH": str(home / "dbt" / "target"),
        "DBT_LOG_PATH": str(home / "dbt" / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }


class LocalDbtOperator(BaseOperator):
    """Run ``dbt ARGS`` in a subprocess under the warehouse lock; its output goes to the task
    log line by line; a non-zero exit fails the task (and so retries it)."""

    template_fields: ClassVar[Sequence[str]] = ("arguments",)
    ui_color = "#ff694a"

    def __init__(self, *, arguments: Sequence[str], settings: LocalSettings,
                 dbt_env: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arguments = list(arguments)
        self.settings = settings
        self.dbt_env = dict(dbt_env)
        self._process: subprocess.Popen[str] | None = None

    @property
    def command(self) -> list[str]:
        return [self.settings.dbt_bin, *self.arguments]

    def execute(self, context: Any) -> None:
        env = dbt_environment(self.settings, self.dbt_env)
        self.log.info("running %s (RTDP_HOME=%s)", " ".join(self.command), env["RTDP_HOME"])
        with warehouse_lock(Path(env["RTDP_HOME"]), self.settings.lock_timeout_seconds):
            try:
                self._process = subprocess.Popen(
                    self.command, env=env, cwd=env["DBT_PROJECT_DIR"], text=True,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                )
            except FileNotFoundError:
                raise AirflowException(
                    f"dbt not found: {self.settings.dbt_bin!r} "
                    "(set RTDP_DBT_BIN to rtdp's dbt, e.g. .venv/bin/dbt)") from None
            assert self._process.stdout is not None
            for line in self._process.stdout:
                self.log.info("%s", line.rstrip())
            returncode = self._process.wait()
        if returncode != 0:
            raise AirflowException(f"{' '.join(self.command)} exited {returncode}")

    def on_kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
