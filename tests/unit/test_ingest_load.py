"""Ingest → queue → converter → lake → loader → warehouse, with the real SQLite queue, the real
local lake (Parquet files in tmp_path) and the real DuckDB warehouse.

The one fault injector is a lake subclass whose writes raise ``LakeError``, as a full or
unreachable store would.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from rtdp import warehouse
from rtdp.backends import lake_for, queue_for
from rtdp.convert import BatchConverter, Converter, write_batch
from rtdp.events import LAKE_EVENT_SCHEMA, LAKE_QUARANTINE_SCHEMA, MAX_LINE_BYTES, Stage
from rtdp.exceptions import LakeError
from rtdp.ingest import Ingestor
from rtdp.lake import EVENTS_PREFIX, QUARANTINE_PREFIX, FileNamer, Lake, LakeFile
from rtdp.lake.local import LocalLake
from rtdp.ledger import Ledger
from rtdp.load import Loader
from rtdp.queue import LINE_COUNT_ATTRIBUTE, Message, Queue
from rtdp.settings import MIN_MESSAGE_BYTES, Settings
from rtdp.status import collect

MAX_MESSAGE = MIN_MESSAGE_BYTES  # the smallest message size rtdp accepts (64 KiB + 1 KiB)
NAME = re.compile(r"^\d{8}T\d{12}Z-[0-9a-z]+-\d{6}\.parquet$")


def event(i: int, *, day: int = 27, event_id: str | None = None) -> str:
    return json.dumps({
        "event_id": event_id or f"e-{i}",
        "event_type": "page_view",
        "event_timestamp": f"2026-11-{day:02d}T10:00:{i % 60:02d}Z",
        "anonymous_id": f"a-{i % 7}",
    })


@dataclass
class Platform:
    settings: Settings
    queue: Queue
    lake: LocalLake
    ledger: Ledger

    def ingestor(self) -> Ingestor:
        return Ingestor(self.queue, self.lake, self.ledger,
                        max_message_bytes=self.settings.max_message_bytes)

    def ingest(self, tmp: Path, lines: list[bytes], name: str = "in.ndjson") -> Ingestor:
        path = tmp / name
        path.write_bytes(b"\n".join(lines) + b"\n")
        ingestor = self.ingestor()
        ingestor.ingest([path])
        return ingestor

    def convert(self, lake: Lake | None = None) -> Converter:
        converter = Converter(self.queue, lake or self.lake, self.settings)
        try:
            converter.run(follow=False)
        finally:
            converter.close()
        return converter

    def files(self, prefix: str) -> list[LakeFile]:
        return list(self.lake.list(prefix))


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    settings = Settings(home=tmp_path / "home", max_message_bytes=MAX_MESSAGE,
                        visibility_timeout_seconds=2.0, flush_seconds=60.0)
    queue = queue_for(settings)
    lake = lake_for(settings)
    assert isinstance(lake, LocalLake)
    ledger = Ledger(settings.ledger_path)
    yield Platform(settings, queue, lake, ledger)
    queue.close()
    ledger.close()


def receive_all(queue: Queue) -> list[Message]:
    out: list[Message] = []
    while batch := queue.receive(10, 600.0):
        out.extend(batch)
    return out


def wait_until_visible(queue: Queue, messages: int) -> None:
    """Poll until ``messages`` held messages are visible again (their timeout ran out)."""
    deadline = time.monotonic() + 30
    while queue.stats().depth < messages:
        assert time.monotonic() < deadline, "visibility timeout never ran out"
        time.sleep(0.05)


def raw_rows(settings: Settings, table: str = warehouse.RAW_EVENTS) -> list[dict[str, object]]:
    with warehouse.connect(settings.warehouse_path) as con:
        cur = con.execute(f"select * from {table} order by metadata_filename,"
                          " metadata_file_row_number")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# --- ingest ---------------------------------------------------------------------------------


def test_ingest_packs_lines_into_messages_no_larger_than_the_limit(
    platform: Platform, tmp_path: Path
) -> None:
    sizes = [10_000, 30_000, 5, 60_000, 1, 20_000] * 8 + [MAX_LINE_BYTES]
    lines = [(b"%06d" % i) + b"x" * max(0, n - 6) for i, n in enumerate(sizes)]
    # Longer than 64 KiB: oversize whatever else, so quarantined at ingest, never sent.
    too_long = b"y" * (MAX_LINE_BYTES + 1)
    with_blanks = [b"", *lines[:10], b"   ", too_long, b"\t\r", *lines[10:], b""]
    ingestor = platform.ingest(tmp_path, with_blanks)

    messages = receive_all(platform.queue)
    assert all(len(m.body) <= MAX_MESSAGE for m in messages)
    counts = [int(m.attributes[LINE_COUNT_ATTRIBUTE]) for m in messages]
    assert sum(counts) == len(lines)
    assert all(len(m.body.split(b"\n")) == c for m, c in zip(messages, counts, strict=True))
    # every line travelled, whole, in order
    assert [x for m in messages for x in m.body.split(b"\n")] == lines
    assert len(messages) < len(lines)  # small lines share messages
    assert ingestor.stats.lines == len(lines) + 1
    assert ingestor.stats.sent_lines == len(lines)
    assert ingestor.stats.rejected == {"oversize": 1}
    assert ingestor.stats.messages == len(messages)
    assert platform.ledger.total_lines() == len(lines) + 1  # the quarantined one too
    (quarantined,) = platform.files(QUARANTINE_PREFIX)
    assert platform.lake.read_parquet(quarantined.path)["reason"].to_pylist() == ["oversize"]


def test_lines_that_cannot_travel_go_to_the_lake_quarantine(
    platform: Platform, tmp_path: Path
) -> None:
    too_long = b'{"event_id": "' + b"x" * MAX_MESSAGE + b'"}'
    lines = [
        event(1).encode(),
        b'{"event_id": "bad-\xff\xfe"}',  # invalid UTF-8: line 2
        b"",
        too_long,  # line 4
        b'{"event_id": "ctl\x01"}',  # a control character no SQS body may hold: line 5
        event(6).encode(),
    ]
    ingestor = platform.ingest(tmp_path, lines, name="dirty.ndjson")

    non_blank = 5
    assert ingestor.stats.lines == non_blank
    assert ingestor.stats.sent_lines == 2
    assert dict(ingestor.stats.rejected) == {"malformed_json": 2, "oversize": 1}
    assert platform.ledger.total_lines() == non_blank
    assert platform.queue.stats().pending_lines == 2

    (qfile,) = platform.files(QUARANTINE_PREFIX)
    day = datetime.now(UTC).date().isoformat()
    assert qfile.path.startswith(f"{QUARANTINE_PREFIX}/seen_date=")
    assert qfile.path.split("/")[1] in {f"seen_date={day}", "seen_date=" + _yesterday(day)}
    table = platform.lake.read_parquet(qfile.path)
    assert table.schema.equals(LAKE_QUARANTINE_SCHEMA)
    rows = sorted(table.to_pylist(), key=lambda r: r["line_number"])
    assert [(r["line_number"], r["reason"], r["stage"]) for r in rows] == [
        (2, "malformed_json", Stage.INGEST.value),
        (4, "oversize", Stage.INGEST.value),
        (5, "malformed_json", Stage.INGEST.value),
    ]
    assert rows[0]["raw_line"] == '{"event_id": "bad-\\xff\\xfe"}'
    assert len(rows[1]["raw_line"]) == len(too_long)
    assert len({r["message_id"] for r in rows}) == 1
    assert rows[0]["message_id"].startswith("ingest-")
    assert all("dirty.ndjson" in r["detail"] for r in rows)


def _yesterday(day: str) -> str:
    # the test may straddle midnight between ingest and this check; never more than that
    return datetime.fromordinal(datetime.fromisoformat(day).toordinal() - 1).date().isoformat()


def test_ingest_reject_reason_follows_spec_precedence(platform: Platform, tmp_path: Path) -> None:
    long_and_invalid = b'{"event_id": "' + b"x" * MAX_LINE_BYTES + b'\xff"}'
    assert len(long_and_invalid) <= MAX_MESSAGE
    platform.ingest(tmp_path, [long_and_invalid])
    (qfile,) = platform.files(QUARANTINE_PREFIX)
    (row,) = platform.lake.read_parquet(qfile.path).to_pylist()
    assert row["reason"] == "oversize"


def test_ingest_ledger_counts_every_non_blank_line_across_files(
    platform: Platform, tmp_path: Path
) -> None:
    platform.ingest(tmp_path, [event(1).encode(), b"", b"\xff"], name="a.ndjson")
    platform.ingest(tmp_path, [b" ", event(2).encode(), event(3).encode()], name="b.ndjson")
    assert platform.ledger.total_lines() == 4


# --- convert: queue → lake ------------------------------------------------------------------


def test_converter_drains_the_queue_into_partitioned_files(
    platform: Platform, tmp_path: Path
) -> None:
    lines = [event(i, day=26 + i % 3).encode() for i in range(30)] + [b"nope", b"[1]"]
    platform.ingest(tmp_path, lines)
    converter = platform.convert()

    stats = platform.queue.stats()
    assert (stats.depth, stats.in_flight, stats.pending_lines) == (0, 0, 0)
    assert converter.stats.lines == 32
    assert converter.stats.events == 30
    assert dict(converter.stats.rejected) == {"malformed_json": 1, "not_an_object": 1}

    event_files = platform.files(EVENTS_PREFIX)
    days: Counter[str] = Counter()
    for f in event_files:
        _, partition, name = f.path.split("/")
        assert NAME.match(name), name
        table = platform.lake.read_parquet(f.path)
        assert table.schema.equals(LAKE_EVENT_SCHEMA)
        dates = {d.isoformat() for d in table["event_date"].to_pylist()}
        assert {f"event_date={d}" for d in dates} == {partition}  # one date per file
        days[partition] += table.num_rows
    assert days == {"event_date=2026-11-26": 10, "event_date=2026-11-27": 10,
                    "event_date=2026-11-28": 10}
    (qfile,) = platform.files(QUARANTINE_PREFIX)
    assert re.match(r"^quarantine/seen_date=\d{4}-\d{2}-\d{2}/", qfile.path)
    assert NAME.match(qfile.path.rsplit("/", 1)[1])
    names = [f.path.rsplit("/", 1)[1] for f in [*event_files, qfile]]
    assert len(set(names)) == len(names)


def test_file_names_are_unique_and_sort_by_time() -> None:
    a, b = FileNamer(), FileNamer()
    t0 = 1_795_000_000.0
    same_instant = [a(t0), b(t0), a(t0), b(t0)]
    assert len(set(same_instant)) == 4
    later = [a(t0 + dt) for dt in (0.000001, 0.5, 1, 3600, 86_400)]
    assert later == sorted(later)
    assert max(same_instant) < min(later)
    assert all(NAME.match(n) for n in same_instant + later)


class FailingLake(LocalLake):
    """Fault injector: writes under ``fail_prefix`` raise LakeError, like a full disk."""

    def __init__(self, root: Path, fail_prefix: str = "") -> None:
        super().__init__(root)
        self.fail_prefix = fail_prefix
        self.attempts = 0

    def write_parquet(self, path: str, table: pa.Table) -> LakeFile:
        if path.startswith(self.fail_prefix):
            self.attempts += 1
            raise LakeError(f"injected failure writing {path}")
        return super().write_parquet(path, table)


def test_messages_stay_queued_when_the_lake_write_fails(
    platform: Platform, tmp_path: Path
) -> None:
    lines = [event(i).encode() for i in range(20)] + [b"{broken"]
    platform.ingest(tmp_path, lines)
    messages = platform.queue.stats().depth

    failing = FailingLake(platform.lake.root)
    first = platform.convert(failing)
    assert failing.attempts >= 1
    assert first.stats.failed_messages == messages
    assert first.stats.lines == 0
    stats = platform.queue.stats()
    assert (stats.in_flight, stats.pending_lines, stats.dead_letter) == (messages, 21, 0)
    assert platform.files(EVENTS_PREFIX) == platform.files(QUARANTINE_PREFIX) == []

    wait_until_visible(platform.queue, messages)
    second = platform.convert()
    assert (second.stats.lines, second.stats.events) == (21, 20)
    stats = platform.queue.stats()
    assert (stats.depth, stats.in_flight, stats.pending_lines) == (0, 0, 0)
    assert sum(platform.lake.read_parquet(f.path).num_rows
               for f in platform.files(EVENTS_PREFIX)) == 20


def test_a_partial_write_keeps_the_messages_and_the_books_still_balance(
    platform: Platform, tmp_path: Path
) -> None:
    # events land, the quarantine file fails: the messages must not be deleted
    lines = [event(i).encode() for i in range(10)] + [b"{broken", event(1, event_id="e-1").encode()]
    platform.ingest(tmp_path, lines)
    first = platform.convert(FailingLake(platform.lake.root, fail_prefix=QUARANTINE_PREFIX))
    assert first.stats.failed_messages == 1
    assert len(platform.files(EVENTS_PREFIX)) == 1
    assert platform.files(QUARANTINE_PREFIX) == []
    assert platform.queue.stats().pending_lines == 12

    wait_until_visible(platform.queue, 1)
    platform.convert()
    assert platform.queue.stats().pending_lines == 0
    Loader(platform.lake, platform.settings).load_once()

    rows = raw_rows(platform.settings)
    pairs = Counter((r["message_id"], r["line_number"]) for r in rows)
    assert len(pairs) == 11 and set(pairs.values()) == {2}  # every valid line landed twice
    accounting = collect(platform.settings)["accounting"]
    assert accounting["lines_ingested"] == 12
    assert accounting["events_kept"] == 10
    assert accounting["duplicates_removed"] == 1  # e-1 sent twice
    assert accounting["rejected_lines"] == 1
    assert accounting["balanced"] and accounting["settled"]


# --- load: lake → warehouse -----------------------------------------------------------------


def test_loader_loads_each_file_exactly_once_with_snowpipe_metadata(
    platform: Platform, tmp_path: Path
) -> None:
    lines = [event(i, day=26 + i % 2).encode() for i in range(12)] + [b"x", b"\xff"]
    platform.ingest(tmp_path, lines)
    platform.convert()
    files = platform.files(EVENTS_PREFIX) + platform.files(QUARANTINE_PREFIX)
    assert len(files) == 4  # two event dates, the convert quarantine, the ingest quarantine

    loader = Loader(platform.lake, platform.settings)
    stats = loader.load_once()
    assert (stats.files, stats.event_rows, stats.quarantine_rows) == (4, 12, 2)
    stats = loader.load_once()
    assert (stats.files, stats.event_rows, stats.skipped_files) == (4, 12, 4)
    # a fresh loader (another process) also finds everything already loaded
    again = Loader(platform.lake, platform.settings).load_once()
    assert (again.files, again.skipped_files) == (0, 4)

    events = raw_rows(platform.settings)
    assert len(events) == 12
    for f in platform.files(EVENTS_PREFIX):
        in_file = [r for r in events if r["metadata_filename"] == f.path]
        lake_rows = platform.lake.read_parquet(f.path).to_pylist()
        assert [r["metadata_file_row_number"] for r in in_file] == list(
            range(1, len(lake_rows) + 1)
        )
        assert [(r["message_id"], r["line_number"]) for r in in_file] == [
            (r["message_id"], r["line_number"]) for r in lake_rows
        ]
        assert all(r["event_date"] == lake_rows[0]["event_date"] for r in in_file)
    assert all(r["loaded_at"] is not None for r in events)
    quarantine = raw_rows(platform.settings, warehouse.RAW_QUARANTINE)
    assert sorted((r["stage"], r["reason"]) for r in quarantine) == [
        ("convert", "malformed_json"), ("ingest", "malformed_json")
    ]
    with warehouse.connect(platform.settings.warehouse_path) as con:
        history = con.execute(f"select file_name, row_count from {warehouse.LOAD_HISTORY}")
        assert sorted(history.fetchall()) == sorted(
            (f.path, platform.lake.read_parquet(f.path).num_rows) for f in files
        )


def test_loaded_at_strictly_increases_between_loads(platform: Platform, tmp_path: Path) -> None:
    loader = Loader(platform.lake, platform.settings)
    batches: list[set[datetime]] = []
    for round_ in range(3):
        platform.ingest(tmp_path, [event(100 * round_ + i).encode() for i in range(3)],
                        name=f"r{round_}.ndjson")
        platform.convert()
        loader.load_once()
        with warehouse.connect(platform.settings.warehouse_path) as con:
            loaded = con.execute(
                f"select distinct loaded_at from {warehouse.RAW_EVENTS}"
                " where event_id like ?", [f"e-{100 * round_}%"]
            ).fetchall()
        batches.append({r[0] for r in loaded})
    assert all(len(b) == 1 for b in batches)  # one load time per load
    times = [next(iter(b)) for b in batches]
    assert times[0] < times[1] < times[2]


def test_loaded_at_increases_even_if_the_clock_has_not(platform: Platform,
                                                       tmp_path: Path) -> None:
    # a load history entry "in the future" stands in for a clock that went backwards
    future = datetime(2100, 1, 1)
    with warehouse.connect(platform.settings.warehouse_path) as con:
        con.execute(f"insert into {warehouse.LOAD_HISTORY} values ('x', 'v', 0, 't', ?)",
                    [future])
    platform.ingest(tmp_path, [event(1).encode()])
    platform.convert()
    Loader(platform.lake, platform.settings).load_once()
    (row,) = raw_rows(platform.settings)
    assert row["loaded_at"] > future


def test_redelivered_message_repeats_line_keys_and_accounting_balances(
    platform: Platform, tmp_path: Path
) -> None:
    lines = [event(i).encode() for i in range(5)] + [
        event(9, event_id="e-0").encode(),  # a duplicate of e-0 at another time
        b"not json",
        b"\xff\xfe",  # rejected at ingest
    ]
    platform.ingest(tmp_path, lines)
    settings = platform.settings
    assert collect(settings)["accounting"]["balanced"]  # 7 lines still queued + 1 in the lake

    # a converter that writes its files and dies before deleting: the message comes back
    (held,) = platform.queue.receive(10, 0.2)
    batcher = BatchConverter()
    try:
        write_batch(platform.lake, batcher.convert([held]), FileNamer())
    finally:
        batcher.close()
    wait_until_visible(platform.queue, 1)

    platform.convert()  # the redelivery, converted again and deleted
    assert platform.queue.stats().pending_lines == 0
    Loader(platform.lake, settings).load_once()

    rows = raw_rows(settings)
    pairs = Counter((r["message_id"], r["line_number"]) for r in rows)
    assert set(pairs) == {(held.message_id, n) for n in range(1, 7)}
    assert set(pairs.values()) == {2}
    with warehouse.connect(settings.warehouse_path) as con:
        (n,) = con.execute(
            f"select count(*) from {warehouse.RAW_QUARANTINE} where stage = 'convert'"
        ).fetchone() or (0,)
    assert n == 2  # the malformed line, once per conversion

    report = collect(settings)
    accounting = report["accounting"]
    assert accounting["lines_ingested"] == 8
    assert (accounting["events_kept"], accounting["duplicates_removed"],
            accounting["rejected_lines"]) == (5, 1, 2)
    assert accounting["balanced"] and accounting["settled"]
    assert report["warehouse"]["raw_rows"] == 12


def test_loader_ignores_the_lake_tmp_directory(platform: Platform) -> None:
    # a writer killed mid-write leaves a file in _tmp/: never loaded
    tmp_file = platform.lake.root / "_tmp" / "half.parquet"
    tmp_file.write_bytes(b"PAR1 not a whole file")
    assert Loader(platform.lake, platform.settings).load_once().files == 0
    with warehouse.connect(platform.settings.warehouse_path) as con:
        assert con.execute(f"select count(*) from {warehouse.LOAD_HISTORY}").fetchone() == (0,)


def test_accounting_balances_before_redelivered_files_are_loaded(
    platform: Platform, tmp_path: Path
) -> None:
    platform.ingest(tmp_path, [event(i).encode() for i in range(4)])
    (held,) = platform.queue.receive(10, 0.2)
    batcher = BatchConverter()
    try:
        write_batch(platform.lake, batcher.convert([held]), FileNamer())
    finally:
        batcher.close()
    wait_until_visible(platform.queue, 1)
    platform.convert()  # converted again; both copies now wait in the lake
    accounting = collect(platform.settings)["accounting"]
    assert accounting["lines_in_queue"] == 0
    assert accounting["lines_ingested"] == 4
    assert accounting["lines_in_unloaded_files"] == 4  # four distinct lines, written twice
    assert accounting["balanced"]
