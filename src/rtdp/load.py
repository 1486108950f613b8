"""The loader: lake files → warehouse raw tables, each file exactly once (Snowpipe semantics).

Every file is loaded in the same transaction as its row in ``raw.load_history``, so a file is
either loaded and recorded or neither; loaders are serialized by the warehouse lock, and a file
already in the history is skipped. Each row carries Snowpipe's metadata: the file name, its row
number in the file (1-based) and the load time. ``loaded_at`` strictly increases from one load
to the next, so dbt can use it as an incremental watermark.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import duckdb
import pyarrow as pa

from rtdp import warehouse
from rtdp.exceptions import WarehouseError
from rtdp.lake import EVENTS_PREFIX, QUARANTINE_PREFIX, Lake, LakeFile
from rtdp.settings import Settings

log = logging.getLogger(__name__)

_TARGETS: Final = {EVENTS_PREFIX: warehouse.RAW_EVENTS, QUARANTINE_PREFIX: warehouse.RAW_QUARANTINE}
_FILES_PER_TRANSACTION: Final = 64


@dataclass
class LoadStats:
    files: int = 0
    event_rows: int = 0
    quarantine_rows: int = 0
    skipped_files: int = 0  # already in the load history
    passes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "files": self.files,
            "event_rows": self.event_rows,
            "quarantine_rows": self.quarantine_rows,
            "skipped_files": self.skipped_files,
        }


class Loader:
    def __init__(self, lake: Lake, settings: Settings) -> None:
        self.lake = lake
        self.settings = settings
        self.stats = LoadStats()

    def pending_files(self) -> list[tuple[str, LakeFile]]:
        return [(prefix, f) for prefix in _TARGETS for f in self.lake.list(prefix)]

    def load_once(self) -> LoadStats:
        """Load every lake file not yet in the load history."""
        candidates = self.pending_files()
        self.stats.passes += 1
        if not candidates:
            return self.stats
        with warehouse.connect(self.settings.warehouse_path) as con:
            loaded = _loaded_names(con, [f.path for _, f in candidates])
            todo = [(p, f) for p, f in candidates if f.path not in loaded]
            self.stats.skipped_files += len(candidates) - len(todo)
            for start in range(0, len(todo), _FILES_PER_TRANSACTION):
                self._load_chunk(con, todo[start : start + _FILES_PER_TRANSACTION])
        return self.stats

    def _load_chunk(self, con: duckdb.DuckDBPyConnection,
                    chunk: list[tuple[str, LakeFile]]) -> None:
        loaded_at = _next_load_time(con)
        con.execute("begin transaction")
        try:
            for prefix, lake_file in chunk:
                rows = self._load_file(con, prefix, lake_file, loaded_at)
                if prefix == EVENTS_PREFIX:
                    self.stats.event_rows += rows
                else:
                    self.stats.quarantine_rows += rows
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        self.stats.files += len(chunk)

    def _load_file(self, con: duckdb.DuckDBPyConnection, prefix: str, lake_file: LakeFile,
                   loaded_at: datetime) -> int:
        table = self.lake.read_parquet(lake_file.path)
        n = int(table.num_rows)
        table = table.append_column(
            "metadata_file_row_number", pa.array(range(1, n + 1), pa.int64())
        )
        target = _TARGETS[prefix]
        con.register("lake_file", table)
        try:
            con.execute(
                f"insert into {target} by name"
                " select * exclude (event_date), ? as metadata_filename, ? as loaded_at,"
                " event_date from lake_file"
                if prefix == EVENTS_PREFIX
                else f"insert into {target} by name"
                " select *, ? as metadata_filename, ? as loaded_at from lake_file",
                [lake_file.path, loaded_at],
            )
            con.execute(
                f"insert into {warehouse.LOAD_HISTORY} values (?, ?, ?, ?, ?)",
                [lake_file.path, lake_file.version, n, target, loaded_at],
            )
        except duckdb.ConstraintException as exc:
            raise WarehouseError(f"{lake_file.path} is already in the load history") from exc
        finally:
            con.unregister("lake_file")
        return n

    def run(self, *, follow: bool, poll_seconds: float = 1.0,
            stop: threading.Event | None = None,
            on_progress: Callable[[LoadStats], None] | None = None) -> LoadStats:
        stop = stop or threading.Event()
        while True:
            before = self.stats.files
            self.load_once()
            if on_progress:
                on_progress(self.stats)
            if not follow or stop.is_set():
                return self.stats
            if self.stats.files == before:
                stop.wait(poll_seconds)


def _loaded_names(con: duckdb.DuckDBPyConnection, names: list[str]) -> set[str]:
    con.register("candidate_names", pa.table({"file_name": names}))
    try:
        rows = con.execute(
            f"select h.file_name from {warehouse.LOAD_HISTORY} h"
            " join candidate_names c using (file_name)"
        ).fetchall()
    finally:
        con.unregister("candidate_names")
    return {r[0] for r in rows}


def _next_load_time(con: duckdb.DuckDBPyConnection) -> datetime:
    """Now, or one microsecond after the last load if the clock has not moved past it."""
    now = datetime.now(UTC).replace(tzinfo=None)
    (last,) = warehouse.one(con, f"select max(loaded_at) from {warehouse.LOAD_HISTORY}")
    if last is not None and last >= now:
        return last + timedelta(microseconds=1)  # type: ignore[no-any-return]
    return now
