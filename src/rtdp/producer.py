"""The producer: realistic behavioral traffic, with the dirt real clients send, into the queue.

Why a simulation and not uniform noise: every later stage is judged on what real traffic
does to it — sessions split by inactivity, visitors who log in halfway, funnels that leak,
retries that duplicate, phones that deliver yesterday's events today, clients that send
epoch numbers or shouted event types, and the odd line that is not an event at all. The
generator reproduces each of these on purpose, counts what it injected, and is deterministic
for a given ``seed`` and ``start_time`` so a run can be replayed byte for byte.

How it stays fast in pure Python (≥ 200k events/s on two cores): simulated time is cut into
windows; all sessions *starting* in a window are walked at once (a table-driven state
machine, random draws from precomputed tables), each event is formatted with one f-string
from per-session pre-rendered JSON fragments, and events are dropped into per-window buckets
that are sorted in C. A window is complete once its sessions are generated, because no
session started later can have an event earlier. Rare paths (malformed lines, duplicates
with a changed payload) use the ``json`` module; they are rare by construction.
"""

from __future__ import annotations

import bisect
import csv
import functools
import heapq
import json
import math
import os
import pickle
import queue as queue_module
import random
import secrets
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any, Final

from rtdp.events import MAX_LINE_BYTES, EventType, RejectReason
from rtdp.exceptions import ConfigError, MessageTooLargeError, RtdpError
from rtdp.ledger import Ledger
from rtdp.queue import LINE_COUNT_ATTRIBUTE, Queue

LEDGER_SOURCE: Final = "produce"
SEEDS_DIR_ENV: Final = "RTDP_SEEDS_DIR"
# Simulated site traffic (events per second of event time) when producing as fast as possible.
DEFAULT_TRAFFIC_RATE: Final = 1000.0
# Messages per ``send_batch`` call: one SQLite transaction / one SQS SendMessageBatch family.
DEFAULT_BATCH_MESSAGES: Final = 25
# Events per window when producing as fast as possible: big enough to amortise the sort.
_FAST_WINDOW_EVENTS: Final = 8192
# Paced runs at this rate or more simulate in shard processes by default (default_workers).
_PACED_SHARDS_RATE: Final = 20_000.0
# Window length when pacing to the wall clock: an event waits at most this long to be sent.
_REALTIME_WINDOW_SECONDS: Final = 0.5
# Without --start-time, an unbounded fast run starts this far back, so its timestamps reach
# "now" only after ~86M events at the default traffic rate (valid events never run a day
# ahead of the wall clock; see also _MAX_AHEAD_SECONDS).
_FAST_BACKFILL_SECONDS: Final = 86_400.0
_MAX_AHEAD_SECONDS: Final = 3_600.0
# An oversize line must exceed 64 KiB (spec §2) yet still fit in one queue message, so the
# converter — not the producer — is the one that rejects it.
_OVERSIZE_MIN_BYTES: Final = MAX_LINE_BYTES + 64
_OVERSIZE_MAX_BYTES: Final = 70 * 1024
_OVERSIZE_SHARE: Final = 0.01  # of malformed lines: rare, they weigh 1,000 ordinary ones
_US: Final = 1_000_000
# The simulation is split into this many independent shards (fixed, so that the stream does
# not depend on how many processes produce it); see ``produce(workers=...)``.
_SHARDS: Final = 2
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DIGITS3: Final = tuple(f"{i:03d}" for i in range(1000))  # faster than a :06d format spec


class DirtyKind(StrEnum):
    """What the producer can do to an event on purpose; the summary counts each."""

    EPOCH_TIMESTAMP = "epoch_timestamps"  # epoch seconds (int/float) or milliseconds
    CASED_EVENT_TYPE = "cased_event_types"  # PAGE_VIEW, Page_View, " page_view "
    DUPLICATE = "duplicates"  # an extra delivery of an event already sent
    LATE = "late"  # delivered minutes to days after its timestamp
    MALFORMED = "malformed"  # cannot be an event: one rejection reason of spec §2


class Platform(StrEnum):
    WEB = "web"
    IOS = "ios"
    ANDROID = "android"


class _K(IntEnum):
    """Event kinds inside the state machine (ints index tables; EXIT ends the session)."""

    PAGE_VIEW = 0
    PRODUCT_VIEW = 1
    ADD_TO_CART = 2
    REMOVE_FROM_CART = 3
    CHECKOUT = 4
    EXIT = 5


_KIND_TYPE: Final = (
    EventType.PAGE_VIEW.value,
    EventType.PRODUCT_VIEW.value,
    EventType.ADD_TO_CART.value,
    EventType.REMOVE_FROM_CART.value,
    EventType.CHECKOUT.value,
)

# Bits of an item's mask; the malformed reason's index + 1 sits above them.
_M_EPOCH: Final = 1
_M_CASE: Final = 2
_M_DUP: Final = 4
_M_LATE: Final = 8
_M_REASON_SHIFT: Final = 4
_REASONS: Final = tuple(RejectReason)


# --------------------------------------------------------------------------------------------
# Configuration and results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProducerConfig:
    """What to produce. ``events`` and ``duration_seconds`` bound the run; neither = until stop.

    ``rate`` > 0 paces lines to the wall clock (event time then *is* wall time, starting at
    ``start_time`` or now). ``rate`` = 0 produces as fast as possible; event time then runs at
    ``traffic_rate`` simulated events per second, from ``start_time`` or, by default, from far
    enough back that the run ends about now (a backfill), never far ahead of the wall clock.
    """

    seed: int | None = None  # None: a random seed, reported in the summary for replay
    start_time: datetime | None = None
    rate: float = 0.0
    duration_seconds: float | None = None
    events: int | None = None
    traffic_rate: float | None = None  # only when rate == 0; default DEFAULT_TRAFFIC_RATE
    epoch_ratio: float = 0.3
    case_ratio: float = 0.1
    duplicate_ratio: float = 0.05
    late_ratio: float = 0.02
    malformed_ratio: float = 0.01
    # Ids absent from the seeds (valid events; user_country null, revenue 0 downstream).
    orphan_ratio: float = 0.005
    max_message_bytes: int = 256 * 1024
    batch_messages: int = DEFAULT_BATCH_MESSAGES
    seeds_dir: Path | None = None

    def __post_init__(self) -> None:
        for name in ("epoch_ratio", "case_ratio", "duplicate_ratio", "late_ratio",
                     "malformed_ratio", "orphan_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}={value} must be between 0 and 1")
        rare = self.duplicate_ratio + self.late_ratio + self.malformed_ratio
        if rare > 1.0:
            raise ConfigError(
                f"duplicate + late + malformed ratios add up to {rare:g}; they must total ≤ 1"
            )
        if self.rate < 0:
            raise ConfigError(f"rate={self.rate} must be ≥ 0 (0 = as fast as possible)")
        if self.traffic_rate is not None and self.traffic_rate <= 0:
            raise ConfigError(f"traffic_rate={self.traffic_rate} must be > 0")
        if self.events is not None and self.events < 0:
            raise ConfigError(f"events={self.events} must be ≥ 0")
        if self.duration_seconds is not None and self.duration_seconds < 0:
            raise ConfigError(f"duration_seconds={self.duration_seconds} must be ≥ 0")
        if self.max_message_bytes < 1024:
            raise ConfigError(f"max_message_bytes={self.max_message_bytes} must be ≥ 1024")
        if self.batch_messages < 1:
            raise ConfigError(f"batch_messages={self.batch_messages} must be ≥ 1")
        if self.start_time is not None and self.start_time.tzinfo is None:
            raise ConfigError("start_time must be timezone-aware (e.g. ...Z or +00:00)")

    def clean(self) -> ProducerConfig:
        """The same traffic with every dirty knob (and orphan ids) at zero."""
        return replace(self, epoch_ratio=0.0, case_ratio=0.0, duplicate_ratio=0.0,
                       late_ratio=0.0, malformed_ratio=0.0, orphan_ratio=0.0)

    @property
    def effective_traffic_rate(self) -> float:
        """Simulated events per second of event time."""
        if self.rate > 0:
            return self.rate
        return self.traffic_rate or DEFAULT_TRAFFIC_RATE


