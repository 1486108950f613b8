"""``rtdp status``: queue, lake, warehouse and the accounting identity."""

from __future__ import annotations

from typing import Annotated

import typer

from rtdp.cli._common import HomeOption, JsonOption, emit, settings_for
from rtdp.status import collect


def status(
    home: HomeOption = None,
    json_: JsonOption = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 unless the accounting balances.")
    ] = False,
) -> None:
    """Queue and dead-letter depth, oldest message age, lake files, raw rows, rejected lines
    by reason, and lines ingested = kept + duplicates removed + rejected (+ in flight)."""
    summary = collect(settings_for(home))
    emit(summary, json_, "status")
    if check and not summary["accounting"]["balanced"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("status")(status)
