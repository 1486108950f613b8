"""The dbt steps of the transformation DAG, in order, as dbt command lines.

Both execution modes run exactly these arguments after ``dbt``; everything that differs
between a pod and the worker (project, profiles, target and log directories, the dbt target)
travels in the environment (``DBT_PROJECT_DIR``, ``DBT_PROFILES_DIR``, ``DBT_TARGET_PATH``,
``DBT_LOG_PATH``, ``RTDP_DBT_TARGET``), never in the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DBT: Final = "dbt"


@dataclass(frozen=True)
class DbtStep:
    task_id: str
    args: tuple[str, ...]  # after `dbt`
    doc: str

    @property
    def pod_name(self) -> str:
        """A DNS-1123 name for the step's pod (the operator appends a random suffix)."""
        return self.task_id.replace("_", "-")

    @property
    def command(self) -> list[str]:
        return [DBT, *self.args]


SOURCE_FRESHNESS: Final = DbtStep(
    "dbt_source_freshness", ("source", "freshness"),
    "Raw tables must have been loaded recently (error after 24 h without a new event row): "
    "a stalled loader fails the run before anything is rebuilt from stale data.",
)
SEED: Final = DbtStep(
    "dbt_seed", ("seed",),
    "Reference data (users, products) loaded before the models that join to it.",
)
BUILD: Final = DbtStep(
    "dbt_build",
    # Seeds were loaded by the step before; unit tests check the models' logic, not the
    # data, and run in CI (`rtdp transform` runs them), not every 15 minutes.
    ("build", "--exclude-resource-type", "unit_test", "--exclude-resource-type", "seed"),
    "Models and their data tests in dependency order: a model's tests run before anything "
    "downstream is built from it, so a failing test stops publication (never `dbt run` "
    "then `dbt test`).",
)
DOCS_GENERATE: Final = DbtStep(
    "dbt_docs_generate", ("docs", "generate"),
    "Documentation artifacts (manifest.json, catalog.json, index.html) of what was built.",
)

STEPS: Final = (SOURCE_FRESHNESS, SEED, BUILD, DOCS_GENERATE)
