"""The embedded warehouse: one DuckDB file, ``$RTDP_HOME/warehouse.duckdb`` (spec §8).

DuckDB lets one process write a database file at a time. Every rtdp process that opens the
warehouse (loader, dbt via ``rtdp transform``, ``rtdp status``) first takes an exclusive
``fcntl`` lock on ``warehouse.lock`` beside it and holds it only for one short unit of work, so
concurrent commands queue up instead of failing with DuckDB's lock error.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import duckdb

from rtdp.exceptions import WarehouseError

RAW_SCHEMA: Final = "raw"
ANALYTICS_SCHEMA: Final = "analytics"
RAW_EVENTS: Final = "raw.raw_realtime_data_events"
RAW_QUARANTINE: Final = "raw.raw_realtime_data_quarantine"
LOAD_HISTORY: Final = "raw.load_history"

# Snowpipe's metadata columns close every raw table: METADATA$FILENAME,
# METADATA$FILE_ROW_NUMBER (1-based) and the load time.
_METADATA_COLUMNS: Final = """
    metadata_filename varchar not null,
    metadata_file_row_number bigint not null,
    loaded_at timestamp not null
"""

DDL: Final = f"""
create schema if not exists {RAW_SCHEMA};
create table if not exists {RAW_EVENTS} (
    event_id varchar not null,
    event_type varchar not null,
    event_timestamp timestamp not null,
    event_date date not null,
    anonymous_id varchar,
    user_id varchar,
    product_id varchar,
    quantity bigint,
    order_id varchar,
    page_url varchar,
    referrer varchar,
    platform varchar,
    ip_address varchar,
    user_agent varchar,
    utm_source varchar,
    utm_medium varchar,
    utm_campaign varchar,
    raw_json varchar not null,
    message_id varchar not null,
    line_number integer not null,
    received_at timestamp not null,
    {_METADATA_COLUMNS}
);
create table if not exists {RAW_QUARANTINE} (
    raw_line varchar not null,
    reason varchar not null,
    detail varchar,
    stage varchar not null,
    message_id varchar not null,
    line_number integer not null,
    seen_at timestamp not null,
    {_METADATA_COLUMNS}
);
create table if not exists {LOAD_HISTORY} (
    file_name varchar primary key,
    file_version varchar not null,
    row_count bigint not null,
    target_table varchar not null,
    loaded_at timestamp not null
);
"""


@contextmanager
def warehouse_lock(path: Path, timeout_seconds: float = 600.0) -> Iterator[None]:
    """Hold the warehouse's process lock; wait up to ``timeout_seconds`` for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WarehouseError(
                        f"warehouse {path} stayed locked for {timeout_seconds:.0f}s"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def connect(path: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Lock, open, make sure the raw tables exist, yield, close."""
    with warehouse_lock(path):
        if read_only and not path.exists():
            con = duckdb.connect(":memory:")
        else:
            try:
                con = duckdb.connect(str(path), read_only=read_only)
            except duckdb.Error as exc:
                raise WarehouseError(f"cannot open warehouse {path}: {exc}") from exc
        try:
            con.execute("set TimeZone = 'UTC'")
            if not read_only:
                con.execute(DDL)
            yield con
        finally:
            con.close()


def one(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
) -> tuple[Any, ...]:
    """The single row of a query. DuckDB 2 keeps a result open until a fetch returns nothing,
    and refuses other work on the connection meanwhile, so fetch it all."""
    rows = con.execute(sql, params or []).fetchall()
    if len(rows) != 1:
        raise WarehouseError(f"expected one row, got {len(rows)}: {sql}")
    return tuple(rows[0])


def relation_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    (count,) = one(
        con,
        "select count(*) from information_schema.tables"
        " where table_schema = ? and table_name = ?",
        [schema, name],
    )
    return bool(count)
