"""The producer against the event contract (shared/spec §1–§5), with real queue and ledger files.

The malformed lines are checked by a classifier written here from the spec, independent of
the producer's own bookkeeping: the two must agree line for line.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rtdp.events import MAX_LINE_BYTES, STRING_FIELDS, EventType, RejectReason
from rtdp.exceptions import ConfigError, MessageTooLargeError
from rtdp.ledger import Ledger
from rtdp.producer import (
    DirtyCounts,
    ProduceProgress,
    ProducerConfig,
    generate_chunks,
    generate_lines,
    load_catalog,
    pack_messages,
    produce,
)
from rtdp.queue import LINE_COUNT_ATTRIBUTE
from rtdp.queue.local import SqliteQueue

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "dbt" / "seeds"
RTDP = Path(sys.executable).parent / "rtdp"
FIXED_START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TYPES = {t.value for t in EventType}
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?$")
CLEAN_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
NO_DIRT = dict(epoch_ratio=0.0, case_ratio=0.0, duplicate_ratio=0.0, late_ratio=0.0,
               malformed_ratio=0.0)


def recent_start() -> datetime:
    """A start an hour ago: 'days in the future' lines are then out of range right now."""
    return datetime.now(UTC) - timedelta(hours=1)


def all_lines(config: ProducerConfig) -> list[bytes]:
    return [line for chunk in generate_lines(config) for line in chunk]


# ---- an independent reading of spec §1–§2 ------------------------------------------------


def parse_timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        seconds = value / 1000 if isinstance(value, int) and value >= 100_000_000_000 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and ISO_RE.match(value):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def classify(line: bytes, now: datetime) -> str | None:
    """The rejection reason of spec §2 (first that applies), or None for a valid event."""
    if len(line) > MAX_LINE_BYTES:
        return "oversize"
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "malformed_json"
    if not isinstance(obj, dict):
        return "not_an_object"
    if not isinstance(obj.get("event_id"), str) or not obj["event_id"]:
        return "missing_event_id"
    moment = parse_timestamp(obj.get("event_timestamp"))
    if moment is None:
        return "bad_timestamp"
    if moment < datetime(2000, 1, 1, tzinfo=UTC) or moment > now + timedelta(days=1):
        return "timestamp_out_of_range"
    event_type = obj.get("event_type")
    if not isinstance(event_type, str) or event_type.strip().lower() not in TYPES:
        return "unknown_event_type"
    if not any(isinstance(obj.get(k), str) and obj[k] for k in ("anonymous_id", "user_id")):
        return "no_identity"
    quantity = obj.get("quantity", 1)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        return "invalid_field"
    if any(obj.get(name) is not None and not isinstance(obj[name], str)
           for name in STRING_FIELDS):
        return "invalid_field"
    return None


def valid_events(lines: list[bytes]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [json.loads(line) for line in lines if classify(line, now) is None]


def total_dirty(config: ProducerConfig) -> tuple[list[bytes], DirtyCounts]:
    lines: list[bytes] = []
    dirty = DirtyCounts()
    for chunk in generate_chunks(config):
        lines += chunk.lines
        dirty = dirty + chunk.dirty
    return lines, dirty


# ---- seeds ------------------------------------------------------------------------------


def test_seeds_are_the_generator_output_and_well_formed(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_seeds.py"), str(tmp_path)],
                   check=True)
    for name in ("users.csv", "products.csv"):
        assert (tmp_path / name).read_bytes() == (SEEDS / name).read_bytes(), name
    users = list(csv.DictReader((SEEDS / "users.csv").open()))
    products = list(csv.DictReader((SEEDS / "products.csv").open()))
    assert len(users) == 1000 and len(products) == 200
    assert all(re.fullmatch(r"u_\d{6}", u["user_id"]) for u in users)
    assert all(re.fullmatch(r"[A-Z]{2}", u["country"]) for u in users)
    assert all(datetime.fromisoformat(u["signup_date"]) for u in users)
    assert all(re.fullmatch(r"p_\d{4}", p["product_id"]) for p in products)
    assert all(re.fullmatch(r"\d+\.\d{2}", p["price"]) for p in products)
    assert len({u["user_id"] for u in users}) == 1000
    assert len({p["category"] for p in products}) >= 5


def test_missing_seeds_are_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTDP_SEEDS_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"users\.csv"):
        load_catalog()
    with pytest.raises(ConfigError):
        all_lines(ProducerConfig(seed=1, events=10))


def test_config_rejects_impossible_ratios() -> None:
    with pytest.raises(ConfigError):
        ProducerConfig(epoch_ratio=1.5)
    with pytest.raises(ConfigError):
        ProducerConfig(duplicate_ratio=0.6, late_ratio=0.3, malformed_ratio=0.2)
    with pytest.raises(ConfigError):
        ProducerConfig(start_time=datetime(2025, 1, 1))  # naive


# ---- determinism and the clean contract -------------------------------------------------


def test_same_seed_and_start_give_the_same_lines() -> None:
    config = ProducerConfig(seed=42, start_time=FIXED_START, events=3000)
    first = all_lines(config)
    assert len(first) == 3000
    assert first == all_lines(config)
    assert first != all_lines(ProducerConfig(seed=43, start_time=FIXED_START, events=3000))


def test_clean_lines_follow_the_contract() -> None:
    catalog = load_catalog(SEEDS)
    users = set(catalog.user_ids)
    products = {p.product_id for p in catalog.products}
    start = recent_start()
    lines = all_lines(ProducerConfig(seed=7, start_time=start, events=4000).clean())
    assert len(lines) == 4000
    ids = set()
    for line in lines:
        assert b"\n" not in line and line.strip()
        obj = json.loads(line)
        assert classify(line, datetime.now(UTC)) is None, line
        assert isinstance(obj["event_id"], str) and 1 <= len(obj["event_id"]) <= 128
        ids.add(obj["event_id"])
        assert obj["event_type"] in TYPES  # exact lower case, no padding when clean
        assert CLEAN_ISO_RE.match(obj["event_timestamp"]), obj["event_timestamp"]
        moment = parse_timestamp(obj["event_timestamp"])
        assert moment is not None and start - timedelta(seconds=10) <= moment
        assert moment <= datetime.now(UTC) + timedelta(hours=1)
        assert obj["platform"] in {"web", "ios", "android"}
        assert obj.get("user_id") is None or obj["user_id"] in users
        if obj["event_type"] != "page_view":
            assert obj["product_id"] in products
        if obj["event_type"] in {"add_to_cart", "remove_from_cart", "checkout"}:
            assert type(obj["quantity"]) is int and obj["quantity"] >= 1
        if obj["event_type"] == "checkout":
            assert isinstance(obj["order_id"], str) and obj["order_id"]
        for name in STRING_FIELDS:
            assert obj.get(name) is None or isinstance(obj[name], str)
    assert len(ids) == len(lines)  # no duplicate when the knob is 0


# ---- the dirty knobs ----------------------------------------------------------------------


def test_each_dirty_knob_injects_its_kind_at_its_ratio() -> None:
    config = ProducerConfig(seed=3, start_time=recent_start(), events=20_000, epoch_ratio=0.3,
                            case_ratio=0.1, duplicate_ratio=0.05, late_ratio=0.03,
                            malformed_ratio=0.02)
    lines, dirty = total_dirty(config)
    now = datetime.now(UTC)
    reasons = Counter(r for r in (classify(line, now) for line in lines) if r is not None)
    events = [json.loads(line) for line in lines if classify(line, now) is None]
    n = len(lines)

    epoch = [e for e in events if not isinstance(e["event_timestamp"], str)]
    cased = [e for e in events if e["event_type"] not in TYPES]
    seen: set[str] = set()
    repeats = 0
    changed = 0
    first_line: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["event_id"] in seen:
            repeats += 1
            changed += e != first_line[e["event_id"]]
        else:
            seen.add(e["event_id"])
            first_line[e["event_id"]] = e
    late = 0
    newest = datetime(2000, 1, 1, tzinfo=UTC)
    for e in events:
        moment = parse_timestamp(e["event_timestamp"])
        assert moment is not None
        late += moment < newest - timedelta(seconds=60)
        newest = max(newest, moment)

    # What the test sees is what the producer says it injected ...
    assert dirty.epoch_timestamps == len(epoch)
    assert dirty.cased_event_types == len(cased)
    assert dirty.duplicates == repeats
    assert abs(dirty.late - late) <= 3
    assert dirty.malformed == sum(reasons.values())
    assert dirty.malformed_by_reason == dict(sorted(reasons.items()))
    # ... and it is about the asked-for share.
    assert len(epoch) / len(events) == pytest.approx(0.3, abs=0.02)
    assert len(cased) / len(events) == pytest.approx(0.1, abs=0.015)
    # Copies follow their original by ~2 s: the last copies fall after the run's end.
    assert repeats / n == pytest.approx(0.05 / 1.05, abs=0.01)
    assert late / n == pytest.approx(0.03, abs=0.008)
    assert dirty.malformed / n == pytest.approx(0.02, abs=0.005)
    assert 0 < changed < repeats  # some re-sends changed the payload, most did not
    # Every epoch flavour real clients send: int seconds, float seconds, int milliseconds.
    stamps = [e["event_timestamp"] for e in epoch]
    assert any(isinstance(s, float) for s in stamps)
    assert any(isinstance(s, int) and s < 100_000_000_000 for s in stamps)
    assert any(isinstance(s, int) and s >= 100_000_000_000 for s in stamps)
    assert any(e["event_type"] != e["event_type"].strip() for e in cased)
    assert any(e["event_type"].isupper() for e in cased)


def test_malformed_lines_cover_every_rejection_reason() -> None:
    config = ProducerConfig(seed=5, start_time=recent_start(), events=8000,
                            **{**NO_DIRT, "malformed_ratio": 0.5})
    lines, dirty = total_dirty(config)
    now = datetime.now(UTC)
    reasons = Counter(r for r in (classify(line, now) for line in lines) if r is not None)
    assert set(reasons) == {r.value for r in RejectReason}
    assert dirty.malformed_by_reason == dict(sorted(reasons.items()))
    oversize = [line for line in lines if len(line) > MAX_LINE_BYTES]
    assert oversize and all(len(line) <= 70 * 1024 for line in oversize)  # they still travel
    assert all(line.strip() and b"\n" not in line for line in lines)  # never a blank line


# ---- packing, the queue and the ledger ---------------------------------------------------


def test_pack_messages_fills_up_to_the_limit_and_refuses_what_cannot_travel() -> None:
    lines = [b"x" * n for n in (10, 20, 30, 40, 50, 60, 99, 1, 100)]
    bodies = list(pack_messages(lines, 100))
    assert all(len(body) <= 100 for body, _ in bodies)
    assert [count for _, count in bodies] == [body.count(b"\n") + 1 for body, _ in bodies]
    assert b"\n".join(body for body, _ in bodies).split(b"\n") == lines
    # Greedy, newlines included: 10+20+30 (62), 40+50 (91), 60, 99, 1, 100 (exactly the limit).
    assert [count for _, count in bodies] == [3, 2, 1, 1, 1, 1]
    with pytest.raises(MessageTooLargeError):
        list(pack_messages([b"ok", b"y" * 101], 100))


def test_messages_respect_the_limit_and_line_counts_match_the_ledger(tmp_path: Path) -> None:
    limit = 100 * 1024  # above the 70 KiB oversize lines, so they travel
    queue = SqliteQueue(tmp_path / "queue.sqlite", max_message_bytes=limit)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    config = ProducerConfig(seed=9, start_time=recent_start(), events=6000, malformed_ratio=0.2,
                            max_message_bytes=limit, batch_messages=4)
    summary = produce(queue, ledger, config, workers=1)
    received = []
    while batch := queue.receive(10, visibility_timeout_seconds=60):
        received += batch
    bodies = [m.body for m in received]
    assert all(len(body) <= limit for body in bodies)
    counts = [int(m.attributes[LINE_COUNT_ATTRIBUTE]) for m in received]
    assert counts == [body.count(b"\n") + 1 for body in bodies]
    assert sum(counts) == ledger.total_lines() == summary.events == 6000
    assert summary.messages == len(bodies) and summary.bytes == sum(map(len, bodies))
    sent = [line for body in bodies for line in body.split(b"\n")]
    assert sent == all_lines(config)  # the same stream, in order, nothing lost or added
    assert any(len(line) > MAX_LINE_BYTES for line in sent)
    assert summary.dirty.malformed_by_reason.get("oversize", 0) >= 1
    queue.close()
    ledger.close()


def test_shard_processes_send_the_same_lines_as_one_process(tmp_path: Path) -> None:
    config = ProducerConfig(seed=21, start_time=recent_start(), events=12_000)
    results = []
    for workers in (1, 2):
        queue = SqliteQueue(tmp_path / f"q{workers}.sqlite", max_message_bytes=256 * 1024)
        ledger = Ledger(tmp_path / f"l{workers}.sqlite")
        summary = produce(queue, ledger, config, workers=workers)
        bodies = []
        while batch := queue.receive(10, visibility_timeout_seconds=60):
            bodies += [m.body for m in batch]
        results.append((bodies, summary.to_dict()["malformed_by_reason"], ledger.total_lines()))
        queue.close()
        ledger.close()
    assert results[0] == results[1]
    assert results[0][2] == 12_000


def test_a_stop_request_flushes_what_was_generated(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "queue.sqlite", max_message_bytes=256 * 1024)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    stop = threading.Event()
    seen: list[ProduceProgress] = []

    def on_progress(progress: ProduceProgress) -> None:
        seen.append(progress)
        if len(seen) == 3:
            stop.set()

    summary = produce(queue, ledger, ProducerConfig(seed=1), on_progress=on_progress,
                      stop=stop, workers=1)  # unbounded: only the stop ends it
    assert summary.stopped
    assert summary.events > 0
    assert queue.stats().pending_lines == ledger.total_lines() == summary.events
    queue.close()
    ledger.close()


# ---- behaviour: funnels, sessions, identity ----------------------------------------------


def test_funnels_and_sessions_are_plausible() -> None:
    # A quiet shop (2 events/s of event time) so that 12k events span ~100 minutes.
    events = valid_events(all_lines(ProducerConfig(seed=11, start_time=recent_start(),
                                                   events=12_000, traffic_rate=2.0).clean()))
    types = Counter(e["event_type"] for e in events)
    assert types["checkout"] <= types["add_to_cart"] <= types["product_view"]
    assert types["page_view"] > types["add_to_cart"] > 0 and types["remove_from_cart"] > 0

    by_key: dict[str, list[tuple[datetime, dict[str, Any]]]] = defaultdict(list)
    for e in events:
        moment = parse_timestamp(e["event_timestamp"])
        assert moment is not None
        by_key[e.get("anonymous_id") or e["user_id"]].append((moment, e))
    sessions: list[list[dict[str, Any]]] = []
    long_gaps = 0
    for rows in by_key.values():
        rows.sort(key=lambda r: (r[0], r[1]["event_id"]))
        for i, (moment, e) in enumerate(rows):
            gap = (moment - rows[i - 1][0]).total_seconds() if i else math.inf
            if gap > 1800:
                sessions.append([])
                long_gaps += i > 0
            sessions[-1].append(e)
    converted = sum(any(e["event_type"] == "checkout" for e in s) for s in sessions)
    bounced = sum(len(s) == 1 for s in sessions)
    assert 0.005 <= converted / len(sessions) <= 0.1
    assert 0.2 <= bounced / len(sessions) <= 0.6
    assert long_gaps > 0  # returning visitors come back after more than 30 minutes
    for s in sessions:  # once logged in, a visitor stays logged in for the session
        ids = [e.get("user_id") for e in s]
        first = next((i for i, u in enumerate(ids) if u), len(ids))
        assert all(ids[first:]), ids
    assert any(e.get("utm_source") for e in events)
    assert any(e.get("utm_source") is None for e in events)
    orders: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e["event_type"] == "checkout":
            orders[e["order_id"]].add(e.get("anonymous_id") or e["user_id"])
    assert orders and all(len(keys) == 1 for keys in orders.values())


def test_the_asked_rate_is_realized_from_the_first_seconds() -> None:
    # The sessions in progress at the start send their next steps from the first second on:
    # no ramp-up (one once started at 30% of the asked rate at 10k/s and took minutes).
    # Event time only (windows of 0.5 s from the start), no wall clock.
    for rate in (500, 5_000, 20_000):
        per_second: Counter[int] = Counter()
        for chunk in generate_chunks(ProducerConfig(seed=8, start_time=FIXED_START, rate=rate)):
            second = math.ceil((chunk.end - FIXED_START).total_seconds()) - 1
            if second >= 10:
                break
            per_second[second] += len(chunk.lines)
        assert 0.9 <= per_second.total() / (10 * rate) <= 1.1, (rate, sorted(per_second.items()))
        if rate >= 5_000:  # enough lines per second for the first one to say something
            assert 0.9 <= per_second[0] / rate <= 1.1, (rate, per_second[0])


def test_paced_timestamps_track_the_wall_clock(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "queue.sqlite", max_message_bytes=256 * 1024)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    before = datetime.now(UTC)
    summary = produce(queue, ledger, ProducerConfig(rate=400, duration_seconds=0.8,
                                                    **{**NO_DIRT}), workers=1)
    after = datetime.now(UTC)
    lines = []
    while batch := queue.receive(10, visibility_timeout_seconds=60):
        lines += [line for m in batch for line in m.body.split(b"\n")]
    assert len(lines) == summary.events > 0
    for line in lines:
        moment = parse_timestamp(json.loads(line)["event_timestamp"])
        assert moment is not None and before - timedelta(seconds=1) <= moment <= after
    queue.close()
    ledger.close()


# ---- the command ---------------------------------------------------------------------------


def test_cli_prints_a_json_summary_and_the_queue_holds_the_lines(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = subprocess.run(
        [str(RTDP), "produce", "--events", "2500", "--seed", "4", "--json", "--home", str(home)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("events", "lines", "messages", "bytes", "seconds", "events_per_second",
                "epoch_timestamps", "cased_event_types", "duplicates", "late", "malformed",
                "malformed_by_reason", "seed"):
        assert key in summary, key
    assert summary["events"] == summary["lines"] == 2500
    assert summary["seed"] == 4 and summary["messages"] >= 1
    queue = SqliteQueue(home / "queue.sqlite", max_message_bytes=256 * 1024)
    ledger = Ledger(home / "ledger.sqlite")
    assert queue.stats().pending_lines == ledger.total_lines() == 2500
    queue.close()
    ledger.close()


def test_cli_sigterm_flushes_and_exits_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [str(RTDP), "produce", "--rate", "2000", "--json", "--home", str(home)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "RTDP_HOME": str(home)},
    )
    ledger_path = home / "ledger.sqlite"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until something was sent
        if ledger_path.exists() and Ledger(ledger_path).total_lines() > 0:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stopped"] is True and summary["events"] > 0
    queue = SqliteQueue(home / "queue.sqlite", max_message_bytes=256 * 1024)
    assert queue.stats().pending_lines == Ledger(ledger_path).total_lines() == summary["events"]
    queue.close()
