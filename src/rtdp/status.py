"""``rtdp status``: where every line is, and whether the books balance (spec §2).

Each ingested line is a (message_id, line_number) — redeliveries repeat the pair, never add a
line. So, counted in the warehouse over distinct pairs:

    lines landed = valid events kept + duplicates removed + rejected lines

and across the platform, against the ingest ledger:

    lines ingested = lines landed + lines still queued or dead-lettered + lines in unloaded files
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Final

import duckdb
import pyarrow as pa

from rtdp import warehouse
from rtdp.backends import lake_for, queue_for
from rtdp.lake import EVENTS_PREFIX, QUARANTINE_PREFIX, Lake, LakeFile
from rtdp.ledger import Ledger
from rtdp.settings import Settings


def _written_at(path: str) -> float | None:
    """The time in a lake file's name (``20261128T034500123456Z-…``), as epoch seconds."""
    try:
        stamp = path.rsplit("/", 1)[-1].split("-", 1)[0]
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


_KEYS: Final = ["message_id", "line_number"]


def _lake_summary(lake: Lake, loaded: set[str]) -> tuple[dict[str, Any], list[LakeFile]]:
    out: dict[str, Any] = {}
    unloaded: list[LakeFile] = []
    for prefix in (EVENTS_PREFIX, QUARANTINE_PREFIX):
        files = list(lake.list(prefix))
        out[f"{prefix}_files"] = len(files)
        out[f"{prefix}_bytes"] = sum(f.size for f in files)
        unloaded += [f for f in files if f.path not in loaded]
    written = [w for w in map(_written_at, (f.path for f in unloaded)) if w is not None]
    out["unloaded_files"] = len(unloaded)
    out["oldest_unloaded_age_seconds"] = (
        round(max(0.0, time.time() - min(written)), 3) if written else None
    )
    return out, unloaded


def _warehouse_summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    raw_rows, valid_lines, events_kept, last_loaded = warehouse.one(
        con,
        f"select count(*), count(distinct (message_id, line_number)),"
        f" count(distinct event_id), max(loaded_at) from {warehouse.RAW_EVENTS}",
    )
    by_reason = dict(con.execute(
        f"select reason, count(*) from (select distinct message_id, line_number, reason"
        f" from {warehouse.RAW_QUARANTINE}) group by reason order by reason"
    ).fetchall())
    summary: dict[str, Any] = {
        "raw_rows": raw_rows,
        "valid_lines": valid_lines,
        "events_kept": events_kept,
        "duplicates_removed": valid_lines - events_kept,
        "rejected_lines": sum(by_reason.values()),
        "rejected_by_reason": by_reason,
        "lines_landed": valid_lines + sum(by_reason.values()),
        "last_loaded_at": None if last_loaded is None else last_loaded.isoformat(),
    }
    if warehouse.relation_exists(con, warehouse.ANALYTICS_SCHEMA, "stg_events"):
        (summary["stg_events_rows"],) = warehouse.one(
            con, f"select count(*) from {warehouse.ANALYTICS_SCHEMA}.stg_events"
        )
    return summary


def _new_lines_in(con: duckdb.DuckDBPyConnection, lake: Lake, files: list[LakeFile]) -> int:
    """Distinct lines in not-yet-loaded files that the warehouse does not hold yet: a line
    converted twice (redelivery) counts once, and not at all if already loaded."""
    if not files:
        return 0
    keys = pa.concat_tables(lake.read_parquet(f.path, columns=_KEYS) for f in files)
    con.register("pending_keys", keys)
    try:
        (count,) = warehouse.one(
            con,
            "select count(*) from (select distinct message_id, line_number from pending_keys"
            f" except select message_id, line_number from {warehouse.RAW_EVENTS}"
            f" except select message_id, line_number from {warehouse.RAW_QUARANTINE})",
        )
    finally:
        con.unregister("pending_keys")
    return int(count)


def collect(settings: Settings) -> dict[str, Any]:
    queue = queue_for(settings)
    try:
        q = queue.stats()
    finally:
        queue.close()
    lake = lake_for(settings)
    with warehouse.connect(settings.warehouse_path) as con:
        loaded = {r[0] for r in con.execute(
            f"select file_name from {warehouse.LOAD_HISTORY}").fetchall()}
        lake_summary, unloaded = _lake_summary(lake, loaded)
        wh = _warehouse_summary(con)
        lake_summary["unloaded_lines"] = _new_lines_in(con, lake, unloaded)
    ledger = Ledger(settings.ledger_path)
    try:
        ingested = ledger.total_lines()
    finally:
        ledger.close()
    in_queue = (q.pending_lines or 0) + (q.dead_letter_lines or 0)
    accounted = wh["lines_landed"] + in_queue + lake_summary["unloaded_lines"]
    accounting = {
        "lines_ingested": ingested,
        "events_kept": wh["events_kept"],
        "duplicates_removed": wh["duplicates_removed"],
        "rejected_lines": wh["rejected_lines"],
        "lines_in_queue": in_queue,
        "lines_in_unloaded_files": lake_summary["unloaded_lines"],
        # kept + duplicates + rejected (+ still on the way) = ingested
        "balanced": accounted == ingested,
        "settled": in_queue == 0 and lake_summary["unloaded_files"] == 0,
    }
    if "stg_events_rows" in wh:
        # false until `rtdp transform` has run over everything loaded
        accounting["stg_events_matches_raw"] = wh["stg_events_rows"] == wh["events_kept"]
    # How far behind the platform is: the oldest line not yet in the warehouse.
    ages = [a for a in (q.oldest_age_seconds, lake_summary["oldest_unloaded_age_seconds"])
            if a is not None]
    return {
        "lag_seconds": round(max(ages), 3) if ages else 0.0,
        "queue": asdict(q),
        "lake": lake_summary,
        "warehouse": {k: v for k, v in wh.items() if k != "rejected_by_reason"},
        "rejected_by_reason": wh["rejected_by_reason"],
        "accounting": accounting,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
