"""Spec §7: after any sequence of incremental runs, every model equals a full refresh, row
for row — and both equal an independent Python computation of §3, §5 and §6.

A few hundred events over a handful of session keys arrive in shuffled batches with
increasing load times, with every case the seed review and §7 name: events days late, a late
event bridging two sessions, a late event earlier than a session's first event, conflicting
duplicates in different runs (winning and losing, one moving an event to another key and
leaving a key empty, one splitting the session it leaves), ties on timestamps, gaps of exactly
1800 s and 1800.000001 s, sessions across midnight, redelivered lines, rejected lines
(redelivered, and one accepted on a later delivery).
"""

from __future__ import annotations

import random
import shutil
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from hashlib import md5
from typing import Any

import pytest

from conftest import (
    MARTS,
    RawEvent,
    RawRejected,
    insert_raw,
    query,
    seed_countries,
    seed_prices,
)
from rtdp.settings import Settings
from rtdp.transform import TransformResult, run_transform

GAP = timedelta(seconds=1800)
BATCHES = 5
T0 = datetime(2024, 3, 1, 22, 30)  # sessions run across midnight
EVENT_TYPES = ("page_view", "product_view", "add_to_cart", "remove_from_cart", "checkout")
# Gaps between consecutive events of a key, in microseconds: ties, the exact boundary and
# one microsecond over it, and days.
GAPS_US = (0, 1, 59_999_999, 600_000_000, 1_799_999_999, 1_800_000_000, 1_800_000_001,
           2_400_000_000, 7_200_000_000, 2 * 86_400_000_000)