@dataclass(frozen=True)
class DirtyCounts:
    """Lines carrying each deliberate defect (a line can carry several, except the last three,
    which exclude each other). ``malformed_by_reason`` splits ``malformed`` by spec §2 reason."""

    epoch_timestamps: int = 0
    cased_event_types: int = 0
    duplicates: int = 0
    late: int = 0
    malformed: int = 0
    malformed_by_reason: dict[str, int] = field(default_factory=dict)

    def __add__(self, other: DirtyCounts) -> DirtyCounts:
        reasons = Counter(self.malformed_by_reason)
        reasons.update(other.malformed_by_reason)
        return DirtyCounts(
            self.epoch_timestamps + other.epoch_timestamps,
            self.cased_event_types + other.cased_event_types,
            self.duplicates + other.duplicates,
            self.late + other.late,
            self.malformed + other.malformed,
            dict(sorted(reasons.items())),
        )


@dataclass(frozen=True)
class Chunk:
    """Lines for one window of event time, in delivery order, without newlines."""

    lines: list[bytes]
    dirty: DirtyCounts
    end: datetime  # event time up to which this window is complete


@dataclass(frozen=True)
class ProduceProgress:
    lines: int
    messages: int
    bytes: int
    seconds: float


@dataclass(frozen=True)
class ProduceSummary:
    """What a run sent. ``events`` counts lines sent (what ``--events`` bounds); the lines
    that should survive as distinct valid events are ``events - duplicates - malformed``."""

    seed: int
    start_time: str
    events: int
    messages: int
    bytes: int
    seconds: float
    dirty: DirtyCounts
    stopped: bool  # ended by a stop request rather than by --events / --duration

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = self.dirty
        return {
            "seed": self.seed,
            "start_time": self.start_time,
            "events": self.events,
            "lines": self.events,
            "messages": self.messages,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second, 1),
            "epoch_timestamps": d.epoch_timestamps,
            "cased_event_types": d.cased_event_types,
            "duplicates": d.duplicates,
            "late": d.late,
            "malformed": d.malformed,
            "malformed_by_reason": dict(d.malformed_by_reason),
            "expected_valid_events": self.events - d.duplicates - d.malformed,
            "stopped": self.stopped,
        }


# --------------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    product_id: str
    price: str  # as written in the seed, two decimals: emitted verbatim as a JSON number


@dataclass(frozen=True)
class Catalog:
    user_ids: tuple[str, ...]
    products: tuple[Product, ...]


def default_seeds_dir() -> Path:
    """``$RTDP_SEEDS_DIR``, else the repository's ``dbt/seeds`` (the ones dbt loads)."""
    env = os.environ.get(SEEDS_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "dbt" / "seeds"


def load_catalog(seeds_dir: Path | None = None) -> Catalog:
    """Users and products from the dbt seeds, so produced ids join in the warehouse."""
    directory = seeds_dir or default_seeds_dir()
    users_csv, products_csv = directory / "users.csv", directory / "products.csv"
    for path in (users_csv, products_csv):
        if not path.is_file():
            raise ConfigError(
                f"seed file {path} not found: set {SEEDS_DIR_ENV} to the directory holding "
                "users.csv and products.csv (generate them with scripts/make_seeds.py)"
            )
    try:
        with users_csv.open(newline="", encoding="utf-8") as f:
            user_ids = tuple(row["user_id"] for row in csv.DictReader(f))
        with products_csv.open(newline="", encoding="utf-8") as f:
            products = tuple(
                Product(row["product_id"], f"{float(row['price']):.2f}")
                for row in csv.DictReader(f)
            )
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"seed files in {directory} lack a column or a price: {exc}") from exc
    if not user_ids or not products:
        raise ConfigError(f"seed files in {directory} are empty")
    return Catalog(user_ids, products)


# --------------------------------------------------------------------------------------------
# Traffic model tables (module constants: the shape of the traffic, not its randomness)
# --------------------------------------------------------------------------------------------

_E, _PV, _PRV, _ATC, _RFC, _CO = (_K.EXIT, _K.PAGE_VIEW, _K.PRODUCT_VIEW, _K.ADD_TO_CART,
                                  _K.REMOVE_FROM_CART, _K.CHECKOUT)
# Next step after each kind, for (empty cart, non-empty cart): (probability, next kind).
# With the landing bounce below, tuned to e-commerce norms: ~40% of sessions bounce, ~5
# events per session, ~8% add to cart, ~3% check out.
_TRANSITIONS: Final[dict[int, tuple[tuple[tuple[float, int], ...], ...]]] = {
    _PV: (((0.15, _E), (0.33, _PV), (0.52, _PRV)),
          ((0.16, _E), (0.24, _PV), (0.38, _PRV), (0.06, _RFC), (0.16, _CO))),
    _PRV: (((0.14, _E), (0.30, _PV), (0.525, _PRV), (0.035, _ATC)),
           ((0.16, _E), (0.20, _PV), (0.36, _PRV), (0.06, _ATC), (0.06, _RFC), (0.16, _CO))),
    _ATC: (((1.0, _E),),  # unreachable: the cart is never empty after add_to_cart
           ((0.22, _E), (0.14, _PV), (0.32, _PRV), (0.10, _RFC), (0.22, _CO))),
    _RFC: (((0.45, _E), (0.25, _PV), (0.30, _PRV)),
           ((0.25, _E), (0.15, _PV), (0.35, _PRV), (0.05, _RFC), (0.20, _CO))),
    _CO: (((0.70, _E), (0.22, _PV), (0.08, _PRV)),
          ((1.0, _E),)),  # unreachable: checkout empties the cart
}
_RETRY_MEAN_SECONDS: Final = 2.0  # a duplicate's copy follows its original by this, on average
_BOUNCE_RATIO: Final = 0.30  # sessions that leave after the landing event


def _cumulative(
    steps: tuple[tuple[float, int], ...],
) -> tuple[list[float], list[int]]:
    bounds, kinds, total = [], [], 0.0
    for p, kind in steps:
        total += p
        bounds.append(total)
        kinds.append(int(kind))
    bounds[-1] = 1.0  # guard against float rounding: the last step always catches
    return bounds, kinds


# _NEXT[kind][cart_nonempty] = (cumulative bounds, kinds) for bisect.
_NEXT: Final = tuple(
    tuple(_cumulative(_TRANSITIONS[k][c]) for c in (0, 1)) for k in range(5)
)
# The same as flat lookup tables, one slot per 1/_STEP_GRAIN of probability (every
# probability above is a multiple of 0.005): _NEXT_TABLE[kind * 2 + cart_nonempty][slot].
_STEP_GRAIN: Final = 1000
_NEXT_TABLE: Final = tuple(
    tuple(kinds[bisect.bisect(bounds, (i + 0.5) / _STEP_GRAIN)] for i in range(_STEP_GRAIN))
    for k in range(5) for bounds, kinds in _NEXT[k]
)
_LANDING_PRODUCT_RATIO: Final = 0.2  # deep links from ads and search land on a product page
_RETURN_RATIO: Final = 0.15  # a visitor comes back for another session
_RETURN_GAP_MIN_S: Final = 31 * 60  # always a new session (> 30 min of inactivity)
_RETURN_GAP_MAX_S: Final = 6 * 3600
# The stream begins in the middle of the traffic, not with an empty shop: the sessions in
# progress at the start (steady state: about session rate × mean duration of 2.4 minutes, up
# to an hour for the longest) send their remaining events from the first second on.
#
# They are not simulated from a warm-up before the start. A warm-up as long as the longest
# session walks an hour of sessions (35M per shard at 100k events/s) before the first line,
# and the short one it once was (capped at 200k events: 200 s at 1k/s, 20 s at 10k/s)
# dropped the events of every session older than that: the realized rate started at 70% of
# the asked one at 1k/s, 30% at 10k/s, and took many minutes to climb. Instead each ongoing
# session is drawn where it shows up in the stream, at its first event from the start on,
# exactly as in the steady state. Think times are independent of the state machine, so a
# session is caught in the think time before its k-th step, ``u`` after the start, with
# intensity ``session rate × P(steps ≥ k) × P(think > u)``; summed over k, ongoing sessions
# show up as a Poisson process of intensity ``session rate × mean think steps per session ×
# P(think > u)`` (0 once u exceeds the longest think time, 20 min), and the state a session
# is in at that step (page, cart, last product seen) is distributed as the states the
# machine passes through: it is taken from the steps of sessions walked for the purpose
# (_resume). The rate is flat from the first window, and the start costs only the ongoing
# sessions whose next step falls in the first window. (Each is walked to its end when it
# shows up, like any session, so the first minute walks about three times the sessions of a
# later one.) Not drawn: retries of events sent before the start, so the first 2 s run ~3%
# short.
_KNOWN_USER_RATIO: Final = 0.3  # visitors with an account
_LOGGED_IN_AT_START: Final = 0.55  # of known users: a remembered login
_LOGIN_PER_STEP: Final = 0.15  # of known users not logged in: they log in at this step
_SERVER_SIDE_RATIO: Final = 0.03  # of known users: backend events with user_id only
_TABLE: Final = 4096  # size of precomputed random tables

