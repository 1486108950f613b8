"""``rtdp transform``: dbt build on the warehouse (spec §5-§8).

One ``dbt build`` per call: seeds, models and their tests (generic, singular and unit) in DAG
order, so a model's tests run before anything downstream is built from it and a failing test
stops publication downstream (the replaced system ran ``dbt run`` before ``dbt test``).
``dbt build`` loads the seeds itself, in the same invocation; a separate ``dbt seed`` would
only add one more dbt start-up (several seconds) and load them twice.

dbt runs in a subprocess with its own environment (``RTDP_HOME`` absolute, the session gap
from the settings), its project and profiles from the repository's ``dbt/`` and its
``target/`` and ``logs/`` under ``$RTDP_HOME/dbt`` so a run never writes into the repository.
The whole run holds the warehouse lock: DuckDB allows one writing process, and the loader
waits on the same lock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import rtdp
from rtdp import warehouse
from rtdp.exceptions import ConfigError, TransformError
from rtdp.settings import Settings

DBT_DIR_ENV: Final = "RTDP_DBT_DIR"
# run_results.json statuses (dbt.artifacts.schemas.results): models/seeds end in
# success|error|skipped, tests in pass|fail|warn|error|skipped.
_OK: Final = frozenset({"success", "pass"})
_FAILED: Final = frozenset({"error", "fail", "runtime error"})
_OUTPUT_TAIL_CHARS: Final = 4000


@dataclass(frozen=True)
class TransformResult:
    """What one ``dbt build`` did, counted from dbt's run_results.json."""

    models_passed: int = 0
    models_failed: int = 0
    models_skipped: int = 0
    seeds_loaded: int = 0
    tests_passed: int = 0
    tests_failed: int = 0
    tests_warned: int = 0
    unit_tests_passed: int = 0
    unit_tests_failed: int = 0
    seconds: float = 0.0
    full_refresh: bool = False
    failed_nodes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.failed_nodes

    def as_dict(self) -> dict[str, Any]:
        summary = asdict(self)
        summary["failed_nodes"] = list(self.failed_nodes)
        return summary


def dbt_project_dir() -> Path:
    """The dbt project: ``$RTDP_DBT_DIR``, else ``dbt/`` at the root of the repository."""
    configured = os.environ.get(DBT_DIR_ENV)
    project = (
        Path(configured) if configured else Path(rtdp.__file__).resolve().parents[2] / "dbt"
    )
    if not (project / "dbt_project.yml").is_file():
        raise ConfigError(
            f"no dbt project at {project} (set {DBT_DIR_ENV} to the folder of dbt_project.yml)"
        )
    return project.resolve()


def _dbt_executable() -> list[str]:
    beside_python = Path(sys.executable).with_name("dbt")
    if beside_python.is_file():
        return [str(beside_python)]
    found = shutil.which("dbt")
    if found is None:
        raise ConfigError("dbt is not installed: pip install 'rtdp[dbt]'")
    return [found]


def dbt_command(
    settings: Settings, *, full_refresh: bool = False, select: Sequence[str] = (),
    unit_tests: bool = True,
) -> tuple[list[str], dict[str, str], Path]:
    """The ``dbt build`` command line, its environment and its target directory."""
    project = dbt_project_dir()
    home = settings.home.resolve()
    target_path = home / "dbt" / "target"
    command = [
        *_dbt_executable(),
        "build",
        "--project-dir", str(project),
        "--profiles-dir", str(project),
        "--target-path", str(target_path),
        "--log-path", str(home / "dbt" / "logs"),
    ]
    if full_refresh:
        command.append("--full-refresh")
    for selector in select:
        command += ["--select", selector]
    if not unit_tests:
        # Unit tests check the models' logic, not the data: CI and development run them,
        # a scheduled production build need not (dbt's own advice).
        command += ["--exclude-resource-type", "unit_test"]
    env = {
        **os.environ,
        "RTDP_HOME": str(home),
        "RTDP_SESSION_GAP_SECONDS": str(settings.session_gap_seconds),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }
    return command, env, target_path


