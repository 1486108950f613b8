"""``rtdp dlq``: the dead-letter queue."""

from __future__ import annotations

import typer

from rtdp.backends import queue_for
from rtdp.cli._common import HomeOption, JsonOption, emit, settings_for

dlq_app = typer.Typer(help="Inspect and redrive the dead-letter queue.", no_args_is_help=True)


@dlq_app.command("redrive")
def redrive(home: HomeOption = None, json_: JsonOption = False) -> None:
    """Move every dead-lettered message back to the queue, receive count reset."""
    queue = queue_for(settings_for(home))
    try:
        moved = queue.redrive_dead_letters()
    finally:
        queue.close()
    emit({"redriven": moved}, json_, "dlq redrive")


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app, name="dlq")
