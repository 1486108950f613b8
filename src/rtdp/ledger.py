"""The ingest ledger: how many lines producers and ``rtdp ingest`` handed to the platform.

It is the left side of the accounting identity (spec §2): every line counted here must end up
as a kept event, a removed duplicate or a quarantined line — or still be on its way (queued,
dead-lettered, or in a lake file not yet loaded). A line is counted after the queue accepted it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


class Ledger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=60.0, isolation_level=None)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute(
            "create table if not exists ingested ("
            " at real not null, source text not null, lines integer not null,"
            " rejected_at_ingest integer not null default 0)"
        )

    def record(self, source: str, lines: int, rejected_at_ingest: int = 0) -> None:
        if lines or rejected_at_ingest:
            self._db.execute(
                "insert into ingested values (?, ?, ?, ?)",
                (time.time(), source, lines, rejected_at_ingest),
            )

    def total_lines(self) -> int:
        row = self._db.execute(
            "select coalesce(sum(lines), 0) from ingested"
        ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()
