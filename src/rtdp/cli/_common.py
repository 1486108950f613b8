"""Options and output shared by every command: ``--home``, ``--json``, the summary line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from rtdp.settings import Settings

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="RTDP_HOME",
        help="Directory of the local backends (queue, lake, warehouse). Default ./.rtdp",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print a machine-readable summary as the last line.")
]

stderr = Console(stderr=True)


def settings_for(home: Path | None) -> Settings:
    return Settings.from_env(home)


def live_progress_enabled(as_json: bool) -> bool:
    """Live progress only on a terminal, never with --json."""
    return not as_json and sys.stderr.isatty()


def emit(summary: dict[str, Any], as_json: bool, title: str) -> None:
    """Print the summary: a table for people, or one JSON line (the last line) for machines."""
    if as_json:
        print(json.dumps(summary, sort_keys=True, default=str))
        return
    console = Console()
    console.print(f"[bold]{title}[/bold]")
    for key, value in summary.items():
        if isinstance(value, dict):
            console.print(f"  {key}:")
            for sub, subvalue in value.items():
                console.print(f"    {sub}: {subvalue}")
        else:
            console.print(f"  {key}: {value}")
