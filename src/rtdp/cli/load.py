"""``rtdp load``: lake → warehouse raw tables, each file exactly once."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from rtdp.backends import lake_for
from rtdp.cli._common import HomeOption, JsonOption, emit, live_progress_enabled, settings_for
from rtdp.load import Loader, LoadStats
from rtdp.progress import live_line
from rtdp.signals import stop_on_signals


def load(
    once: Annotated[bool, typer.Option("--once", help="Load what is there, then exit.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep loading new files until SIGTERM (default).")
    ] = False,
    poll_seconds: Annotated[
        float, typer.Option("--poll-seconds", min=0.05, help="How often to look for new files.")
    ] = 1.0,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Load new lake files into raw.raw_realtime_data_events and the raw quarantine table."""
    if once and follow:
        raise typer.BadParameter("--once and --follow exclude each other")
    settings = settings_for(home)
    stop = stop_on_signals()
    loader = Loader(lake_for(settings), settings)
    started = time.monotonic()
    with live_line("load", live_progress_enabled(json_)) as line:

        def progress(stats: LoadStats) -> None:
            line.update(files=stats.files, events=stats.event_rows,
                        quarantined=stats.quarantine_rows)

        stats = loader.run(follow=not once, poll_seconds=poll_seconds, stop=stop,
                           on_progress=progress)
    emit({**stats.as_dict(), "seconds": round(time.monotonic() - started, 3)}, json_, "load")


def register(app: typer.Typer) -> None:
    app.command("load")(load)
