"""``rtdp bench``: throughput, freshness and dbt cost beside the alternatives, same run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rtdp.bench import KINDS, BenchConfig, markdown, merge_previous, run, write_results
from rtdp.cli._common import JsonOption, emit


def bench(
    kind: Annotated[str, typer.Argument(help=f"One of {', '.join(KINDS)} or all.")] = "all",
    events: Annotated[
        int, typer.Option("--events", min=100, help="Events for convert and produce.")
    ] = 1_000_000,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    quick: Annotated[
        bool, typer.Option("--quick", help="Tiny sizes: exercise every path, no real numbers.")
    ] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Where latest.json and latest.md go.")
    ] = Path("bench/results"),
    json_: JsonOption = False,
) -> None:
    """Measure rtdp and, on the same events, DuckDB's bare COPY, pyarrow and the original
    pandas converter; producer rate; freshness at sustained rates; dbt full vs incremental."""
    if kind != "all" and kind not in KINDS:
        raise typer.BadParameter(f"{kind!r}: choose one of {', '.join(KINDS)} or all")
    kinds = list(KINDS) if kind == "all" else [kind]
    config = BenchConfig(events=events, seed=seed)
    if quick:
        config = config.quick()
    console = Console(stderr=True, quiet=json_)
    result = run(kinds, config, say=lambda msg: console.print(f"[dim]{msg}[/dim]"))
    json_path, _ = write_results(merge_previous(result, out, kinds), out)
    if not json_:
        Console().print(markdown(result))
        Console().print(f"written to {json_path}")
    else:
        emit(result.values, json_, "bench")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
