"""``rtdp transform``: dbt build on the warehouse; ``--full-refresh`` rebuilds everything."""

from __future__ import annotations

from typing import Annotated

import typer

from rtdp.cli._common import HomeOption, JsonOption, emit, settings_for
from rtdp.transform import build, raise_for_failures


def transform(
    full_refresh: Annotated[
        bool,
        typer.Option("--full-refresh", help="Rebuild every model from all raw data."),
    ] = False,
    select: Annotated[
        list[str] | None,
        typer.Option("--select", "-s", help="dbt node selection, passed through (repeatable)."),
    ] = None,
    unit_tests: Annotated[
        bool,
        typer.Option("--unit-tests/--no-unit-tests",
                     help="Run dbt's unit tests too (model logic; skip in scheduled builds)."),
    ] = True,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Seed, build and test the dbt models on the warehouse; tests gate publication."""
    settings = settings_for(home)
    result = build(settings, full_refresh=full_refresh, select=select or (),
                   unit_tests=unit_tests)
    summary = result.as_dict()
    summary["warehouse"] = str(settings.warehouse_path.resolve())
    emit(summary, json_, "transform")
    raise_for_failures(result)


def register(app: typer.Typer) -> None:
    app.command("transform")(transform)