_PLATFORMS: Final = ((Platform.WEB, 55), (Platform.IOS, 25), (Platform.ANDROID, 20))
_BASE_URL: Final = {
    Platform.WEB: "https://shop.example.com",
    Platform.IOS: "shopapp://ios",
    Platform.ANDROID: "shopapp://android",
}
_USER_AGENTS: Final = {
    Platform.WEB: (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.4 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
    ),
    Platform.IOS: (
        "ShopApp/5.4.1 (iPhone15,2; iOS 17.4.1; Scale/3.00)",
        "ShopApp/5.4.1 (iPhone13,3; iOS 16.7.5; Scale/3.00)",
        "ShopApp/5.3.0 (iPad13,4; iPadOS 17.3; Scale/2.00)",
    ),
    Platform.ANDROID: (
        "ShopApp/5.4.0 (Linux; Android 14; Pixel 8 Build/AP1A.240405.002)",
        "ShopApp/5.4.0 (Linux; Android 13; SM-A546B Build/TP1A.220624.014)",
        "ShopApp/5.2.3 (Linux; Android 12; Redmi Note 11 Build/SKQ1.211103.001)",
    ),
}
# (utm_source, utm_medium, utm_campaign, weight); most sessions carry none.
_CAMPAIGNS: Final = (
    ("google", "cpc", "brand_search", 14),
    ("google", "cpc", "spring_sale", 8),
    ("facebook", "paid_social", "spring_sale", 7),
    ("instagram", "paid_social", "influencer_q2", 5),
    ("newsletter", "email", "weekly_digest", 8),
    ("tiktok", "paid_social", "new_arrivals", 3),
    ("bing", "cpc", "brand_search", 2),
    ("partner_blog", "affiliate", None, 3),
)
_CAMPAIGN_RATIO: Final = 0.4
_UTM_ON_EVERY_EVENT: Final = 0.5  # SDKs that repeat the campaign vs landing-page-only
# Landing referrers when no campaign (None = direct / typed URL).
_REFERRERS: Final = (
    (None, 40), ("https://www.google.com/", 35), ("https://www.bing.com/", 5),
    ("https://duckduckgo.com/", 4), ("https://www.facebook.com/", 6),
    ("https://t.co/", 3), ("https://www.reddit.com/", 3), ("https://news.ycombinator.com/", 1),
    ("https://www.pinterest.com/", 3),
)
_PAGE_PATHS: Final = (
    "/", "/", "/", "/deals", "/new", "/account", "/help/shipping", "/search?q=headphones",
    "/search?q=gift+ideas", "/search?q=yoga+mat", "/search?q=caf%C3%A9+mug",
    "/category/electronics", "/category/books", "/category/clothing", "/category/home",
    "/category/beauty", "/category/sports", "/category/toys",
)
_QUANTITIES: Final = ((1, 80), (2, 12), (3, 5), (4, 2), (5, 1))
# Case variants real SDKs send (spec: case-insensitive, surrounding whitespace ignored).
_CASE_STYLES: Final[tuple[Callable[[str], str], ...]] = (
    str.upper,
    lambda s: s.title(),
    lambda s: s[0].upper() + s[1:],
    lambda s: f" {s}",
    lambda s: f"{s} ",
    lambda s: f"  {s.upper()} ",
)


def _weighted_table(rng: random.Random, items: Sequence[Any], weights: Sequence[float],
                    size: int = _TABLE) -> tuple[Any, ...]:
    """A table whose uniform index draws ``items`` with ``weights``: one random() per draw."""
    return tuple(rng.choices(items, weights, k=size))


def _think_table(rng: random.Random) -> tuple[int, ...]:
    """Think times in µs: log-normal, median ~20 s, long tail to minutes, capped at 20 min
    so that, within a visit, an inactivity split (> 30 min) only comes from a return."""
    return tuple(
        int(min(max(rng.lognormvariate(math.log(20.0), 1.1), 1.0), 1200.0) * _US)
        + rng.randrange(_US)
        for _ in range(_TABLE)
    )


def _return_gap_table(rng: random.Random) -> tuple[int, ...]:
    """Gaps before a returning visitor's next session: log-uniform between the bounds."""
    lo, hi = math.log(_RETURN_GAP_MIN_S), math.log(_RETURN_GAP_MAX_S)
    return tuple(int(math.exp(rng.uniform(lo, hi)) * _US) for _ in range(_TABLE))


def _returned_share(seconds: float) -> float:
    """Share of the steady-state flow of returning sessions already present ``seconds`` after
    the start (the CDF of the return gap): new visitors make up the rest, so the event rate
    is flat from the first minute instead of climbing for six hours."""
    if seconds <= _RETURN_GAP_MIN_S:
        return 0.0
    if seconds >= _RETURN_GAP_MAX_S:
        return 1.0
    return math.log(seconds / _RETURN_GAP_MIN_S) / math.log(_RETURN_GAP_MAX_S / _RETURN_GAP_MIN_S)


def _late_delay_table(rng: random.Random) -> tuple[int, ...]:
    """How late a late event arrives: 2 minutes to 3 days, log-uniform."""
    lo, hi = math.log(120), math.log(3 * 86_400)
    return tuple(int(math.exp(rng.uniform(lo, hi)) * _US) for _ in range(_TABLE))


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def _iso(us: int) -> str:
    """ISO-8601 UTC with microseconds and ``Z`` (the default wire format)."""
    sec, frac = divmod(us, _US)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:06d}Z"


def _epoch_us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / _US, UTC)


def resolve_start(config: ProducerConfig, now: datetime | None = None) -> datetime:
    """Where event time starts: ``start_time``; else now (paced), or a backfill ending ~now."""
    if config.start_time is not None:
        return config.start_time.astimezone(UTC)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if config.rate > 0:
        return now
    if config.events is not None:
        back = config.events / config.effective_traffic_rate
    else:
        back = _FAST_BACKFILL_SECONDS
    return datetime.fromtimestamp(now.timestamp() - back, UTC)


def resolve_seed(config: ProducerConfig) -> int:
    return config.seed if config.seed is not None else secrets.randbits(48)


# A scheduled event: (time µs, kind, context, utm, product fragment, page_url, referrer),
# the last five as JSON text; or a copy to re-deliver: (time µs, _RENDERED, line, mask, …).
_Item = tuple[int, int, str, str, str, str, str]
_RENDERED: Final = 9
# A step a session can be caught at by the start (see _Generator._resume): its lines as
# (µs after the step, kind, product fragment, path), its kind, the last product seen, the
# cart after it, and the path of the page before it.
_ResumeState = tuple[list[tuple[int, int, str, str]], int, int, tuple[tuple[int, int], ...], str]
_NEVER: Final = 2**62  # µs: a time no event reaches


@dataclass(frozen=True)
class _Visitor:
    vseed: int  # 128 random bits: device id, platform, agent and address derive from it
    user_id: str | None
    logged_in: bool
    has_anonymous_id: bool