class Scenario:
    """Raw rows per batch, built from a seeded random generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.batches: list[list[RawEvent | RawRejected]] = [[] for _ in range(BATCHES)]
        self._messages = 0
        self.products = [*sorted(seed_prices())[:20], "p_9999"]  # p_9999: orphan product
        self.users = [*sorted(seed_countries())[:5], "u_orphan"]

    def line(self) -> tuple[str, int]:
        self._messages += 1
        return f"msg-{self._messages:05d}", self.rng.randint(1, 50)

    def event(self, key: str, at: datetime, *, user_key: bool = False,
              event_id: str | None = None) -> RawEvent:
        rng = self.rng
        event_type = rng.choice(EVENT_TYPES)
        message_id, line_number = self.line()
        return RawEvent(
            event_id=event_id or f"{rng.getrandbits(48):012x}",
            event_type=event_type,
            event_timestamp=at,
            message_id=message_id,
            line_number=line_number,
            anonymous_id=None if user_key else key,
            user_id=key if user_key else rng.choice([None, None, *self.users]),
            product_id=rng.choice(self.products) if event_type != "page_view" else None,
            quantity=rng.choice([None, 1, 2, 3]) if event_type in EVENT_TYPES[2:] else None,
            platform=rng.choice(["web", "ios", "android", None]),
            utm_source=rng.choice([None, None, "google", "newsletter"]),
            utm_medium=rng.choice([None, "cpc", "email"]),
            utm_campaign=rng.choice([None, None, None, "spring"]),
            extra=rng.choice([{}, {}, {"experiment": "b"}]),
        )

    def add(self, batch: int, *rows: RawEvent | RawRejected) -> None:
        self.batches[batch].extend(rows)

    def random_history(self, key: str, count: int, *, user_key: bool = False) -> None:
        at = T0 + timedelta(minutes=self.rng.randint(0, 600))
        for _ in range(count):
            at += timedelta(microseconds=self.rng.choice(GAPS_US))
            # any batch: most keys get events late and out of order
            self.add(self.rng.randrange(BATCHES), self.event(key, at, user_key=user_key))

    def build(self) -> Scenario:
        rng = self.rng
        for i in range(6):
            self.random_history(f"anon-{i}", rng.randint(30, 50))
        for user in self.users[:2]:
            self.random_history(user, rng.randint(20, 30), user_key=True)

        # a late event bridging two sessions into one
        first, second = self.event("bridge", T0), self.event("bridge", T0 + timedelta(seconds=3000))
        self.add(0, first, second)
        self.add(3, self.event("bridge", T0 + timedelta(seconds=1500)))
        # a late event earlier than a session's first event: the session id changes
        self.add(0, self.event("newfirst", T0))
        self.add(1, self.event("newfirst", T0 + timedelta(seconds=60)))
        self.add(2, self.event("newfirst", T0 - timedelta(seconds=600)))
        # conflicting duplicate, other key, earlier: event moves, its only key becomes empty
        moved = self.event("mover-a", T0)
        self.add(0, moved)
        self.add(2, replace(self.event("mover-b", T0 - timedelta(seconds=1)),
                            event_id=moved.event_id))
        # conflicting duplicate moving the middle event out: the old key's session splits
        split = [self.event("splitter", T0 + timedelta(seconds=s)) for s in (0, 1000, 2000)]
        self.add(0, *split)
        self.add(3, replace(self.event("taker", T0), event_id=split[1].event_id))
        # conflicting duplicates of random events: later, earlier, tied with other raw JSON
        pool = [r for b in self.batches[:3] for r in b if isinstance(r, RawEvent)]
        for original in rng.sample(pool, 25):
            delta = timedelta(microseconds=rng.choice([-1, 0, 0, 1, -86_400_000_000]))
            other_key = rng.random() < 0.3
            dup = self.event(f"anon-{rng.randrange(6)}" if other_key else
                             (original.anonymous_id or original.user_id or "x"),
                             original.event_timestamp + delta,
                             user_key=original.anonymous_id is None and not other_key,
                             event_id=original.event_id)
            self.add(rng.randrange(BATCHES), dup)
        # delivery duplicates: the very same line loaded again later (converter crash)
        events = [r for b in self.batches for r in b if isinstance(r, RawEvent)]
        for original in rng.sample(events, 30):
            self.add(rng.randrange(BATCHES), original)
        # rejected lines, some redelivered; one rejected line accepted on redelivery
        for i in range(15):
            message_id, line_number = self.line()
            rejected = RawRejected(f"{{not json {i}", "malformed_json", message_id, line_number,
                                   T0 + timedelta(seconds=i))
            self.add(rng.randrange(BATCHES), rejected)
            if i % 3 == 0:
                self.add(rng.randrange(BATCHES),
                         replace(rejected, seen_at=rejected.seen_at + timedelta(minutes=5)))
        flipped = self.event("flipper", T0 + timedelta(days=3))
        self.add(1, RawRejected(flipped.raw_json, "timestamp_out_of_range", flipped.message_id,
                                flipped.line_number, T0))
        self.add(3, flipped)
        for batch in self.batches:
            rng.shuffle(batch)
        return self


# --------------------------------------------------------------------------------------------
# Independent computation of §3, §5, §6


def kept_events(rows: list[RawEvent]) -> list[RawEvent]:
    best: dict[str, tuple[Any, RawEvent]] = {}
    for r in rows:
        rank = (r.event_timestamp, r.raw_json.encode(), r.message_id, r.line_number)
        if r.event_id not in best or rank < best[r.event_id][0]:
            best[r.event_id] = (rank, r)
    return [r for _, r in best.values()]


def reference_sessions(rows: list[RawEvent]) -> dict[str, dict[str, Any]]:
    prices, countries = seed_prices(), seed_countries()
    by_key: dict[str, list[RawEvent]] = defaultdict(list)
    for e in kept_events(rows):
        by_key[e.anonymous_id or e.user_id or ""].append(e)
    sessions: dict[str, dict[str, Any]] = {}
    for key, events in by_key.items():
        events.sort(key=lambda e: (e.event_timestamp, e.event_id.encode()))
        groups: list[list[RawEvent]] = []
        for e in events:
            if not groups or e.event_timestamp - groups[-1][-1].event_timestamp > GAP:
                groups.append([])
            groups[-1].append(e)
        for number, group in enumerate(groups, start=1):
            session_id = md5(f"{key}|{group[0].event_id}".encode()).hexdigest()
            user_id = next((e.user_id for e in reversed(group) if e.user_id), None)
            revenue = sum(
                ((e.quantity or 1) * prices.get(e.product_id or "", Decimal(0))
                 for e in group if e.event_type == "checkout"),
                Decimal(0),
            )
            counts = {t: sum(e.event_type == t for e in group) for t in EVENT_TYPES}
            sessions[session_id] = {
                "session_key": key,
                "session_number": number,
                "user_id": user_id,
                "session_start": group[0].event_timestamp,
                "session_end": group[-1].event_timestamp,
                "event_count": len(group),
                **{f"{t}_count": n for t, n in counts.items()},
                "revenue": revenue.quantize(Decimal("0.01"), ROUND_HALF_UP),
                "is_bounce": len(group) == 1,
                "is_converted": counts["checkout"] > 0,
                "utm_source": next((e.utm_source for e in group if e.utm_source), None),
                "utm_medium": next((e.utm_medium for e in group if e.utm_medium), None),
                "utm_campaign": next((e.utm_campaign for e in group if e.utm_campaign), None),
                "platform": group[0].platform,
                "user_country": countries.get(user_id or ""),
                "event_ids": [e.event_id for e in group],
            }
    return sessions


# --------------------------------------------------------------------------------------------


def except_both_ways(incremental: Settings, full: Settings, relation: str) -> tuple[int, int]:
    sql = (
        f"attach '{full.warehouse_path}' as full_refresh (read_only);"
        f" select"
        f" (select count(*) from (select * from analytics.{relation}"
        f"  except all select * from full_refresh.analytics.{relation})),"
        f" (select count(*) from (select * from full_refresh.analytics.{relation}"
        f"  except all select * from analytics.{relation}))"
    )
    row = query(incremental, sql)[0]
    values = list(row.values())
    return int(values[0]), int(values[1])


@pytest.mark.slow
def test_incremental_runs_equal_full_refresh_and_reference(tmp_path: Any) -> None:
    scenario = Scenario(seed=20240301).build()
    incremental = Settings(home=tmp_path / "incremental")
    loaded_at = datetime(2024, 3, 10, 8, 0)
    results: list[TransformResult] = []
    for number, batch in enumerate(scenario.batches):
        # two files per batch, loaded one after the other
        half = len(batch) // 2
        for part, rows in enumerate((batch[:half], batch[half:])):
            insert_raw(incremental, rows, loaded_at=loaded_at, filename=f"b{number}-{part}.parquet")
            loaded_at += timedelta(minutes=7)
        results.append(run_transform(incremental))
        loaded_at += timedelta(hours=1)
    assert all(r.unit_tests_passed > 0 and r.tests_failed == 0 for r in results)

    full = Settings(home=tmp_path / "full")
    full.home.mkdir()
    shutil.copy(incremental.warehouse_path, full.warehouse_path)
    assert run_transform(full, full_refresh=True).full_refresh

    for relation in MARTS:
        counts = query(full, f"select count(*) as n from analytics.{relation}")[0]["n"]
        assert counts > 0, relation
        assert except_both_ways(incremental, full, relation) == (0, 0), relation

    # ... and both equal the reference computed here, column by column
    valid = [r for b in scenario.batches for r in b if isinstance(r, RawEvent)]
    expected = reference_sessions(valid)
    fact_rows = query(incremental, "select * from analytics.fact_sessions")
    facts = {row.pop("session_id"): row for row in fact_rows}
    assert facts.keys() == expected.keys()
    for session_id, want in expected.items():
        got = facts[session_id]
        event_ids = want.pop("event_ids")
        duration = (want["session_end"] - want["session_start"]) / timedelta(seconds=1)
        assert got.pop("duration_seconds") == pytest.approx(duration, abs=1e-6)
        assert got == want, session_id
        assert len(event_ids) == got["event_count"]
    event_rows = query(incremental, "select * from analytics.int_events_sessionized")
    per_event = {r["event_id"]: r["session_id"] for r in event_rows}
    assert per_event == {
        e: sid for sid, s in reference_sessions(valid).items() for e in s["event_ids"]
    }

    # the nasty cases really happened
    keys = {row["session_key"] for row in facts.values()}
    assert "mover-a" not in keys and "mover-b" in keys
    numbers = defaultdict(list)
    for row in facts.values():
        numbers[row["session_key"]].append(row["session_number"])
    assert numbers["bridge"] == [1]
    assert sorted(numbers["splitter"]) == [1, 2]
    quarantined = query(incremental, "select * from analytics.events_quarantine")
    assert len(quarantined) == 15  # redeliveries counted once, the accepted line not at all
