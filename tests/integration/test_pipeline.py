"""The embedded platform through the real CLI: ingest → convert → load, with crashes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import duckdb

from tests.support import RTDP, Corpus, make_corpus, run_rtdp

# Small messages and batches so a run has many messages, files and chances to crash.
SMALL = {
    "RTDP_MAX_MESSAGE_BYTES": str(70 * 1024),
    "RTDP_FLUSH_BYTES": str(200 * 1024),
    "RTDP_FLUSH_SECONDS": "0.2",
    "RTDP_VISIBILITY_TIMEOUT_SECONDS": "2",
}


def _warehouse_contents(home: Path) -> tuple[set[str], set[str], int, int]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        ids = {r[0] for r in con.execute(
            "select distinct event_id from raw.raw_realtime_data_events").fetchall()}
        bad = {r[0] for r in con.execute(
            "select distinct raw_line from raw.raw_realtime_data_quarantine").fetchall()}
        (files,) = con.execute("select count(*) from raw.load_history").fetchone() or (0,)
        (distinct_files,) = con.execute(
            "select count(distinct metadata_filename) from ("
            " select metadata_filename from raw.raw_realtime_data_events union all"
            " select metadata_filename from raw.raw_realtime_data_quarantine)").fetchone() or (0,)
    finally:
        con.close()
    return ids, bad, files, distinct_files


def _assert_all_landed(home: Path, corpus: Corpus) -> dict[str, object]:
    ids, bad, _, _ = _warehouse_contents(home)
    assert ids == corpus.valid_event_ids
    assert bad == corpus.bad_lines
    status = run_rtdp("status")
    accounting = status["accounting"]
    assert isinstance(accounting, dict)
    assert accounting["settled"] is True
    assert accounting["balanced"] is True, accounting
    assert accounting["lines_ingested"] == corpus.lines
    return accounting


def test_every_line_is_a_row_or_quarantined(home: Path, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "in.ndjson", 3000)
    ingested = run_rtdp("ingest", str(corpus.path))
    assert ingested["lines"] == corpus.lines
    converted = run_rtdp("convert", "--once")
    loaded = run_rtdp("load", "--once")
    assert converted["lines"] == corpus.lines
    assert loaded["event_rows"] == converted["events"]
    accounting = _assert_all_landed(home, corpus)
    assert accounting["rejected_lines"] == len(corpus.bad_lines)
    assert run_rtdp("load", "--once")["files"] == 0  # nothing is loaded twice


def test_kill_9_of_the_converter_loses_nothing(home: Path, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "in.ndjson", 20_000, seed=11)
    run_rtdp("ingest", str(corpus.path), env=SMALL)
    rng = random.Random(5)
    kills = 0
    env = {**os.environ, **SMALL}
    for _ in range(6):
        worker = subprocess.Popen([RTDP, "convert", "--follow", "--json"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 2.5))
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            kills += 1
        worker.wait()
    assert kills > 0
    time.sleep(float(SMALL["RTDP_VISIBILITY_TIMEOUT_SECONDS"]) + 0.5)  # in-flight comes back
    # A message whose every receiver was killed is dead-lettered after RTDP_MAX_RECEIVE_COUNT
    # receives, as on SQS; the operator's move is to redrive it.
    run_rtdp("dlq", "redrive")
    run_rtdp("convert", "--once", env=SMALL)
    run_rtdp("load", "--once")
    _assert_all_landed(home, corpus)


def test_sigterm_flushes_and_exits_cleanly(home: Path, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "in.ndjson", 2000, seed=3)
    run_rtdp("ingest", str(corpus.path))
    env = {**os.environ, "RTDP_FLUSH_SECONDS": "3600", "RTDP_FLUSH_BYTES": str(1 << 40)}
    worker = subprocess.Popen([RTDP, "convert", "--follow", "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # received everything, holding it in a batch that is not yet due
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert '"lines": 2000' in out.splitlines()[-1]
    run_rtdp("load", "--once")
    _assert_all_landed(home, corpus)


def test_two_converters_and_two_loaders_at_once(home: Path, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "in.ndjson", 15_000, seed=13)
    run_rtdp("ingest", str(corpus.path), env=SMALL)
    env = {**os.environ, **SMALL}
    converters = [subprocess.Popen([RTDP, "convert", "--once", "--json"], env=env,
                                   stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [c.communicate(timeout=300)[0] for c in converters]
    assert all(c.returncode == 0 for c in converters)
    # both did part of the work (the queue hands each message to one of them)
    assert all('"lines": 0,' not in o for o in outputs)
    loaders = [subprocess.Popen([RTDP, "load", "--once", "--json"], env=env,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for loader in loaders:
        loader.communicate(timeout=300)
        assert loader.returncode == 0
    _, _, history_files, data_files = _warehouse_contents(home)
    assert history_files == data_files  # every file once in the history, every file's rows
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        (twice,) = con.execute(
            "select count(*) from (select message_id, line_number from"
            " raw.raw_realtime_data_events group by all having count(*) > 1)").fetchone() or (0,)
    finally:
        con.close()
    assert twice == 0  # no redelivery happened, so no line may be there twice
    _assert_all_landed(home, corpus)
