"""The event contract (shared/spec §1–§4) as types: event types, rejection reasons, schemas.

The lake and warehouse schemas are fixed here, once, so every file has the same columns and
types whatever its batch held (no all-null columns typed ``null``, no ints turning into floats).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import pyarrow as pa


class EventType(StrEnum):
    PAGE_VIEW = "page_view"
    PRODUCT_VIEW = "product_view"
    ADD_TO_CART = "add_to_cart"
    REMOVE_FROM_CART = "remove_from_cart"
    CHECKOUT = "checkout"


class RejectReason(StrEnum):
    """Why a line is quarantined. Declaration order is precedence order (spec §2)."""

    OVERSIZE = "oversize"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_EVENT_ID = "missing_event_id"
    BAD_TIMESTAMP = "bad_timestamp"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    NO_IDENTITY = "no_identity"
    INVALID_FIELD = "invalid_field"


class Stage(StrEnum):
    """Where a line was rejected."""

    INGEST = "ingest"  # could not travel through the queue (e.g. invalid UTF-8)
    CONVERT = "convert"


MAX_LINE_BYTES: Final = 64 * 1024
MAX_EVENT_ID_CHARS: Final = 128
# An integer epoch at or above this is milliseconds (spec §1).
EPOCH_MILLIS_THRESHOLD: Final = 100_000_000_000
MIN_EVENT_TIME_ISO: Final = "2000-01-01T00:00:00"
MAX_FUTURE_SECONDS: Final = 86_400

# Optional fields that must be a string or null when present (spec §2, reason 9).
STRING_FIELDS: Final = (
    "anonymous_id",
    "user_id",
    "product_id",
    "order_id",
    "page_url",
    "referrer",
    "platform",
    "ip_address",
    "user_agent",
    "utm_source",
    "utm_medium",
    "utm_campaign",
)
# Optional id fields where an empty string counts as missing (spec §4).
ID_FIELDS: Final = ("anonymous_id", "user_id", "product_id")

_TS = pa.timestamp("us")  # UTC, stored without a zone so every engine reads the same instant

# One lake row = one valid event. Partition column event_date lives in the path
# (event_date=YYYY-MM-DD/) and is also stored, so a file read alone is complete.
LAKE_EVENT_SCHEMA: Final = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("event_timestamp", _TS, nullable=False),
        pa.field("event_date", pa.date32(), nullable=False),
        *(pa.field(name, pa.string()) for name in STRING_FIELDS[:3]),
        pa.field("quantity", pa.int64()),
        *(pa.field(name, pa.string()) for name in STRING_FIELDS[3:]),
        pa.field("raw_json", pa.string(), nullable=False),
        pa.field("message_id", pa.string(), nullable=False),
        pa.field("line_number", pa.int32(), nullable=False),
        pa.field("received_at", _TS, nullable=False),
    ]
)

# One quarantine row = one rejected line, with the text as received.
LAKE_QUARANTINE_SCHEMA: Final = pa.schema(
    [
        pa.field("raw_line", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("message_id", pa.string(), nullable=False),
        pa.field("line_number", pa.int32(), nullable=False),
        pa.field("seen_at", _TS, nullable=False),
    ]
)
