"""`rtdp demo` and `rtdp bench --quick` through the real CLI: they run and say something true."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from rtdp.bench import RESULT_KEYS
from tests.support import run_rtdp

FACT_SESSIONS_COLUMNS = {
    "session_id", "session_key", "session_number", "user_id", "session_start", "session_end",
    "duration_seconds", "event_count", "page_view_count", "product_view_count",
    "add_to_cart_count", "remove_from_cart_count", "checkout_count", "revenue", "is_bounce",
    "is_converted", "utm_source", "utm_medium", "utm_campaign", "platform", "user_country",
}


def test_demo_runs_the_platform_and_the_books_balance(home: Path) -> None:
    summary = run_rtdp("demo", "--seconds", "3", "--rate", "300", "--backfill", "3000",
                       "--transform-every", "30", "--reset")
    assert summary["accounting_balanced"] is True
    pipeline = summary["pipeline"]
    assert isinstance(pipeline, dict)
    assert pipeline["events_produced"] == summary["lines_ingested"]
    assert pipeline["lines_converted"] == summary["lines_ingested"]
    rejected = summary["rejected_by_reason"]
    assert isinstance(rejected, dict)
    # kept + duplicates + rejected = every line the producer sent
    assert summary["events"] + summary["duplicates_removed"] + sum(rejected.values()) == (
        summary["lines_ingested"])
    assert 0 < summary["sessions"] <= summary["events"]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        columns = {r[0] for r in con.execute(
            "select column_name from information_schema.columns"
            " where table_schema = 'analytics' and table_name = 'fact_sessions'").fetchall()}
        (sessions,) = con.execute("select count(*) from analytics.fact_sessions").fetchone() or (0,)
        relations = {tuple(r) for r in con.execute(
            "select table_schema, table_name from information_schema.tables").fetchall()}
    finally:
        con.close()
    assert columns >= FACT_SESSIONS_COLUMNS
    assert sessions == summary["sessions"]
    for relation in [("raw", "raw_realtime_data_events"), ("analytics", "stg_events"),
                     ("analytics", "events_quarantine"), ("analytics", "int_events_sessionized"),
                     ("analytics", "fact_sessions")]:
        assert relation in relations


def test_bench_quick_measures_every_sub_benchmark(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    values = run_rtdp("bench", "all", "--quick", "--out", str(out), timeout=900)
    assert set(values) == set(RESULT_KEYS)
    assert all(isinstance(values[k], int | float) and values[k] > 0 for k in RESULT_KEYS)
    written = json.loads((out / "latest.json").read_text())
    assert {k: written[k] for k in RESULT_KEYS} == values
    assert "| `convert_eps` |" in (out / "latest.md").read_text()
