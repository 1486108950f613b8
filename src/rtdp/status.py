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
from typing import Any

from rtdp import warehouse
from rtdp.backends import lake_for, queue_for
from rtdp.lake import EVENTS_PREFIX, QUARANTINE_PREFIX
from rtdp.ledger import Ledger
from rtdp.settings import Settings


def _written_at(path: str) -> float | None:
    """The time in a lake file's name (``20261128T034500123456Z-…``), as epoch seconds."""
    try:
        stamp = path.rsplit("/", 1)[-1].split("-", 1)[0]
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _lake_summary(settings: Settings, loaded: set[str]) -> dict[str, Any]:
    lake = lake_for(settings)
    out: dict[str, Any] = {}
    unloaded_rows = 0
    unloaded_files = 0
    oldest_unloaded: float | None = None
    for prefix in (EVENTS_PREFIX, QUARANTINE_PREFIX):
        files = list(lake.list(prefix))
        out[f"{prefix}_files"] = len(files)
        out[f"{prefix}_bytes"] = sum(f.size for f in files)
        for f in files:
            if f.path not in loaded:
                unloaded_files += 1
                unloaded_rows += lake.parquet_rows(f.path)
                written = _written_at(f.path)
                if written is not None and (oldest_unloaded is None or written < oldest_unloaded):
                    oldest_unloaded = written
    out["unloaded_files"] = unloaded_files
    out["unloaded_rows"] = unloaded_rows
    out["oldest_unloaded_age_seconds"] = (
        None if oldest_unloaded is None else round(max(0.0, time.time() - oldest_unloaded), 3)
    )
    return out


def _warehouse_summary(settings: Settings) -> tuple[dict[str, Any], set[str]]:
    path = settings.warehouse_path
    if not path.exists():
        return {"raw_rows": 0, "lines_landed": 0, "valid_lines": 0, "events_kept": 0,
                "duplicates_removed": 0, "rejected_lines": 0, "rejected_by_reason": {},
                "last_loaded_at": None}, set()
    with warehouse.connect(path) as con:
        loaded = {r[0] for r in con.execute(
            f"select file_name from {warehouse.LOAD_HISTORY}").fetchall()}
        raw_rows, valid_lines, events_kept, last_loaded = con.execute(
            f"select count(*), count(distinct (message_id, line_number)),"
            f" count(distinct event_id), max(loaded_at) from {warehouse.RAW_EVENTS}"
        ).fetchone() or (0, 0, 0, None)
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
            row = con.execute(f"select count(*) from {warehouse.ANALYTICS_SCHEMA}.stg_events")
            summary["stg_events_rows"] = (row.fetchone() or (0,))[0]
    return summary, loaded


def collect(settings: Settings) -> dict[str, Any]:
    queue = queue_for(settings)
    try:
        q = queue.stats()
    finally:
        queue.close()
    wh, loaded = _warehouse_summary(settings)
    lake = _lake_summary(settings, loaded)
    ledger = Ledger(settings.ledger_path)
    try:
        ingested = ledger.total_lines()
    finally:
        ledger.close()
    in_queue = (q.pending_lines or 0) + (q.dead_letter_lines or 0)
    accounted = wh["lines_landed"] + in_queue + lake["unloaded_rows"]
    accounting = {
        "lines_ingested": ingested,
        "events_kept": wh["events_kept"],
        "duplicates_removed": wh["duplicates_removed"],
        "rejected_lines": wh["rejected_lines"],
        "lines_in_queue": in_queue,
        "lines_in_unloaded_files": lake["unloaded_rows"],
        # kept + duplicates + rejected (+ still in flight) = ingested
        "balanced": accounted == ingested,
        "settled": in_queue == 0 and lake["unloaded_rows"] == 0,
    }
    if "stg_events_rows" in wh:
        # false until `rtdp transform` has run over everything loaded
        accounting["stg_events_matches_raw"] = wh["stg_events_rows"] == wh["events_kept"]
    # How far behind the platform is: the oldest line not yet in the warehouse.
    ages = [a for a in (q.oldest_age_seconds, lake["oldest_unloaded_age_seconds"]) if a is not None]
    return {
        "lag_seconds": round(max(ages), 3) if ages else 0.0,
        "queue": asdict(q),
        "lake": lake,
        "warehouse": {k: v for k, v in wh.items() if k != "rejected_by_reason"},
        "rejected_by_reason": wh["rejected_by_reason"],
        "accounting": accounting,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