def _node_name(unique_id: str) -> str:
    """``test.rtdp.unique_x.ab12`` → ``unique_x``; unit tests as ``model::test``."""
    parts = unique_id.split(".")
    if parts[0] == "unit_test" and len(parts) >= 4:
        return f"{parts[2]}::{parts[3]}"
    return parts[2] if len(parts) >= 3 else unique_id


def _summarize(run_results: dict[str, Any], seconds: float, full_refresh: bool) -> TransformResult:
    counts: dict[str, int] = {}
    failed: list[str] = []
    for result in run_results.get("results", []):
        unique_id: str = result.get("unique_id", "")
        kind = unique_id.split(".", 1)[0]  # model, seed, test, unit_test, operation
        status = str(result.get("status", "")).lower()
        if status in _FAILED:
            failed.append(_node_name(unique_id))
        outcome = "ok" if status in _OK else "failed" if status in _FAILED else status
        counts[f"{kind}:{outcome}"] = counts.get(f"{kind}:{outcome}", 0) + 1
    return TransformResult(
        models_passed=counts.get("model:ok", 0),
        models_failed=counts.get("model:failed", 0),
        models_skipped=counts.get("model:skipped", 0),
        seeds_loaded=counts.get("seed:ok", 0),
        tests_passed=counts.get("test:ok", 0),
        tests_failed=counts.get("test:failed", 0),
        tests_warned=counts.get("test:warn", 0),
        unit_tests_passed=counts.get("unit_test:ok", 0),
        unit_tests_failed=counts.get("unit_test:failed", 0),
        seconds=round(seconds, 3),
        full_refresh=full_refresh,
        failed_nodes=tuple(sorted(failed)),
    )


def build(
    settings: Settings, *, full_refresh: bool = False, select: Sequence[str] = (),
    unit_tests: bool = True,
) -> TransformResult:
    """Run ``dbt build`` on the warehouse and count what it did; failed nodes are listed in
    the result, not raised (see :func:`run_transform`). Raises :class:`TransformError` only
    when dbt could not run at all (no run_results.json: bad project, profile or selector)."""
    command, env, target_path = dbt_command(settings, full_refresh=full_refresh, select=select,
                                            unit_tests=unit_tests)
    # The raw tables must exist before dbt reads them as sources. connect() runs the DDL and
    # takes the lock itself, so it comes before (not inside) the lock held for dbt.
    with warehouse.connect(settings.warehouse_path):
        pass
    run_results_path = target_path / "run_results.json"
    run_results_path.unlink(missing_ok=True)  # never read a previous run's results
    started = time.monotonic()
    with warehouse.warehouse_lock(settings.warehouse_path):
        completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if not run_results_path.is_file():
        output = (completed.stdout + completed.stderr)[-_OUTPUT_TAIL_CHARS:]
        raise TransformError(f"dbt build did not run (exit {completed.returncode}):\n{output}")
    result = _summarize(json.loads(run_results_path.read_text()), seconds, full_refresh)
    if completed.returncode != 0 and result.ok:
        # dbt failed outside any node (e.g. an on-run-start hook): say so, with its output
        output = (completed.stdout + completed.stderr)[-_OUTPUT_TAIL_CHARS:]
        raise TransformError(f"dbt build failed (exit {completed.returncode}):\n{output}")
    return result


def raise_for_failures(result: TransformResult) -> None:
    if not result.ok:
        raise TransformError(f"dbt build failed: {', '.join(result.failed_nodes)}")


def run_transform(
    settings: Settings, *, full_refresh: bool = False, select: Sequence[str] = (),
    unit_tests: bool = True,
) -> TransformResult:
    """Run ``dbt build`` on the warehouse; raise :class:`TransformError` naming the failed
    nodes if any model, seed or test failed."""
    result = build(settings, full_refresh=full_refresh, select=select, unit_tests=unit_tests)
    raise_for_failures(result)
    return result
