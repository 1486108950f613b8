"""The platform through the real CLI on SQS and S3 emulators, against the embedded backends.

``rtdp ingest`` → ``convert --once`` → ``load --once`` → ``transform`` with ``RTDP_QUEUE_URL``
on an SQS emulator and ``RTDP_LAKE_URI`` on an S3 emulator must give the warehouse the same
``stg_events``, ``fact_sessions`` and quarantine as the SQLite queue and local lake do for the
same input (compared with EXCEPT both ways). Only delivery metadata may differ: message ids,
file names, load and receive times.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.cloud import servers
from tests.cloud.conftest import S3Server, SqsServer
from tests.support import Corpus, make_corpus, run_rtdp

LINES = 2000
# Small messages, so the corpus travels as several messages and batches.
PIPELINE_ENV = {"RTDP_MAX_MESSAGE_BYTES": str(70 * 1024), "RTDP_FLUSH_SECONDS": "0.5",
                "RTDP_VISIBILITY_TIMEOUT_SECONDS": "60"}
# Columns that name a delivery, not an event.
DELIVERY_COLUMNS = ("message_id", "line_number", "received_at", "metadata_filename",
                    "metadata_file_row_number", "loaded_at", "_max_loaded_at")


def _run_pipeline(corpus: Corpus, env: dict[str, str]) -> dict[str, object]:
    ingested = run_rtdp("ingest", str(corpus.path), env=env)
    assert ingested["sent_lines"] == corpus.lines
    converted = run_rtdp("convert", "--once", env=env)
    assert converted["lines"] == corpus.lines
    assert converted["failed_messages"] == 0
    loaded = run_rtdp("load", "--once", env=env)
    assert loaded["event_rows"] == converted["events"]
    transformed = run_rtdp("transform", env=env, timeout=600)
    assert transformed["models_failed"] == 0 and transformed["tests_failed"] == 0
    return run_rtdp("status", env=env)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("input") / "events.ndjson", LINES, seed=21)


@pytest.fixture(scope="module")
def local_home(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same input through the embedded queue, lake and warehouse: the reference."""
    home = tmp_path_factory.mktemp("local-home")
    env = {**PIPELINE_ENV, "RTDP_HOME": str(home), "RTDP_QUEUE_URL": "", "RTDP_LAKE_URI": ""}
    _run_pipeline(corpus, env)
    return home


def _assert_same(con: duckdb.DuckDBPyConnection, relation: str, exclude: tuple[str, ...] = (),
                 columns: str = "*") -> int:
    excluded = f" exclude ({', '.join(exclude)})" if exclude else ""
    select = f"select {columns}{excluded}"
    only_cloud = con.execute(f"{select} from cloud.{relation} except all"
                             f" {select} from local.{relation}").fetchall()
    only_local = con.execute(f"{select} from local.{relation} except all"
                             f" {select} from cloud.{relation}").fetchall()
    assert only_cloud == [] and only_local == [], (relation, only_cloud[:3], only_local[:3])
    (rows,) = con.execute(f"select count(*) from cloud.{relation}").fetchone() or (0,)
    return int(rows)


@pytest.mark.slow
@pytest.mark.parametrize("backends", ["moto", "elasticmq+minio"])
def test_cloud_backends_give_the_same_warehouse_as_local_ones(
    backends: str, corpus: Corpus, local_home: Path, tmp_path: Path,
    request: pytest.FixtureRequest, aws_env: dict[str, str],
) -> None:
    names = ("moto", "moto") if backends == "moto" else ("elasticmq", "minio")
    for name in names:
        if reason := servers.unavailable(name):
            pytest.skip(reason)
    sqs_server: servers.Server = request.getfixturevalue(f"{names[0]}_server")
    s3_server: servers.Server = request.getfixturevalue(f"{names[1]}_server")
    sqs = SqsServer(sqs_server.name, sqs_server.endpoint)
    s3 = S3Server(s3_server.name, s3_server.endpoint)
    home = tmp_path / "cloud-home"
    env = {
        **aws_env, **PIPELINE_ENV,
        "RTDP_HOME": str(home),
        "RTDP_QUEUE_URL": sqs.create_queue(visibility_timeout=60),
        "RTDP_LAKE_URI": f"s3://{s3.create_bucket()}/lake",
        "AWS_ENDPOINT_URL_S3": s3.endpoint,  # standard AWS configuration; SQS uses its URL
    }

    status = _run_pipeline(corpus, env)
    accounting = status["accounting"]
    assert isinstance(accounting, dict)
    assert accounting["lines_ingested"] == corpus.lines
    assert accounting["balanced"] is True and accounting["settled"] is True, accounting
    assert status["queue"] == {"depth": 0, "in_flight": 0, "dead_letter": 0,
                               "oldest_age_seconds": None, "pending_lines": None,
                               "dead_letter_lines": None}
    lake = status["lake"]
    assert isinstance(lake, dict) and lake["events_files"] > 0 and lake["unloaded_files"] == 0
    assert not (home / "lake").exists()  # the files went to S3, the loader read them there

    con = duckdb.connect(":memory:")
    try:
        con.execute(f"attach '{home / 'warehouse.duckdb'}' as cloud (read_only)")
        con.execute(f"attach '{local_home / 'warehouse.duckdb'}' as local (read_only)")
        events = _assert_same(con, "analytics.stg_events", exclude=DELIVERY_COLUMNS)
        assert events == len(corpus.valid_event_ids)
        sessions = _assert_same(con, "analytics.fact_sessions")
        assert sessions > 0
        rejected = _assert_same(con, "analytics.events_quarantine", columns="raw_line, reason")
        assert rejected == len(corpus.bad_lines)
        (files,) = con.execute("select count(*) from cloud.raw.load_history where"
                               " file_version <> ''").fetchone() or (0,)
        assert files == lake["events_files"] + lake["quarantine_files"]  # keyed by ETag
    finally:
        con.close()
