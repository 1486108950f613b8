"""``rtdp convert``: queue → Parquet lake, as a worker or draining once."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from rtdp.backends import lake_for, queue_for
from rtdp.cli._common import HomeOption, JsonOption, emit, live_progress_enabled, settings_for
from rtdp.convert import Converter, ConvertStats
from rtdp.progress import every, live_line
from rtdp.signals import stop_on_signals


def convert(
    once: Annotated[
        bool, typer.Option("--once", help="Drain what is queued, then exit.")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Run as a worker until SIGTERM (the default).")
    ] = False,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Convert queued NDJSON events to date-partitioned Parquet; quarantine rejected lines.

    Messages are deleted only after their files are durable. SIGTERM flushes and exits.
    """
    if once and follow:
        raise typer.BadParameter("--once and --follow exclude each other")
    settings = settings_for(home)
    stop = stop_on_signals()
    queue = queue_for(settings)
    converter = Converter(queue, lake_for(settings), settings)
    started = time.monotonic()
    due = every(0.25)
    try:
        with live_line("convert", live_progress_enabled(json_)) as line:

            def progress(stats: ConvertStats) -> None:
                if line.enabled and due():  # queue.stats() is not free: only when shown
                    line.update(lines=stats.lines, events=stats.events,
                                rejected=sum(stats.rejected.values()), files=stats.files,
                                queue_depth=queue.stats().depth)

            stats = converter.run(follow=not once, stop=stop, on_progress=progress)
    finally:
        converter.close()
        queue.close()
    emit({**stats.as_dict(), "seconds": round(time.monotonic() - started, 3)}, json_, "convert")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
