"""``rtdp demo``: the whole platform on this machine, as it runs in production.

Producer, converter and loader run as separate ``rtdp`` processes, concurrently, on the
embedded queue, lake and warehouse; dbt transforms incrementally every few seconds while data
flows. The producer first sends a backfill (the last hours of traffic, as fast as it can, so
sessions have their real length), then real-time traffic at ``rate`` for ``seconds``. When it
is done, the converter is stopped with SIGTERM (it flushes), the loader drains, one last
transform runs, and the summary is read from the warehouse. Freshness is measured on the
real-time events only: a backfilled event is old by construction.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rtdp import warehouse
from rtdp.settings import Settings
from rtdp.status import collect
from rtdp.transform import run_transform
from rtdp.workers import Worker


@dataclass(frozen=True)
class DemoConfig:
    seconds: float = 20.0
    rate: int = 5000
    backfill_events: int = 50_000
    seed: int = 42
    transform_every_seconds: float = 10.0
    reset: bool = False


def _reset(settings: Settings) -> None:
    for name in ("queue.sqlite", "queue.sqlite-wal", "queue.sqlite-shm", "ledger.sqlite",
                 "ledger.sqlite-wal", "ledger.sqlite-shm", "warehouse.duckdb",
                 "warehouse.duckdb.wal", "warehouse.lock"):
        (settings.home / name).unlink(missing_ok=True)
    shutil.rmtree(settings.home / "lake", ignore_errors=True)
    shutil.rmtree(settings.home / "dbt", ignore_errors=True)


def run_demo(settings: Settings, config: DemoConfig,
             on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    if config.reset:
        _reset(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RTDP_HOME": str(settings.home.resolve()),
           "RTDP_FLUSH_SECONDS": os.environ.get("RTDP_FLUSH_SECONDS", "1")}
    started = time.monotonic()
    workers: list[Worker] = []
    transforms = 0
    produced: dict[str, Any] = {}
    next_transform = time.monotonic() + config.transform_every_seconds

    def run_producer(args: list[str]) -> dict[str, Any]:
        nonlocal transforms, next_transform
        producer = Worker("produce", ["produce", *args], env)
        workers.append(producer)
        while producer.proc.poll() is None:
            time.sleep(0.5)
            if on_progress:
                on_progress(collect_quick(settings))
            if time.monotonic() >= next_transform:
                run_transform(settings, unit_tests=False)  # incremental, as data flows
                transforms += 1
                next_transform = time.monotonic() + config.transform_every_seconds
        return producer.finish(terminate=False)

    try:
        converter = Worker("convert", ["convert", "--follow"], env)
        loader = Worker("load", ["load", "--follow", "--poll-seconds", "0.5"], env)
        workers += [converter, loader]
        if config.backfill_events:
            produced["backfill"] = run_producer(
                ["--events", str(config.backfill_events), "--seed", str(config.seed)])
        realtime_from = datetime.now(UTC)
        produced["realtime"] = run_producer(
            ["--rate", str(config.rate), "--duration", str(config.seconds),
             "--seed", str(config.seed + 1)])
        converted = converter.finish(terminate=True)
        loaded = loader.finish(terminate=True)
        final_load = Worker("load", ["load", "--once"], env).finish(terminate=False)
        transform = run_transform(settings, unit_tests=False)
        transforms += 1
    finally:
        for worker in workers:
            worker.kill()
    summary = summarize(settings, realtime_from)
    summary["pipeline"] = {
        "events_produced": sum(int(p.get("events", 0)) for p in produced.values()),
        "backfill_events": int(produced.get("backfill", {}).get("events", 0)),
        "lines_converted": converted.get("lines"),
        "files_loaded": int(loaded.get("files", 0)) + int(final_load.get("files", 0)),
        "transform_runs": transforms,
        "last_transform_seconds": transform.seconds,
        "seconds": round(time.monotonic() - started, 1),
    }
    return summary


def collect_quick(settings: Settings) -> dict[str, Any]:
    """Queue depth and lake files, cheap enough to poll (no warehouse lock)."""
    from rtdp.backends import lake_for, queue_for

    queue = queue_for(settings)
    try:
        stats = queue.stats()
    finally:
        queue.close()
    lake = lake_for(settings)
    return {
        "queue_depth": stats.depth,
        "in_flight": stats.in_flight,
        "lake_files": sum(1 for _ in lake.list("events")),
    }


def summarize(settings: Settings, realtime_from: datetime | None = None) -> dict[str, Any]:
    """Sessions, rates, revenue, events, duplicates, rejections and freshness (event time →
    loaded, over events stamped at or after ``realtime_from``)."""
    since = (realtime_from or datetime(2000, 1, 1, tzinfo=UTC)).astimezone(UTC)
    status = collect(settings)
    with warehouse.connect(settings.warehouse_path) as con:
        sessions, bounce, conversion, revenue = warehouse.one(
            con,
            "select count(*), avg(is_bounce::int), avg(is_converted::int),"
            " coalesce(sum(revenue), 0) from analytics.fact_sessions",
        )
        (events,) = warehouse.one(con, "select count(*) from analytics.stg_events")
        p50, p99 = warehouse.one(
            con,
            "select quantile_cont(s, 0.5), quantile_cont(s, 0.99) from ("
            " select epoch(loaded_at - event_timestamp) as s"
            f" from {warehouse.RAW_EVENTS} where event_timestamp >= ?)",
            [since.replace(tzinfo=None)],
        )
    accounting = status["accounting"]
    return {
        "sessions": sessions,
        "bounce_rate": None if bounce is None else round(bounce, 4),
        "conversion_rate": None if conversion is None else round(conversion, 4),
        "revenue": float(revenue),
        "events": events,
        "duplicates_removed": accounting["duplicates_removed"],
        "rejected_by_reason": status["rejected_by_reason"],
        "freshness_p50_seconds": None if p50 is None else round(p50, 3),
        "freshness_p99_seconds": None if p99 is None else round(p99, 3),
        "accounting_balanced": accounting["balanced"],
        "lines_ingested": accounting["lines_ingested"],
    }