class _Generator:
    """One shard of the traffic simulation: an independent share of the visitors.

    The stream is always simulated as ``_SHARDS`` shards, whatever the number of processes,
    so that it is the same bytes whether one process or several produce it."""

    def __init__(self, config: ProducerConfig, seed: int, start_us: int, shard: int,
                 catalog: Catalog | None = None) -> None:
        self.config = config
        catalog = catalog or load_catalog(config.seeds_dir)
        self.rng = rng = random.Random(seed * _SHARDS + shard)
        # Tables drawn from the run's seed: popularity differs between seeds, like real shops.
        self.think = _think_table(rng)
        self.return_gap = _return_gap_table(rng)
        self.late_delay = _late_delay_table(rng)
        products = list(catalog.products)
        rng.shuffle(products)
        zipf = [1.0 / (rank + 1) ** 1.05 for rank in range(len(products))]
        self.product_table: tuple[int, ...] = _weighted_table(rng, range(len(products)), zipf)
        self.products = products
        # Pre-rendered per product: (JSON fragment of a product view, page path).
        self.product_view = [
            (f',"product_id":"{p.product_id}","price":{p.price}', f"/product/{p.product_id}")
            for p in products
        ]
        self.page_paths = _weighted_table(rng, _PAGE_PATHS, [1.0] * len(_PAGE_PATHS))
        self.user_ids = catalog.user_ids
        self.qty_table = _weighted_table(rng, [q for q, _ in _QUANTITIES],
                                         [w for _, w in _QUANTITIES])
        self.campaign_table = _weighted_table(rng, [c[:3] for c in _CAMPAIGNS],
                                              [c[3] for c in _CAMPAIGNS])
        self.referrer_table = _weighted_table(rng, [r for r, _ in _REFERRERS],
                                              [w for _, w in _REFERRERS])
        self.platform_table = _weighted_table(rng, [p for p, _ in _PLATFORMS],
                                              [w for _, w in _PLATFORMS])
        self.iso_cache: dict[int, str] = {}
        self.start_us = start_us
        rate = config.effective_traffic_rate
        window_s = (_REALTIME_WINDOW_SECONDS if config.rate > 0
                    else max(_FAST_WINDOW_EVENTS / rate, 0.001))
        self.window_us = max(int(window_s * _US), 1)
        # New sessions arrive as a Poisson process; returns add to it (geometric series).
        # Sessions (new and returning) per µs of this shard; duplicates add lines, so the
        # lines per second come out at the asked-for rate.
        per_second = rate / _SHARDS / (1.0 + config.duplicate_ratio) / _mean_events_per_session()
        self.session_rate = per_second
        self.next_arrival_us = start_us + self._exp_us()
        # Sessions already in progress at the start: the module comment above
        # _KNOWN_USER_RATIO says why they are drawn rather than simulated from a warm-up.
        self._resume_setup(per_second * _mean_think_steps_per_session())
        self.returns: list[tuple[int, int, _Visitor]] = []  # heap (start, tiebreak, visitor)
        self.return_seq = 0
        self.buckets: dict[int, list[_Item]] = {}
        c = config
        self.epoch_r, self.case_r = c.epoch_ratio, c.case_ratio
        self.dup_r = c.duplicate_ratio
        self.late_r = c.duplicate_ratio + c.late_ratio
        self.rare_r = self.late_r + c.malformed_ratio
        self.oversize_ok = c.max_message_bytes >= _OVERSIZE_MIN_BYTES + 1
        self.case_variants = [
            tuple(style(t) for style in _CASE_STYLES) for t in _KIND_TYPE
        ]

    # ---- arrivals --------------------------------------------------------------------------

    def _exp_us(self) -> int:
        return int(self.rng.expovariate(self.session_rate) * _US) + 1

    def _resume_setup(self, steps_per_second: float) -> None:
        """Prepare the arrivals of the sessions in progress at the start.

        They show up at ``u`` µs after the start with intensity ``steps_per_second ×
        P(think > u)`` (see the module comment on sessions in progress, above
        ``_KNOWN_USER_RATIO``). The cumulative intensity is piecewise linear between the
        sorted think times, so arrivals are drawn by inverting it: exponential steps along
        the integral ``∫₀ᵘ P(think > x) dx`` (in µs), mapped back to u."""
        n = len(self.think)
        xs = [0, *sorted(self.think)]
        area = [0.0] * (n + 1)  # area[j] = ∫₀^xs[j] P(think > x) dx
        for j in range(1, n + 1):
            area[j] = area[j - 1] + (xs[j] - xs[j - 1]) * (n - j + 1) / n
        self.resume_xs, self.resume_area = xs, area
        self.resume_rate = steps_per_second / _US  # ongoing sessions per µs of area
        self.resume_at = 0.0  # area reached so far
        self.resume_pool: list[_ResumeState] = []
        self.next_resume_us = self.start_us
        self._next_resume()

    def _next_resume(self) -> None:
        """Draw when the next session in progress at the start shows up (never, once the
        longest think time is past)."""
        self.resume_at += self.rng.expovariate(self.resume_rate)
        area, xs = self.resume_area, self.resume_xs
        if self.resume_at >= area[-1]:
            self.next_resume_us = _NEVER
            return
        j = bisect.bisect_right(area, self.resume_at)  # area[j - 1] <= at < area[j]
        n = len(xs) - 1
        u = xs[j - 1] + (self.resume_at - area[j - 1]) * n / (n - j + 1)
        self.next_resume_us = max(self.start_us + int(u), self.next_resume_us)

    def _resume(self, t: int) -> tuple[list[tuple[int, int, str, str]], str]:
        """The steps, from ``t`` on, of a session that was in progress at the start and whose
        first step since is at ``t``; and the path of the page it was on before.

        Its state at that step (kind, cart, last product seen, previous page) is one of the
        steps of sessions walked for the purpose from their landing, each step used once, so
        states come in proportion to how often the state machine passes through them; from
        there the session is walked on like any other."""
        pool = self.resume_pool
        while not pool:
            self._plan(0, pool)  # a bounce adds nothing: it has no step after the landing
        lines, kind, prod, cart, previous = pool.pop()
        steps = [(t + dt, k, frag, path) for dt, k, frag, path in lines]
        return self._walk(steps, t, kind, prod, list(cart)), previous

    def _new_visitor(self) -> _Visitor:
        rnd = self.rng.random
        vseed = self.rng.getrandbits(128)
        if rnd() >= _KNOWN_USER_RATIO:
            return _Visitor(vseed, None, False, True)
        if rnd() < self.config.orphan_ratio:
            user_id = f"u_9{self.rng.randrange(100_000):05d}"  # deleted or not yet in seeds
        else:
            user_id = self.user_ids[int(rnd() * len(self.user_ids))]
        if rnd() < _SERVER_SIDE_RATIO:
            return _Visitor(vseed, user_id, True, False)
        return _Visitor(vseed, user_id, rnd() < _LOGGED_IN_AT_START, True)

    def _simulate(self, until: int) -> None:
        """Walk every session starting before ``until`` (in start order) into the buckets.

        A session in progress at the start counts as starting at its first step since."""
        returns, rnd = self.returns, self.rng.random
        while True:
            previous = None
            if self.next_resume_us < self.next_arrival_us and not (
                    returns and returns[0][0] < self.next_resume_us):
                # a session in progress at the start, at its first step since (a new visitor
                # to this simulation, like those of the warm-up it stands for)
                start = self.next_resume_us
                if start >= until:
                    return
                self._next_resume()
                steps, previous = self._resume(start)
                visitor = None
            elif returns and returns[0][0] < self.next_arrival_us:
                start = returns[0][0]
                if start >= until:
                    return
                visitor = heapq.heappop(returns)[2]
                steps = self._plan(start)
            else:
                start = self.next_arrival_us
                if start >= until:
                    return
                self.next_arrival_us += self._exp_us()
                # Thinning: arrivals are drawn at the full session rate; the returning visitors
                # already simulated take their share, new visitors the rest.
                elapsed = (start - self.start_us) / _US
                if elapsed > 0 and rnd() < _RETURN_RATIO * _returned_share(elapsed):
                    continue
                visitor = None
                steps = self._plan(start)
            if visitor is None:
                visitor = self._new_visitor()
            end, logged_in = self._session(steps, visitor, previous)
            if rnd() < _RETURN_RATIO:
                if logged_in and not visitor.logged_in:
                    visitor = replace(visitor, logged_in=True)  # the login is remembered
                gap = self.return_gap[int(rnd() * _TABLE)]
                self.return_seq += 1
                heapq.heappush(returns, (end + gap, self.return_seq, visitor))

    def _window(self, t0: int, t1: int) -> list[_Item]:
        """The items to deliver in [t0, t1), sorted: complete once every session starting
        before t1 is walked, since a session never has an event before its start."""
        self._simulate(t1)
        items = self.buckets.pop((t0 - self.start_us) // self.window_us, [])
        items.sort()
        return items

    # ---- one session -----------------------------------------------------------------------

    def _plan(self, start: int,
              states: list[_ResumeState] | None = None) -> list[tuple[int, int, str, str]]:
        """The session's steps: (time µs, kind, product fragment, path). Checkout expands to
        one event per cart line, sharing an order id, a millisecond apart."""
        rnd = self.rng.random
        ptable, view = self.product_table, self.product_view
        t = start
        prod = ptable[int(rnd() * _TABLE)]
        if rnd() < _LANDING_PRODUCT_RATIO:
            steps = [(t, 1, *view[prod])]
            kind = 1
        else:
            steps = [(t, 0, "", self.page_paths[int(rnd() * _TABLE)])]
            kind = 0
        if rnd() < _BOUNCE_RATIO:
            return steps
        return self._walk(steps, t, kind, prod, [], states)

    def _walk(self, steps: list[tuple[int, int, str, str]], t: int, kind: int, prod: int,
              cart: list[tuple[int, int]],
              states: list[_ResumeState] | None = None) -> list[tuple[int, int, str, str]]:
        """Walk the state machine on from a step of ``kind`` at ``t`` (``prod``: the last
        product seen; ``cart``: its lines), appending to ``steps`` until the exit. With
        ``states``, each step after the landing is also recorded there (for _resume)."""
        rnd = self.rng.random
        think, ptable, view = self.think, self.product_table, self.product_view
        nxt = _NEXT_TABLE
        kind = nxt[kind * 2 + (1 if cart else 0)][int(rnd() * _STEP_GRAIN)]
        while kind != 5:  # 0 page view, 1 product view, 2 add, 3 remove, 4 checkout, 5 exit
            t += think[int(rnd() * _TABLE)]
            if kind == 1:
                prod = ptable[int(rnd() * _TABLE)]
                steps.append((t, 1, *view[prod]))
            elif kind == 0:
                steps.append((t, 0, "", self.page_paths[int(rnd() * _TABLE)]))
            elif kind == 2:
                qty = self.qty_table[int(rnd() * _TABLE)]
                cart.append((prod, qty))
                steps.append((t, 2, self._cart_frag(prod, qty), view[prod][1]))
            elif kind == 3:
                line = cart.pop(int(rnd() * len(cart)))
                steps.append((t, 3, self._cart_frag(*line), "/cart"))
            else:
                order = f',"order_id":"o_{self.rng.getrandbits(64):016x}"'
                for i, line in enumerate(cart):
                    steps.append((t + i * 1000, 4, self._cart_frag(*line) + order,
                                  "/checkout/confirmation"))
                cart.clear()
            if states is not None:  # this step's lines: the last ones, from t on
                first = len(steps) - 1
                while steps[first - 1][0] >= t:
                    first -= 1
                states.append(([(u - t, k, frag, path) for u, k, frag, path in steps[first:]],
                               kind, prod, tuple(cart), steps[first - 1][3]))
            kind = nxt[kind * 2 + (1 if cart else 0)][int(rnd() * _STEP_GRAIN)]
        return steps

    def _cart_frag(self, prod: int, qty: int) -> str:
        p = self.products[prod]
        return f',"product_id":"{p.product_id}","quantity":{qty},"price":{p.price}'

    def _context(self, v: _Visitor) -> tuple[Platform, str, str]:
        """(platform, identity-less context fragment, anonymous_id fragment) of a visitor."""
        s = v.vseed
        platform = self.platform_table[s % _TABLE]
        agents = _USER_AGENTS[platform]
        agent = agents[(s >> 12) % len(agents)]
        if (s >> 20) % 20 == 0:
            ip = f"2a01:e0a:{s >> 24 & 0xFFFF:x}:{s >> 40 & 0xFFFF:x}::{s >> 56 & 0xFFFF:x}"
        else:
            a, b, c, d = 1 + (s >> 24) % 223, (s >> 32) % 256, (s >> 40) % 256, 1 + (s >> 48) % 254
            ip = f"{a}.{b}.{c}.{d}"
        h = f"{s:032x}"
        anon = f'"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"'
        rest = f'"platform":"{platform}","ip_address":"{ip}","user_agent":"{agent}"'
        return platform, rest, anon if v.has_anonymous_id else "null"

    def _utm(self) -> tuple[str, str, bool]:
        """(fragment of the first event, of the others, has a campaign) for this session.

        Without a campaign the fields are left out, as most SDKs do; with one, half the
        sessions repeat it on every event, the others only on the landing event."""
        rnd = self.rng.random
        if rnd() >= _CAMPAIGN_RATIO:
            return "", "", False
        source, medium, campaign = self.campaign_table[int(rnd() * _TABLE)]
        c = "null" if campaign is None else f'"{campaign}"'
        first = f',"utm_source":"{source}","utm_medium":"{medium}","utm_campaign":{c}'
        return first, first if rnd() < _UTM_ON_EVERY_EVENT else "", True

    def _session(self, steps: list[tuple[int, int, str, str]], v: _Visitor,
                 previous: str | None = None) -> tuple[int, bool]:
        """Schedule one session's events into the window buckets, unrendered: a line is
        rendered when its window is delivered, so it is built, joined and sent while hot in
        the cache instead of waiting minutes of event time as a string. Returns (last event
        time, logged in). ``previous``: the session was in progress at the start and this is
        the path of its page before ``steps`` (it landed before the start)."""
        platform, rest, anon = self._context(v)
        base = _BASE_URL[platform]
        utm, utm_rest, campaign = self._utm()
        ctx_out = f'"anonymous_id":{anon},"user_id":null,{rest}'
        ctx_in = (f'"anonymous_id":{anon},"user_id":"{v.user_id}",{rest}'
                  if v.user_id is not None else ctx_out)
        landing = self.referrer_table[int(self.rng.random() * _TABLE)]
        if platform is not Platform.WEB or campaign:  # apps and tagged links: no referrer
            landing = None
        ref = "null" if landing is None else f'"{landing}"'
        if previous is not None:  # not its landing: referred by its previous page
            ref, utm = f'"{base}{previous}"', utm_rest
        logged_in = v.logged_in
        can_login = v.user_id is not None and not logged_in
        rnd, window, buckets = self.rng.random, self.window_us, self.buckets
        origin = self.start_us  # windows start there: see windows()
        ctx = ctx_in if logged_in else ctx_out
        key = -1
        bucket: list[_Item] = []
        for t, kind, frag, path in steps:
            if can_login and (kind == 4 or rnd() < _LOGIN_PER_STEP):  # 4: checkout
                can_login, logged_in, ctx = False, True, ctx_in  # logged in for good
            url = f'"{base}{path}"'
            if (t - origin) // window != key:
                key = (t - origin) // window
                bucket = buckets.setdefault(key, [])
            bucket.append((t, kind, ctx, utm, frag, url, ref))
            ref = url
            utm = utm_rest
        return steps[-1][0], logged_in

    def _render(self, items: list[_Item], t1: int) -> tuple[list[str], bytearray]:
        """One window's lines, in delivery order, and one mask byte per line.

        The hot loop of the producer: locals only, one f-string per event."""
        lines: list[str] = []
        masks = bytearray()
        line_out, mask_out = lines.append, masks.append
        rnd = self.rng.random
        # Event ids: 128 random bits each, drawn for the whole window at once.
        ids = self.rng.getrandbits(128 * len(items) or 1).to_bytes(16 * len(items) or 16).hex()
        at = 0
        iso = self.iso_cache
        if len(iso) > 100_000:
            iso.clear()
        epoch_r, case_r, rare_r = self.epoch_r, self.case_r, self.rare_r
        case_variants, types, us, d3 = self.case_variants, _KIND_TYPE, _US, _DIGITS3
        copies: list[tuple[int, str, int]] = []  # heap: re-deliveries due in this window
        for t, kind, ctx, utm, frag, url, ref in items:
            while copies and copies[0][0] <= t:
                _, copy, copy_mask = heapq.heappop(copies)
                line_out(copy)
                mask_out(copy_mask)
            if kind == _RENDERED:  # a re-delivered copy: (t, _RENDERED, line, mask, ...)
                line_out(ctx)
                mask_out(utm)  # type: ignore[arg-type]
                continue
            mask = 0
            u = rnd()
            if u < rare_r:
                ts, mask = self._rare_timestamp(u, t)
            else:
                ts = t
            u = rnd()
            if u < epoch_r:
                ts_txt = self._epoch_text(ts, u / epoch_r)
                mask |= _M_EPOCH
            else:
                sec = ts // us
                prefix = iso.get(sec)
                if prefix is None:
                    prefix = iso[sec] = time.strftime('"%Y-%m-%dT%H:%M:%S.', time.gmtime(sec))
                ts_txt = f'{prefix}{d3[ts // 1000 % 1000]}{d3[ts % 1000]}Z"'
            u = rnd()
            if u < case_r:
                variants = case_variants[kind]
                et = variants[int(u / case_r * len(variants))]
                mask |= _M_CASE
            else:
                et = types[kind]
            line = (f'{{"event_id":"{ids[at:at + 32]}","event_type":"{et}",'
                    f'"event_timestamp":{ts_txt},{ctx}{utm}{frag},'
                    f'"page_url":{url},"referrer":{ref}}}')
            at += 32
            if mask > _M_CASE | _M_EPOCH:
                line, mask = self._rare_line(mask, t, ts, line, ts_txt, t1, copies)
            line_out(line)
            mask_out(mask)
        for _, copy, copy_mask in sorted(copies):
            line_out(copy)
            mask_out(copy_mask)
        return lines, masks

    # ---- rare paths ------------------------------------------------------------------------

    def _rare_timestamp(self, u: float, t: int) -> tuple[int, int]:
        """Pick the rare defect for this event: (timestamp to write, mask)."""
        if u < self.dup_r:
            return t, _M_DUP
        if u < self.late_r:
            # Delivered now, stamped in the past: an app that was offline, a queue replayed.
            return t - self.late_delay[int(self.rng.random() * _TABLE)], _M_LATE
        if self.oversize_ok and self.rng.random() < _OVERSIZE_SHARE:
            index = 0
        else:  # the other reasons, evenly
            index = 1 + int(self.rng.random() * (len(_REASONS) - 1))
        return t, (index + 1) << _M_REASON_SHIFT

    def _epoch_text(self, ts: int, u: float) -> str:
        """Epoch variants: int seconds, float seconds (ms or µs digits), int milliseconds."""
        if u < 0.35:
            return str(ts // _US)
        if u < 0.5:
            return f"{ts // _US}.{ts % _US // 1000:03d}"
        if u < 0.65:
            return f"{ts // _US}.{ts % _US:06d}"
        return str(ts // 1000)

    def _rare_line(self, mask: int, t: int, ts: int, line: str, ts_txt: str, t1: int,
                   copies: list[tuple[int, str, int]]) -> tuple[str, int]:
        """(line, mask) to deliver now for an event with a rare defect."""
        if mask & _M_LATE:
            return line, mask
        if mask & _M_DUP:
            # The original goes out now; the copy after a client retry delay: later in this
            # window (``copies``) or in a later one.
            retry = t + int(self.rng.expovariate(1 / _RETRY_MEAN_SECONDS) * _US) + 1
            copy, copy_mask = self._duplicate(line, ts, ts_txt, mask)
            if retry < t1:
                heapq.heappush(copies, (retry, copy, copy_mask))
            else:
                self.buckets.setdefault((retry - self.start_us) // self.window_us, []).append(
                    (retry, _RENDERED, copy, copy_mask, "", "", ""))  # type: ignore[arg-type]
            return line, mask & ~_M_DUP
        reason = _REASONS[(mask >> _M_REASON_SHIFT) - 1]
        return (_malformed(reason, line, ts, self.rng, self.config.max_message_bytes),
                mask & ~(_M_EPOCH | _M_CASE))

    def _duplicate(self, line: str, ts: int, ts_txt: str, mask: int) -> tuple[str, int]:
        """A re-delivery: usually byte-identical; sometimes the SDK re-serialised it (same
        ``event_id``, other payload). Returns the line and its mask."""
        u = self.rng.random()
        if u < 0.7:
            return line, mask
        stamp = f'"event_timestamp":{ts_txt},'
        if u < 0.8:  # same instant, other encoding
            if mask & _M_EPOCH:
                return line.replace(stamp, f'"event_timestamp":"{_iso(ts)}",', 1), mask & ~_M_EPOCH
            return line.replace(stamp, f'"event_timestamp":{ts / _US!r},', 1), mask | _M_EPOCH
        if u < 0.9:  # re-stamped on retry, a little later
            later = _iso(ts + self.rng.randrange(1000, 3_000_000))
            return line.replace(stamp, f'"event_timestamp":"{later}",', 1), mask & ~_M_EPOCH
        return line[:-1] + ',"retry_count":1}', mask  # the retry says so

    # ---- the stream ------------------------------------------------------------------------

    def windows(self) -> Iterator[_Piece]:
        """This shard's windows of event time, forever, each sorted by delivery time."""
        # Windows start at the start (no session has an event before it), so that a paced
        # run of a whole number of windows sends whole windows: --rate R --duration 10 then
        # sends 10 s of event time, not what is left of it once cut to a fixed grid.
        t0 = self.start_us
        self._simulate(t0)
        while True:
            t1 = t0 + self.window_us
            lines, masks = self._render(self._window(t0, t1), t1)
            yield _Piece("\n".join(lines).encode("ascii"), bytes(masks), t1)
            t0 = t1


@dataclass(frozen=True)
class _Piece:
    """One shard's window: lines joined by newlines, one mask byte per line, window end."""

    blob: bytes
    masks: bytes
    end_us: int

    def head(self, n: int) -> _Piece:
        """The first ``n`` lines."""
        if n >= len(self.masks):
            return self
        blob = b"\n".join(self.blob.split(b"\n", n)[:n]) if n else b""
        return _Piece(blob, self.masks[:n], self.end_us)


def _count(masks: bytes) -> DirtyCounts:
    return _count_tally(Counter(masks))


def _count_tally(tally: Counter[int]) -> DirtyCounts:
    epoch = case = dup = late = bad = 0
    reasons: Counter[str] = Counter()
    for mask, n in tally.items():
        if not mask:
            continue
        epoch += n if mask & _M_EPOCH else 0
        case += n if mask & _M_CASE else 0
        dup += n if mask & _M_DUP else 0
        late += n if mask & _M_LATE else 0
        if mask >> _M_REASON_SHIFT:
            bad += n
            reasons[_REASONS[(mask >> _M_REASON_SHIFT) - 1].value] += n
    return DirtyCounts(epoch, case, dup, late, bad, dict(sorted(reasons.items())))


_MAX_CART: Final = 40


@functools.cache
def _session_means() -> tuple[float, float]:
    """(events, think steps after the landing) per session, on average, of the state machine.

    Computed exactly, not sampled: a sampled mean is off by its sampling error (1.4% with the
    10,000 sessions this once drew) and so is every rate. The expected events and steps still
    to come after a step depend only on its kind and the number of cart lines left, so they
    are the fixed point of one step of the machine, found by iteration (a contraction: every
    step exits with probability ≥ 0.14; carts beyond _MAX_CART lines, never reached in
    practice, are counted as that many)."""
    events = [[0.0] * (_MAX_CART + 1) for _ in range(5)]
    steps = [[0.0] * (_MAX_CART + 1) for _ in range(5)]
    moves = [[[(b - a, k) for a, b, k in zip([0.0, *bounds[:-1]], bounds, kinds, strict=True)
               if k != _E]
              for bounds, kinds in _NEXT[kind]] for kind in range(5)]
    for _ in range(1000):
        change = 0.0
        for kind in range(5):
            for n in range(_MAX_CART + 1):
                e = s = 0.0
                for p, k in moves[kind][1 if n else 0]:
                    left = (min(n + 1, _MAX_CART) if k == _ATC else n - 1 if k == _RFC
                            else 0 if k == _CO else n)
                    e += p * ((n if k == _CO else 1) + events[k][left])
                    s += p * (1 + steps[k][left])
                change = max(change, abs(e - events[kind][n]))
                events[kind][n], steps[kind][n] = e, s
        if change < 1e-12:
            break

    def after_landing(table: list[list[float]]) -> float:
        go_on = 1.0 - _BOUNCE_RATIO
        return go_on * (_LANDING_PRODUCT_RATIO * table[_PRV][0]
                        + (1.0 - _LANDING_PRODUCT_RATIO) * table[_PV][0])

    return 1.0 + after_landing(events), after_landing(steps)


def _mean_events_per_session() -> float:
    """Mean events per session, so that the arrival rate of sessions yields the asked-for
    event rate."""
    return _session_means()[0]


def _mean_think_steps_per_session() -> float:
    """Mean steps after the landing per session (each after a think time): the rate at
    which a session in progress can be caught in a think time (see _Generator._resume)."""
    return _session_means()[1]


# --------------------------------------------------------------------------------------------
# Malformed lines: one per rejection reason of spec §2, as real clients produce them
# --------------------------------------------------------------------------------------------

# ASCII only, like every generated line: byte length = character count, and no encoding cost.
_DUMPS: Final = json.JSONEncoder(separators=(",", ":")).encode


def _set(obj: dict[str, Any], name: str, value: Any) -> str:
    """``obj`` with ``name`` set to ``value`` (``...`` = removed), as one compact JSON line."""
    if value is ...:
        obj.pop(name, None)
    else:
        obj[name] = value
    return _DUMPS(obj)


def _oversize(obj: dict[str, Any], line: str, ts: int, pick: int, rng: random.Random,
              max_message_bytes: int) -> str:
    # A client that attached a whole state dump: valid JSON, too long to be an event, and
    # still small enough to travel in one message, so that the converter rejects it.
    size = rng.randrange(_OVERSIZE_MIN_BYTES, min(_OVERSIZE_MAX_BYTES, max_message_bytes))
    obj["debug_state"] = ""
    pad = size - len(_DUMPS(obj).encode("utf-8"))
    return _set(obj, "debug_state", (_BASE64_FILLER * (pad // len(_BASE64_FILLER) + 1))[:pad])


def _malformed_json(obj: dict[str, Any], line: str, ts: int, pick: int, rng: random.Random,
                    max_message_bytes: int) -> str:
    if pick < 3:  # cut off mid-write: a proper prefix of an object is never valid JSON
        return line[: rng.randrange(1, len(line) - 1)]
    if pick == 3:
        return line[:-1] + ",}"  # trailing comma
    if pick == 4:  # a Python dict printed instead of serialised
        return f"{{'event_id': '{obj['event_id']}', 'event_type': 'page_view'}}"
    return line.replace('"event_type"', "event_type", 1)  # unquoted key


def _not_an_object(obj: dict[str, Any], line: str, ts: int, pick: int, rng: random.Random,
                   max_message_bytes: int) -> str:
    # A batch sent as an array, a double-encoded event, bare scalars.
    return (f"[{line}]", _DUMPS(line), "null", "42", '"page_view"', "[]")[pick]


def _missing_event_id(obj: dict[str, Any], line: str, ts: int, pick: int, rng: random.Random,
                      max_message_bytes: int) -> str:
    return _set(obj, "event_id", (..., ..., "", None, 1234567, ["a"])[pick])


def _bad_timestamp(obj: dict[str, Any], line: str, ts: int, pick: int, rng: random.Random,
                   max_message_bytes: int) -> str:
    values = (..., None, "", "yesterday", "2024-13-45T25:61:00Z", "2024-05-01")  # no time part
    return _set(obj, "event_timestamp", values[pick])


def _timestamp_out_of_range(obj: dict[str, Any], line: str, ts: int, pick: int,
                            rng: random.Random, max_message_bytes: int) -> str:
    future = ts + rng.randrange(7 * 86_400, 60 * 86_400) * _US  # a phone clock set wrong
    values = ("1999-12-31T23:59:59.999999Z", 0, 946_684_799, 631_152_000_000,  # 1990, in ms
              _iso(future), "2099-01-01T00:00:00Z")
    return _set(obj, "event_timestamp", values[pick])


def _unknown_event_type(obj: dict[str, Any], line: str, ts: int, pick: int,
                        rng: random.Random, max_message_bytes: int) -> str:
    return _set(obj, "event_type", (..., "purchase", "login", "page-view", "pageview", "")[pick])


def _no_identity(obj: dict[str, Any], line: str, ts: int, pick: int, rng: random.Random,
                 max_message_bytes: int) -> str:
    obj = json.loads(_set(obj, "anonymous_id", (..., ..., "", None, "", None)[pick]))
    return _set(obj, "user_id", (..., ..., None, "", None, "")[pick])


def _invalid_field(obj: dict[str, Any], line: str, ts: int, pick: int, rng: random.Random,
                   max_message_bytes: int) -> str:
    # The ids stay valid (else the reason would be no_identity); another field has a bad type.
    if pick < 3 or obj.get("quantity") is not None:
        return _set(obj, "quantity", (0, -1, "2", 1.5, True, 0)[pick])
    name, value = (("user_agent", 12345), ("page_url", {"path": "/"}),
                   ("platform", ["web"]))[pick - 3]
    return _set(obj, name, value)


_BASE64_FILLER: Final = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
_MALFORMERS: Final[dict[RejectReason, Callable[..., str]]] = {
    RejectReason.OVERSIZE: _oversize,
    RejectReason.MALFORMED_JSON: _malformed_json,
    RejectReason.NOT_AN_OBJECT: _not_an_object,
    RejectReason.MISSING_EVENT_ID: _missing_event_id,
    RejectReason.BAD_TIMESTAMP: _bad_timestamp,
    RejectReason.TIMESTAMP_OUT_OF_RANGE: _timestamp_out_of_range,
    RejectReason.UNKNOWN_EVENT_TYPE: _unknown_event_type,
    RejectReason.NO_IDENTITY: _no_identity,
    RejectReason.INVALID_FIELD: _invalid_field,
}
_VARIANTS: Final = 6  # each malformer has six variants, picked uniformly


def _malformed(reason: RejectReason, line: str, ts: int, rng: random.Random,
               max_message_bytes: int) -> str:
    """Turn a valid event line into one whose first applicable reason (spec §2) is ``reason``.

    Each variant keeps valid everything that a reason *earlier* in the precedence list checks,
    so the reason recorded downstream is exactly ``reason``.
    """
    obj: dict[str, Any] = json.loads(line)
    pick = rng.randrange(_VARIANTS)
    return _MALFORMERS[reason](obj, line, ts, pick, rng, max_message_bytes)


# --------------------------------------------------------------------------------------------
# Public API: lines, messages, the whole run
# --------------------------------------------------------------------------------------------


def _pieces(config: ProducerConfig, seed: int, start_us: int) -> Iterator[_Piece]:
    """The canonical stream in this process: window by window, shard by shard."""
    catalog = load_catalog(config.seeds_dir)
    shards = [_Generator(config, seed, start_us, k, catalog).windows() for k in range(_SHARDS)]
    while True:
        for shard in shards:
            yield next(shard)


_FRAME: Final = struct.Struct("<qII")  # window end µs, blob bytes, mask bytes
_PREFETCH_PIECES: Final = 8  # per run, ~2 MB each at the default rate


def _worker_main() -> None:
    """A shard process (``python -c``): reads its job pickled on stdin, writes frames of
    windows on stdout until the parent hangs up. A plain subprocess rather than
    ``multiprocessing`` so that callers need no ``if __name__ == "__main__"`` guard and no
    threaded parent is ever forked."""
    # Ctrl-C reaches the whole process group; the parent decides when to stop, then hangs up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config, seed, start_us, shard = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    try:
        for piece in _Generator(config, seed, start_us, shard).windows():
            out.write(_FRAME.pack(piece.end_us, len(piece.blob), len(piece.masks)))
            out.write(piece.blob)
            out.write(piece.masks)
            out.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the producer has what it needs, or is stopping
    os._exit(0)  # skip the final flush to a closed pipe


class _ParallelPieces:
    """The canonical stream from ``_SHARDS`` child processes, read in the canonical order.

    Reading shard by shard, window by window, keeps the stream byte-identical to
    :func:`_pieces`. A reader thread drains the pipes into a bounded buffer, so the children
    keep generating while the caller waits on the queue's disk writes (the GIL is released
    during both), and memory stays bounded."""

    def __init__(self, config: ProducerConfig, seed: int, start_us: int) -> None:
        load_catalog(config.seeds_dir)  # fail here, clearly, rather than in a child
        self.procs: list[subprocess.Popen[bytes]] = []
        for shard in range(_SHARDS):
            proc = subprocess.Popen(
                [sys.executable, "-c", "from rtdp.producer import _worker_main; _worker_main()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )
            assert proc.stdin is not None
            proc.stdin.write(pickle.dumps((config, seed, start_us, shard)))
            proc.stdin.close()
            self.procs.append(proc)
        self.buffer: queue_module.Queue[_Piece | BaseException] = queue_module.Queue(
            _PREFETCH_PIECES)
        self.closing = threading.Event()
        self.reader = threading.Thread(target=self._read, name="rtdp-produce-reader",
                                       daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            while not self.closing.is_set():
                for shard, proc in enumerate(self.procs):
                    assert proc.stdout is not None
                    read = proc.stdout.read
                    header = read(_FRAME.size)
                    if len(header) < _FRAME.size:
                        raise RtdpError(f"producer shard {shard} exited with {proc.wait()}")
                    end_us, blob_len, masks_len = _FRAME.unpack(header)
                    self._put(_Piece(read(blob_len), read(masks_len), end_us))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def _put(self, item: _Piece | BaseException) -> None:
        while not self.closing.is_set():
            try:
                self.buffer.put(item, timeout=0.1)
                return
            except queue_module.Full:
                continue

    def __iter__(self) -> Iterator[_Piece]:
        while True:
            item = self.buffer.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.closing.set()
        for proc in self.procs:
            proc.terminate()  # our own children, whose output is no longer wanted
        self.reader.join(timeout=10)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


def generate_chunks(config: ProducerConfig, *, seed: int | None = None,
                    start: datetime | None = None) -> Iterator[Chunk]:
    """The stream as chunks (one per window of event time) with their dirty counts.

    Bounded by ``config.events`` if set. Deterministic for a ``seed`` and a ``start``
    (defaults: ``resolve_seed``/``resolve_start`` of the config)."""
    seed = resolve_seed(config) if seed is None else seed
    start = start or resolve_start(config)
    left = config.events
    pieces = _pieces(config, seed, _epoch_us(start))
    while left is None or left > 0:
        window = [next(pieces) for _ in range(_SHARDS)]
        if left is not None:
            cut = []
            for piece in window:
                cut.append(piece.head(left))
                left -= len(cut[-1].masks)
            window = cut
        lines = [line for piece in window if piece.masks for line in piece.blob.split(b"\n")]
        dirty = _count(b"".join(piece.masks for piece in window))
        yield Chunk(lines, dirty, _dt(window[-1].end_us))


def generate_lines(config: ProducerConfig) -> Iterator[list[bytes]]:
    """Lines (no newline) in delivery order, in chunks; deterministic for a seed and a start.

    Unbounded unless ``config.events`` is set. With ``seed`` or ``start_time`` unset, a random
    seed and the current time are used.
    """
    for chunk in generate_chunks(config):
        yield chunk.lines


def pack_messages(lines: Sequence[bytes], max_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Greedy NDJSON packing: (body, line count), each body ≤ ``max_bytes``, order kept.

    Lines must be non-empty and hold no newline; one longer than ``max_bytes`` raises
    :class:`MessageTooLargeError` (it could not travel)."""
    packer = _Packer(max_bytes)
    if lines:
        yield from packer.add(b"\n".join(lines))
    yield from packer.flush()


class _Packer:
    """Cuts newline-joined blobs into bodies ≤ ``max_bytes`` at line ends, carrying the
    unfinished body over to the next blob. Works in C (``rfind``, ``count``, slices): no
    Python step per line."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.carry = b""

    def add(self, blob: bytes) -> list[tuple[bytes, int]]:
        limit, pos = self.max_bytes, 0
        out: list[tuple[bytes, int]] = []
        if not blob:
            return out
        if self.carry:
            room = limit - len(self.carry) - 1
            if len(blob) <= room:
                self.carry += b"\n" + blob
                return out
            cut = blob.rfind(b"\n", 0, room + 1)
            if cut >= 0:
                out.append(self._body(self.carry + b"\n" + blob[:cut]))
                pos = cut + 1
            else:
                out.append(self._body(self.carry))
        while len(blob) - pos > limit:
            cut = blob.rfind(b"\n", pos, pos + limit + 1)
            if cut < 0:
                end = blob.find(b"\n", pos)
                size = (len(blob) if end < 0 else end) - pos
                raise MessageTooLargeError(
                    f"a line of {size} bytes cannot fit a {limit}-byte message"
                )
            out.append(self._body(blob[pos:cut]))
            pos = cut + 1
        self.carry = blob[pos:] if pos else blob
        return out

    def flush(self) -> list[tuple[bytes, int]]:
        out = [self._body(self.carry)] if self.carry else []
        self.carry = b""
        return out

    @staticmethod
    def _body(body: bytes) -> tuple[bytes, int]:
        return body, body.count(b"\n") + 1


class _Sender:
    """Batches bodies into ``send_batch`` calls and records each accepted batch."""

    def __init__(self, queue: Queue, ledger: Ledger, batch_messages: int) -> None:
        self.queue, self.ledger, self.batch = queue, ledger, batch_messages
        self.pending: list[tuple[bytes, int]] = []
        self.lines = self.messages = self.bytes = 0

    def add(self, bodies: list[tuple[bytes, int]]) -> None:
        self.pending.extend(bodies)
        while len(self.pending) >= self.batch:
            self._send(self.pending[: self.batch])
            del self.pending[: self.batch]

    def flush(self) -> None:
        if self.pending:
            self._send(self.pending)
            self.pending = []

    def _send(self, batch: list[tuple[bytes, int]]) -> None:
        bodies = [body for body, _ in batch]
        attrs = [{LINE_COUNT_ATTRIBUTE: str(count)} for _, count in batch]
        self.queue.send_batch(bodies, attrs)  # raises: nothing recorded, nothing lost silently
        lines = sum(count for _, count in batch)
        self.ledger.record(LEDGER_SOURCE, lines)
        self.lines += lines
        self.messages += len(batch)
        self.bytes += sum(len(b) for b in bodies)


def default_workers(config: ProducerConfig) -> int:
    """Shard processes worth starting: for fast runs big enough to repay the start-up, and
    for paced rates one process cannot keep up with (it sustains ~30k events/s on a busy
    two-core box, less in the first minute, when the sessions in progress at the start
    take their next steps)."""
    if config.rate > 0:
        big = config.rate >= _PACED_SHARDS_RATE
    else:
        big = config.events is None or config.events >= 200_000
    return _SHARDS if big and (os.cpu_count() or 1) >= 2 else 1


def produce(
    queue: Queue,
    ledger: Ledger,
    config: ProducerConfig,
    on_progress: Callable[[ProduceProgress], None] | None = None,
    stop: threading.Event | None = None,
    workers: int | None = None,
) -> ProduceSummary:
    """Generate, pack, send and record until ``events``, ``duration_seconds`` or ``stop``.

    Every line is counted in the ledger only after the queue accepted its message. On stop,
    what was generated so far is flushed, so the summary, the queue and the ledger agree.
    ``workers`` > 1 simulates the shards in child processes (default: ``default_workers``);
    the lines sent are the same either way.
    """
    seed = resolve_seed(config)
    start = resolve_start(config)
    max_bytes = min(config.max_message_bytes, queue.max_message_bytes)
    config = replace(config, max_message_bytes=max_bytes)  # oversize lines must still travel
    workers = default_workers(config) if workers is None else workers
    parallel = _ParallelPieces(config, seed, _epoch_us(start)) if workers > 1 else None
    pieces = iter(parallel) if parallel else _pieces(config, seed, _epoch_us(start))
    try:
        return _run(queue, ledger, config, seed, start, pieces, on_progress,
                    stop or threading.Event())
    finally:
        if parallel:
            parallel.close()


def _deadlines(config: ProducerConfig, start: datetime,
               began: float) -> tuple[float | None, int]:
    """(monotonic deadline, end of the last window to send in µs of event time).

    Paced with a duration, the run sends the event time [start, start + duration), window by
    window (windows start at the start), and ends once it has: the window ending right at
    the deadline must not be lost to a wait that overshoots it by a millisecond, so the wall
    clock deadline only stops a run that fell behind, a window later."""
    if config.duration_seconds is None:
        return None, _NEVER
    if config.rate > 0:
        return (began + config.duration_seconds + _REALTIME_WINDOW_SECONDS,
                _epoch_us(start) + round(config.duration_seconds * _US))
    return began + config.duration_seconds, _NEVER


def _run(queue: Queue, ledger: Ledger, config: ProducerConfig, seed: int, start: datetime,
         pieces: Iterator[_Piece], on_progress: Callable[[ProduceProgress], None] | None,
         stop: threading.Event) -> ProduceSummary:
    packer = _Packer(config.max_message_bytes)
    sender = _Sender(queue, ledger, config.batch_messages)
    tally: Counter[int] = Counter()
    paced = config.rate > 0
    guard_ahead = config.start_time is None and not paced
    began = time.monotonic()
    deadline, last_end_us = _deadlines(config, start, began)
    left = config.events
    stopped = False
    while left is None or left > 0:
        piece = next(pieces)
        if piece.end_us > last_end_us:  # paced: the rest is a partial window, not sent
            rest = began + (config.duration_seconds or 0.0) - time.monotonic()
            stopped = rest > 0 and stop.wait(rest)  # the run lasts its duration
            break
        if paced or guard_ahead:
            # Paced: a window is sent once the wall clock has passed its end. Fast with a
            # default start: event time never runs more than an hour ahead of the wall clock.
            lead = 0.0 if paced else _MAX_AHEAD_SECONDS
            wait = piece.end_us / _US - lead - time.time()
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            if wait > 0 and stop.wait(wait):
                stopped = True
                break
        if deadline is not None and time.monotonic() >= deadline:
            break
        if left is not None:
            piece = piece.head(left)
            left -= len(piece.masks)
        sender.add(packer.add(piece.blob))
        if paced:
            # latency over fullness: send what the window holds, now
            sender.add(packer.flush())
            sender.flush()
        tally.update(piece.masks)
        if on_progress is not None:
            on_progress(ProduceProgress(sender.lines, sender.messages, sender.bytes,
                                        time.monotonic() - began))
        if stop.is_set():
            stopped = True
            break
    sender.add(packer.flush())
    sender.flush()
    seconds = time.monotonic() - began
    if on_progress is not None:
        on_progress(ProduceProgress(sender.lines, sender.messages, sender.bytes, seconds))
    return ProduceSummary(
        seed=seed,
        start_time=_iso(_epoch_us(start)),
        events=sender.lines,
        messages=sender.messages,
        bytes=sender.bytes,
        seconds=seconds,
        dirty=_count_tally(tally),
        stopped=stopped,
    )
