"""``rtdp ingest FILE...``: send each line of NDJSON files to the queue as it is."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from rtdp.backends import lake_for, queue_for
from rtdp.cli._common import HomeOption, JsonOption, emit, settings_for
from rtdp.exceptions import ConfigError
from rtdp.ingest import Ingestor
from rtdp.ledger import Ledger


def ingest(
    files: Annotated[list[Path], typer.Argument(help="NDJSON files ('-' is not supported).")],
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Send every non-blank line of FILES to the queue, malformed lines included.

    Lines that cannot travel through a queue (invalid UTF-8, longer than a message) are
    quarantined in the lake here, with their reason: nothing is lost.
    """
    for path in files:
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
    settings = settings_for(home)
    started = time.monotonic()
    queue = queue_for(settings)
    ledger = Ledger(settings.ledger_path)
    try:
        stats = Ingestor(queue, lake_for(settings), ledger,
                         max_message_bytes=settings.max_message_bytes).ingest(files)
    finally:
        queue.close()
        ledger.close()
    emit({**stats.as_dict(), "seconds": round(time.monotonic() - started, 3)}, json_, "ingest")


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
