"""``rtdp transform`` on a real DuckDB warehouse with real dbt: what it publishes (spec §6,
§8), that failing tests stop publication and name the node, that a changed session gap is
refused, and that the Snowflake target parses (and builds on fakesnow as far as it can)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import MARTS, RawEvent, RawRejected, insert_raw, query, seed_prices
from rtdp.exceptions import TransformError
from rtdp.settings import Settings
from rtdp.transform import build, dbt_project_dir, raise_for_failures

REPO = Path(__file__).resolve().parents[2]
SNOWFLAKE_DBT = REPO / ".venv-snowflake" / "bin" / "dbt"
T = datetime(2024, 3, 1, 23, 45)
LOADED = datetime(2024, 3, 2, 8, 0)


def small_scenario() -> list[RawEvent | RawRejected]:
    product = sorted(seed_prices())[0]
    return [
        # a1: gaps of exactly 1800 s (same session) then 1800.000001 s (new one), across midnight
        RawEvent("e1", "page_view", T, "m1", 1, anonymous_id="a1", platform="web",
                 utm_source="google", extra={"experiment": "b"}),
        RawEvent("e2", "add_to_cart", T + timedelta(seconds=1800), "m1", 2, anonymous_id="a1",
                 user_id="u_000001", product_id=product, quantity=2),
        RawEvent("e3", "checkout", T + timedelta(seconds=3600, microseconds=1), "m1", 3,
                 anonymous_id="a1", user_id="u_000001", product_id=product),
        # conflicting duplicate of e2, later timestamp: loses
        RawEvent("e2", "add_to_cart", T + timedelta(seconds=1801), "m2", 1, anonymous_id="a1"),
        # user-only key
        RawEvent("e4", "page_view", T, "m2", 2, user_id="u_orphan"),
        RawRejected("{oops", "malformed_json", "m2", 3, T),
    ]


def test_cli_transform_publishes_the_spec_relations(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    rows = small_scenario()
    insert_raw(settings, rows, loaded_at=LOADED, filename="f1.parquet")
    insert_raw(settings, [rows[0]], loaded_at=LOADED + timedelta(minutes=1),
               filename="f1-redelivered.parquet")  # same line again: a delivery duplicate

    completed = subprocess.run(
        [sys.executable, "-m", "rtdp", "transform", "--home", str(settings.home), "--json"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "RTDP_SESSION_GAP_SECONDS": "1800"},
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert summary["models_passed"] == 4 and summary["models_failed"] == 0
    assert summary["tests_failed"] == 0 and summary["tests_passed"] >= 40
    assert summary["unit_tests_passed"] >= 10 and summary["unit_tests_failed"] == 0
    assert summary["seconds"] > 0
    # dbt's artifacts live under RTDP_HOME, never in the repository
    assert (settings.home / "dbt" / "target" / "run_results.json").is_file()

    tables = {
        (r["table_schema"], r["table_name"])
        for r in query(settings, "select table_schema, table_name from information_schema.tables")
    }
    assert {("analytics", name) for name in MARTS} <= tables
    assert ("raw", "raw_realtime_data_events") in tables

    sessions = query(
        settings, "select * from analytics.fact_sessions order by session_key, session_number"
    )
    assert [(s["session_key"], s["session_number"], s["event_count"]) for s in sessions] == [
        ("a1", 1, 2), ("a1", 2, 1), ("u_orphan", 1, 1),
    ]
    first = sessions[0]
    assert first["duration_seconds"] == 1800.0
    assert first["user_id"] == "u_000001" and first["user_country"] is not None
    assert first["utm_source"] == "google" and first["platform"] == "web"
    price = seed_prices()[sorted(seed_prices())[0]]
    assert sessions[1]["revenue"] == price.quantize(Decimal("0.01"))  # quantity missing → 1
    assert sessions[1]["is_converted"] and sessions[1]["is_bounce"]
    assert sessions[2]["user_country"] is None  # orphan user

    kept = query(settings, "select event_id, event_timestamp, duplicate_line_count,"
                           " event_json->>'experiment' as experiment from analytics.stg_events"
                           " order by event_id")
    assert [k["event_id"] for k in kept] == ["e1", "e2", "e3", "e4"]
    assert kept[1]["event_timestamp"] == T + timedelta(seconds=1800)
    assert kept[0]["experiment"] == "b"  # unknown fields stay queryable
    assert [k["duplicate_line_count"] for k in kept] == [0, 1, 0, 0]
    quarantine = query(settings, "select raw_line, reason, stage from analytics.events_quarantine")
    assert quarantine == [{"raw_line": "{oops", "reason": "malformed_json", "stage": "convert"}]

    # sessions built with one gap are never extended with another: full refresh required
    refused = subprocess.run(
        [sys.executable, "-m", "rtdp", "transform", "--home", str(settings.home)],
        capture_output=True, text=True, check=False,
        env={**os.environ, "RTDP_SESSION_GAP_SECONDS": "900"},
    )
    assert refused.returncode != 0
    assert "--full-refresh" in refused.stderr


def test_failing_test_stops_publication_and_names_the_node(settings: Settings) -> None:
    insert_raw(settings, [RawEvent("x1", "teleport", T, "m1", 1, anonymous_id="a1")],
               loaded_at=LOADED, filename="f.parquet")
    result = build(settings)
    assert not result.ok
    failed_test = "accepted_values_stg_events_event_type"
    assert any(name.startswith(failed_test) for name in result.failed_nodes)
    assert result.models_passed == 2 and result.models_skipped == 2  # nothing built on bad data
    with pytest.raises(TransformError, match="accepted_values_stg_events_event_type"):
        raise_for_failures(result)


# --------------------------------------------------------------------------------------------
# Snowflake: needs dbt-snowflake (+ fakesnow[server]) in .venv-snowflake, kept out of the
# project's venv (see dbt/README.md)

needs_snowflake_venv = pytest.mark.skipif(
    not SNOWFLAKE_DBT.is_file(), reason=f"no dbt-snowflake at {SNOWFLAKE_DBT}"
)


@needs_snowflake_venv
def test_snowflake_target_parses_without_an_account(tmp_path: Path) -> None:
    project = dbt_project_dir()
    completed = subprocess.run(
        [str(SNOWFLAKE_DBT), "parse", "--project-dir", str(project), "--profiles-dir", str(project),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
         "--no-partial-parse"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "RTDP_DBT_TARGET": "snowflake", "SNOWFLAKE_ACCOUNT": "none",
             "SNOWFLAKE_USER": "none", "SNOWFLAKE_PRIVATE_KEY_PATH": str(tmp_path / "no.p8"),
             "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    assert completed.returncode == 0, completed.stdout[-3000:]
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert set(models) == set(MARTS)
    assert {m["schema"] for m in models.values()} == {"analytics"}
    assert manifest["metadata"]["adapter_type"] == "snowflake"


FAKESNOW_SCRIPT = textwrap.dedent(
    """
    import json, subprocess, sys
    import fakesnow, snowflake.connector
    from rtdp.warehouse import DDL

    dbt, project, work = sys.argv[1:4]
    with fakesnow.server() as kw:
        con = snowflake.connector.connect(**kw)
        cur = con.cursor()
        cur.execute("create database if not exists REALTIME_DATA_PLATFORM_DB")
        cur.execute("use database REALTIME_DATA_PLATFORM_DB")
        for statement in filter(str.strip, DDL.split(";")):
            cur.execute(statement)
        cur.execute(
            "insert into raw.raw_realtime_data_events (event_id, event_type, event_timestamp,"
            " event_date, anonymous_id, raw_json, message_id, line_number, received_at,"
            " metadata_filename, metadata_file_row_number, loaded_at) values"
            " ('e1', 'page_view', '2024-03-01 10:00:00', '2024-03-01', 'a1', '{}', 'm1', 1,"
            "  '2024-03-01 10:00:00', 'f', 1, '2024-03-02 00:00:00'),"
            " ('e2', 'page_view', '2024-03-01 10:30:00', '2024-03-01', 'a1', '{}', 'm1', 2,"
            "  '2024-03-01 10:00:00', 'f', 2, '2024-03-02 00:00:00')")
        with open(f"{work}/profiles.yml", "w") as f:
            f.write(json.dumps({"rtdp": {"target": "fakesnow", "outputs": {"fakesnow": {
                "type": "snowflake", "account": "fakesnow", "user": "fake", "password": "snow",
                "host": kw["host"], "port": kw["port"], "protocol": "http",
                "database": "REALTIME_DATA_PLATFORM_DB", "schema": "analytics",
                "warehouse": "fake", "role": "fake", "threads": 1}}}}))
        # fakesnow cannot run dbt-snowflake's unit tests and incremental runs (both use
        # qualified temporary tables) nor a CTAS with a column list (contracted models).
        run = subprocess.run(
            [dbt, "build", "--project-dir", project, "--profiles-dir", work,
             "--target-path", f"{work}/target", "--log-path", f"{work}/logs",
             "--exclude-resource-type", "unit_test", "--exclude", "fact_sessions"],
            capture_output=True, text=True)
        print(run.stdout[-4000:], file=sys.stderr)
        cur.execute("select event_id, session_number, session_id"
                    " from analytics.int_events_sessionized order by event_id")
        print(json.dumps({"returncode": run.returncode, "rows": cur.fetchall()}))
    """
)


@needs_snowflake_venv
def test_snowflake_models_build_on_fakesnow(tmp_path: Path) -> None:
    python = SNOWFLAKE_DBT.with_name("python")
    script = tmp_path / "fakesnow_build.py"
    script.write_text(FAKESNOW_SCRIPT)
    completed = subprocess.run(
        [str(python), str(script), str(SNOWFLAKE_DBT), str(dbt_project_dir()), str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"),
             "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    if "No module named 'fakesnow'" in completed.stderr:
        pytest.skip("fakesnow is not installed in .venv-snowflake")
    assert completed.returncode == 0, completed.stderr[-4000:]
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    assert outcome["returncode"] == 0, completed.stderr[-4000:]
    session_id = "ce613a23614211abb6fb4a46e25293ba"  # md5('a1|e1'), same as on DuckDB
    assert outcome["rows"] == [["e1", 1, session_id], ["e2", 1, session_id]]
