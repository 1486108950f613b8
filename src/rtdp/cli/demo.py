"""``rtdp demo``: produce, queue, convert, land, load and transform locally, then a summary."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rtdp.cli._common import HomeOption, JsonOption, emit, live_progress_enabled, settings_for
from rtdp.demo import DemoConfig, run_demo
from rtdp.progress import live_line


def demo(
    seconds: Annotated[
        float, typer.Option("--seconds", min=1, help="How long the producer runs.")
    ] = 20.0,
    rate: Annotated[int, typer.Option("--rate", min=1, help="Events per second.")] = 5000,
    backfill: Annotated[
        int, typer.Option("--backfill", min=0, help="Events of recent history sent first.")
    ] = 50_000,
    seed: Annotated[int, typer.Option("--seed", help="Producer seed (deterministic).")] = 42,
    transform_every: Annotated[
        float, typer.Option("--transform-every", min=1, help="Seconds between dbt runs.")
    ] = 10.0,
    reset: Annotated[
        bool, typer.Option("--reset", help="Start from an empty queue, lake and warehouse.")
    ] = False,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """The whole platform on this machine: producer, converter and loader run concurrently
    while dbt transforms incrementally; then sessions, rates, revenue and freshness."""
    settings = settings_for(home)
    config = DemoConfig(seconds=seconds, rate=rate, seed=seed, backfill_events=backfill,
                        transform_every_seconds=transform_every, reset=reset)
    with live_line("demo", live_progress_enabled(json_)) as line:

        def progress(values: dict[str, Any]) -> None:
            line.update(**values)

        summary = run_demo(settings, config, on_progress=progress)
    emit(summary, json_, "rtdp demo")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
