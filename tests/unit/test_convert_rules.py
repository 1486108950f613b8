"""Spec §2 (what is rejected, first reason wins) and §4 (normalization) through the real
``BatchConverter``: real DuckDB, real Arrow tables, ``now`` fixed so nothing depends on the clock.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from rtdp.convert import BatchConverter, BatchResult
from rtdp.events import (
    LAKE_EVENT_SCHEMA,
    LAKE_QUARANTINE_SCHEMA,
    MAX_LINE_BYTES,
    STRING_FIELDS,
    EventType,
    RejectReason,
    Stage,
)
from rtdp.queue import Message

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
NOW_NAIVE = NOW.replace(tzinfo=None)
DROP = object()  # a field value meaning "leave the field out"

R = RejectReason
BASE: dict[str, Any] = {
    "event_id": "e-1",
    "event_type": "page_view",
    "event_timestamp": "2026-11-27T10:00:00Z",
    "anonymous_id": "anon-1",
}


def line(**changes: Any) -> str:
    """A JSON line: ``BASE`` with ``changes`` applied (``DROP`` removes a field)."""
    event = dict(BASE)
    for key, value in changes.items():
        if value is DROP:
            event.pop(key, None)
        else:
            event[key] = value
    return json.dumps(event)


def padded(size: int) -> str:
    """A valid event line of exactly ``size`` bytes."""
    head = line(pad="")
    out = line(pad="x" * (size - len(head.encode())))
    assert len(out.encode()) == size
    return out


def message(lines: Sequence[str | bytes], message_id: str = "m-1") -> Message:
    body = b"\n".join(x.encode() if isinstance(x, str) else x for x in lines)
    return Message(message_id=message_id, receipt="r", body=body, receive_count=1, sent_at=0.0)


@pytest.fixture(scope="module")
def converter() -> Iterator[BatchConverter]:
    c = BatchConverter()
    yield c
    c.close()


def convert(converter: BatchConverter, *messages: Message) -> BatchResult:
    return converter.convert(list(messages), now=NOW)


def one_rejection(converter: BatchConverter, raw: str | bytes) -> dict[str, Any]:
    result = convert(converter, message([raw]))
    assert result.events.num_rows == 0, result.events.to_pylist()
    (row,) = result.quarantine.to_pylist()
    return row


def one_event(converter: BatchConverter, raw: str) -> dict[str, Any]:
    result = convert(converter, message([raw]))
    assert result.quarantine.num_rows == 0, result.quarantine.to_pylist()
    (row,) = result.events.to_pylist()
    return row




# --- §2: one table, one case per input; several inputs per reason --------------------------

REJECTIONS = [
    # 1. oversize: longer than 64 KiB, whatever else is wrong with it
    pytest.param(padded(MAX_LINE_BYTES + 1), R.OVERSIZE, id="oversize-valid-event"),
    pytest.param("{" + "x" * MAX_LINE_BYTES, R.OVERSIZE, id="oversize-and-malformed"),
    pytest.param("[" + "1," * 40_000 + "1]", R.OVERSIZE, id="oversize-array"),
    pytest.param(b"\xff" * (MAX_LINE_BYTES + 1), R.OVERSIZE, id="oversize-invalid-utf8"),
    # 2. malformed_json
    pytest.param('{"event_id": "e-1", "event_type"', R.MALFORMED_JSON, id="truncated"),
    pytest.param(line()[:-1], R.MALFORMED_JSON, id="truncated-missing-brace"),
    pytest.param(line() + " trailing", R.MALFORMED_JSON, id="trailing-garbage"),
    pytest.param(line() + line(), R.MALFORMED_JSON, id="two-objects-on-one-line"),
    pytest.param(b'{"event_id": "e-\xff\xfe"}', R.MALFORMED_JSON, id="invalid-utf8"),
    pytest.param(json.dumps(BASE | {"event_id": "caf\u00e9"}, ensure_ascii=False)
                 .encode("latin-1"), R.MALFORMED_JSON, id="latin1-bytes"),
    pytest.param("{'event_id': 'e-1'}", R.MALFORMED_JSON, id="single-quotes"),
    pytest.param(line()[:-1] + ', "note": "a\tb"}', R.MALFORMED_JSON,
                 id="raw-control-char-in-string"),
    pytest.param("undefined", R.MALFORMED_JSON, id="bare-word"),
    pytest.param(line()[:-1] + ", }", R.MALFORMED_JSON, id="trailing-comma"),
    pytest.param(line()[:-1] + ', "score": NaN}', R.MALFORMED_JSON, id="NaN"),
    pytest.param(line()[:-1] + ', "score": Infinity}', R.MALFORMED_JSON, id="Infinity"),
    pytest.param(b'{"event_id": "' + b"\xff" * 20_000 + b'"}', R.MALFORMED_JSON,
                 id="invalid-utf8-20kB"),
    # 3. not_an_object
    pytest.param("[1, 2]", R.NOT_AN_OBJECT, id="array"),
    pytest.param(json.dumps([BASE]), R.NOT_AN_OBJECT, id="array-of-event"),
    pytest.param('"page_view"', R.NOT_AN_OBJECT, id="string"),
    pytest.param("42", R.NOT_AN_OBJECT, id="number"),
    pytest.param("null", R.NOT_AN_OBJECT, id="null"),
    pytest.param(" null ", R.NOT_AN_OBJECT, id="null-padded"),
    pytest.param("true", R.NOT_AN_OBJECT, id="bool"),
    pytest.param("  [ ]", R.NOT_AN_OBJECT, id="indented-array"),
    # 4. missing_event_id
    pytest.param(line(event_id=DROP), R.MISSING_EVENT_ID, id="id-absent"),
    pytest.param(line(event_id=None), R.MISSING_EVENT_ID, id="id-null"),
    pytest.param(line(event_id=17), R.MISSING_EVENT_ID, id="id-number"),
    pytest.param(line(event_id=""), R.MISSING_EVENT_ID, id="id-empty"),
    pytest.param(line(event_id="a" * 129), R.MISSING_EVENT_ID, id="id-129-chars"),
    pytest.param(line(event_id="\u00e9" * 129), R.MISSING_EVENT_ID, id="id-129-2byte-chars"),
    pytest.param(line(event_id=["e-1"]), R.MISSING_EVENT_ID, id="id-array"),
    pytest.param(line(event_id=True), R.MISSING_EVENT_ID, id="id-bool"),
    # 5. bad_timestamp
    pytest.param(line(event_timestamp=DROP), R.BAD_TIMESTAMP, id="ts-absent"),
    pytest.param(line(event_timestamp=None), R.BAD_TIMESTAMP, id="ts-null"),
    pytest.param(line(event_timestamp=True), R.BAD_TIMESTAMP, id="ts-bool"),
    pytest.param(line(event_timestamp={"s": 1}), R.BAD_TIMESTAMP, id="ts-object"),
    pytest.param(line(event_timestamp=[1764237600]), R.BAD_TIMESTAMP, id="ts-array"),
    pytest.param(line(event_timestamp="2026-11-27 10:00:00"), R.BAD_TIMESTAMP,
                 id="ts-space-separator"),
    pytest.param(line(event_timestamp="yesterday"), R.BAD_TIMESTAMP, id="ts-word"),
    pytest.param(line(event_timestamp="2026-13-01T10:00:00Z"), R.BAD_TIMESTAMP, id="ts-month-13"),
    pytest.param(line(event_timestamp="2026-02-30T10:00:00Z"), R.BAD_TIMESTAMP, id="ts-feb-30"),
    pytest.param(line(event_timestamp="2026-11-27"), R.BAD_TIMESTAMP, id="ts-date-only"),
    pytest.param(line(event_timestamp=""), R.BAD_TIMESTAMP, id="ts-empty"),
    pytest.param(line(event_timestamp="1764237600"), R.BAD_TIMESTAMP, id="ts-epoch-as-string"),
    pytest.param(line(event_timestamp="2026-11-27T10:00:00+99:99"), R.BAD_TIMESTAMP,
                 id="ts-offset-99:99"),
    pytest.param(line(event_timestamp="2026-11-27T10:00:00+02:60"), R.BAD_TIMESTAMP,
                 id="ts-offset-minute-60"),
    # 6. timestamp_out_of_range
    pytest.param(line(event_timestamp="1999-12-31T23:59:59Z"), R.TIMESTAMP_OUT_OF_RANGE,
                 id="ts-1999"),
    pytest.param(line(event_timestamp="1999-12-31T23:59:59.999999Z"),
                 R.TIMESTAMP_OUT_OF_RANGE, id="ts-1us-before-2000"),
    pytest.param(line(event_timestamp="2000-01-01T01:00:00+02:00"), R.TIMESTAMP_OUT_OF_RANGE,
                 id="ts-2000-local-but-1999-utc"),
    pytest.param(line(event_timestamp=0), R.TIMESTAMP_OUT_OF_RANGE, id="ts-epoch-0"),
    pytest.param(line(event_timestamp=-5), R.TIMESTAMP_OUT_OF_RANGE, id="ts-negative"),
    pytest.param(line(event_timestamp=946_684_799), R.TIMESTAMP_OUT_OF_RANGE,
                 id="ts-epoch-1s-before-2000"),
    pytest.param(line(event_timestamp="2026-11-28T12:00:00.000001Z"),
                 R.TIMESTAMP_OUT_OF_RANGE, id="ts-now-plus-1day-1us"),
    pytest.param(line(event_timestamp=int((NOW + timedelta(days=2)).timestamp())),
                 R.TIMESTAMP_OUT_OF_RANGE, id="ts-epoch-now-plus-2days"),
    pytest.param(line(event_timestamp=int((NOW + timedelta(days=2)).timestamp() * 1000)),
                 R.TIMESTAMP_OUT_OF_RANGE, id="ts-epoch-ms-now-plus-2days"),
    pytest.param(line(event_timestamp=99_999_999_999), R.TIMESTAMP_OUT_OF_RANGE,
                 id="ts-just-below-ms-threshold-is-seconds"),
    pytest.param(line(event_timestamp=100_000_000_000), R.TIMESTAMP_OUT_OF_RANGE,
                 id="ts-ms-threshold-is-1973"),
    # 7. unknown_event_type
    pytest.param(line(event_type="click"), R.UNKNOWN_EVENT_TYPE, id="type-click"),
    pytest.param(line(event_type=5), R.UNKNOWN_EVENT_TYPE, id="type-number"),
    pytest.param(line(event_type=None), R.UNKNOWN_EVENT_TYPE, id="type-null"),
    pytest.param(line(event_type=DROP), R.UNKNOWN_EVENT_TYPE, id="type-absent"),
    pytest.param(line(event_type=""), R.UNKNOWN_EVENT_TYPE, id="type-empty"),
    pytest.param(line(event_type="page view"), R.UNKNOWN_EVENT_TYPE, id="type-inner-space"),
    pytest.param(line(event_type=["page_view"]), R.UNKNOWN_EVENT_TYPE, id="type-array"),
    # 8. no_identity
    pytest.param(line(anonymous_id=DROP), R.NO_IDENTITY, id="no-ids"),
    pytest.param(line(anonymous_id="", user_id=""), R.NO_IDENTITY, id="both-empty"),
    pytest.param(line(anonymous_id=None, user_id=None), R.NO_IDENTITY, id="both-null"),
    pytest.param(line(anonymous_id=5), R.NO_IDENTITY, id="anonymous-id-number"),
    pytest.param(line(anonymous_id=DROP, user_id=["u"]), R.NO_IDENTITY, id="user-id-array"),
    # 9. invalid_field
    pytest.param(line(quantity=0), R.INVALID_FIELD, id="quantity-0"),
    pytest.param(line(quantity=-1), R.INVALID_FIELD, id="quantity-negative"),
    pytest.param(line(quantity=1.5), R.INVALID_FIELD, id="quantity-fraction"),
    pytest.param(line(quantity="2"), R.INVALID_FIELD, id="quantity-string"),
    pytest.param(line(quantity=True), R.INVALID_FIELD, id="quantity-true"),
    pytest.param(line(quantity=[1]), R.INVALID_FIELD, id="quantity-array"),
    pytest.param(line(product_id=42), R.INVALID_FIELD, id="product-id-number"),
    pytest.param(line(order_id={"n": 1}), R.INVALID_FIELD, id="order-id-object"),
    pytest.param(line(page_url=True), R.INVALID_FIELD, id="page-url-bool"),
    pytest.param(line(utm_campaign=["a"]), R.INVALID_FIELD, id="utm-campaign-array"),
    pytest.param(line(user_id=7), R.INVALID_FIELD, id="user-id-number-with-anonymous-id"),
    pytest.param(line(user_id="u-1", anonymous_id=7), R.INVALID_FIELD,
                 id="anonymous-id-number-with-user-id"),
    # precedence: a line hitting several reasons records the first in spec order
    pytest.param(line(event_id=DROP, event_timestamp="yesterday"), R.MISSING_EVENT_ID,
                 id="first-of:id,timestamp"),
    pytest.param(line(event_id="", event_type="click", anonymous_id=DROP, quantity=0),
                 R.MISSING_EVENT_ID, id="first-of:id,type,identity,field"),
    pytest.param(line(event_timestamp=None, event_type="click", anonymous_id=DROP),
                 R.BAD_TIMESTAMP, id="first-of:timestamp,type,identity"),
    pytest.param(line(event_timestamp=0, event_type="click"), R.TIMESTAMP_OUT_OF_RANGE,
                 id="first-of:range,type"),
    pytest.param(line(event_type="click", anonymous_id=DROP, quantity=0),
                 R.UNKNOWN_EVENT_TYPE, id="first-of:type,identity,field"),
    pytest.param(line(anonymous_id="", product_id=5), R.NO_IDENTITY,
                 id="first-of:identity,field"),
    pytest.param(padded(MAX_LINE_BYTES + 10).replace('"e-1"', "1"), R.OVERSIZE,
                 id="first-of:oversize,id"),
    pytest.param("[" + line(), R.MALFORMED_JSON, id="first-of:malformed,not-object"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTIONS)
def test_rejection_reason(converter: BatchConverter, raw: str | bytes,
                          reason: RejectReason) -> None:
    row = one_rejection(converter, raw)
    assert row["reason"] == reason.value
    assert row["stage"] == Stage.CONVERT.value
    assert (row["message_id"], row["line_number"]) == ("m-1", 1)
    assert row["seen_at"] == NOW_NAIVE
    if isinstance(raw, str):
        assert row["raw_line"] == raw  # kept verbatim


def test_every_reason_is_covered_by_the_table() -> None:
    covered = {p.values[1] for p in REJECTIONS if not p.marks}
    assert covered == set(RejectReason)


def test_invalid_utf8_line_keeps_its_bytes_visible(converter: BatchConverter) -> None:
    row = one_rejection(converter, b'{"event_id": "e-\xff"}')
    assert row["raw_line"] == '{"event_id": "e-\\xff"}'
    assert row["detail"] == "invalid UTF-8"


def test_oversize_detail_counts_bytes(converter: BatchConverter) -> None:
    raw = padded(MAX_LINE_BYTES + 1)
    assert one_rejection(converter, raw)["detail"] == f"{MAX_LINE_BYTES + 1} bytes"


# --- boundaries that must be accepted ------------------------------------------------------

ACCEPTED = [
    pytest.param(padded(MAX_LINE_BYTES), id="exactly-64KiB"),
    pytest.param(line(event_id="a" * 128), id="id-128-chars"),
    pytest.param(line(event_id="\u00e9" * 128), id="id-128-2byte-chars"),
    pytest.param(line(event_id=" "), id="id-space-is-non-empty"),
    pytest.param(line(event_timestamp="2000-01-01T00:00:00Z"), id="ts-exactly-2000"),
    pytest.param(line(event_timestamp=946_684_800), id="ts-epoch-exactly-2000"),
    pytest.param(line(event_timestamp=946_684_800_000), id="ts-epoch-ms-exactly-2000"),
    pytest.param(line(event_timestamp="2026-11-28T12:00:00Z"), id="ts-exactly-now-plus-1day"),
    pytest.param(line(event_timestamp="2026-11-28T13:00:00+01:00"),
                 id="ts-now-plus-1day-in-offset"),
    pytest.param(line(anonymous_id=DROP, user_id="u-1"), id="user-id-only"),
    pytest.param(line(anonymous_id=None, user_id="u-1"), id="anonymous-id-null"),
    pytest.param(line(quantity=1), id="quantity-1"),
    pytest.param(line(quantity=None), id="quantity-null"),
    pytest.param(line(**dict.fromkeys(STRING_FIELDS[1:], None)), id="string-fields-null"),
    pytest.param(line(extra={"nested": [1, {"event_id": 5}]}, n=3.5), id="extra-fields"),
    pytest.param("  \t" + line() + " \r", id="surrounding-whitespace"),
    *(pytest.param(line(event_type=t.value), id=f"type-{t.value}") for t in EventType),
]


@pytest.mark.parametrize("raw", ACCEPTED)
def test_accepted(converter: BatchConverter, raw: str) -> None:
    row = one_event(converter, raw)
    assert row["raw_json"] == raw
    assert row["received_at"] == NOW_NAIVE


# --- §4 normalization ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_type", "expected"),
    [
        ("page_view", "page_view"),
        ("PAGE_VIEW", "page_view"),
        ("  Add_To_Cart  ", "add_to_cart"),
        ("Checkout ", "checkout"),
        pytest.param("\tPage_View\n", "page_view", id="tab-newline"),
    ],
)
def test_event_type_trimmed_and_lower_cased(converter: BatchConverter, raw_type: str,
                                            expected: str) -> None:
    assert one_event(converter, line(event_type=raw_type))["event_type"] == expected


def _utc(*args: int) -> datetime:
    return datetime(*args)  # naive = UTC in the lake schema


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-11-27T10:00:00Z", _utc(2026, 11, 27, 10, 0, 0)),
        ("2026-11-27T10:00:00+02:00", _utc(2026, 11, 27, 8, 0, 0)),
        ("2026-11-27T10:00:00-05:30", _utc(2026, 11, 27, 15, 30, 0)),
        ("2026-11-27T10:00:00+00:00", _utc(2026, 11, 27, 10, 0, 0)),
        ("2026-11-27T10:00:00", _utc(2026, 11, 27, 10, 0, 0)),  # no offset means UTC
        ("2026-11-27T10:00:00.1Z", _utc(2026, 11, 27, 10, 0, 0, 100_000)),
        ("2026-11-27T10:00:00.12Z", _utc(2026, 11, 27, 10, 0, 0, 120_000)),
        ("2026-11-27T10:00:00.123Z", _utc(2026, 11, 27, 10, 0, 0, 123_000)),
        ("2026-11-27T10:00:00.1234Z", _utc(2026, 11, 27, 10, 0, 0, 123_400)),
        ("2026-11-27T10:00:00.12345Z", _utc(2026, 11, 27, 10, 0, 0, 123_450)),
        ("2026-11-27T10:00:00.123456Z", _utc(2026, 11, 27, 10, 0, 0, 123_456)),
        ("2026-11-27T10:00:00.000001Z", _utc(2026, 11, 27, 10, 0, 0, 1)),
        ("2026-11-27T10:00:00.999999+01:00", _utc(2026, 11, 27, 9, 0, 0, 999_999)),
        ("2024-02-29T23:59:59.5Z", _utc(2024, 2, 29, 23, 59, 59, 500_000)),
        (1_764_237_600, _utc(2025, 11, 27, 10, 0, 0)),  # epoch seconds
        (1_764_237_600.5, _utc(2025, 11, 27, 10, 0, 0, 500_000)),
        (1_764_237_600.123456, _utc(2025, 11, 27, 10, 0, 0, 123_456)),
        (1_764_237_600.1234567, _utc(2025, 11, 27, 10, 0, 0, 123_457)),  # rounded
        (1_764_237_600_123, _utc(2025, 11, 27, 10, 0, 0, 123_000)),  # epoch milliseconds
        (100_000_000_000 + 946_684_800_000, _utc(2003, 3, 3, 9, 46, 40)),  # ≥ 1e11: ms
    ],
)
def test_timestamp_normalized_to_utc_microseconds(converter: BatchConverter,
                                                  timestamp: str | float,
                                                  expected: datetime) -> None:
    row = one_event(converter, line(event_timestamp=timestamp))
    assert row["event_timestamp"] == expected
    assert row["event_date"] == expected.date()


@pytest.mark.parametrize(
    ("timestamp", "event_date"),
    [
        ("2026-11-27T23:30:00-02:00", date(2026, 11, 28)),  # 01:30 UTC next day
        ("2026-11-28T00:30:00+02:00", date(2026, 11, 27)),  # 22:30 UTC the day before
        ("2026-11-27T23:59:59.999999Z", date(2026, 11, 27)),
        ("2026-11-27T00:00:00Z", date(2026, 11, 27)),
    ],
)
def test_event_date_is_the_utc_date(converter: BatchConverter, timestamp: str,
                                    event_date: date) -> None:
    assert one_event(converter, line(event_timestamp=timestamp))["event_date"] == event_date


def test_empty_optional_ids_become_null_and_the_other_id_remains(
    converter: BatchConverter,
) -> None:
    row = one_event(converter, line(anonymous_id="", user_id="u-1", product_id=""))
    assert (row["anonymous_id"], row["user_id"], row["product_id"]) == (None, "u-1", None)
    row = one_event(converter, line(anonymous_id="a-1", user_id="", product_id="p-1"))
    assert (row["anonymous_id"], row["user_id"], row["product_id"]) == ("a-1", None, "p-1")


def test_fields_are_carried_and_unescaped(converter: BatchConverter) -> None:
    raw = line(
        event_id="caf\u00e9-\"1\"", user_id="u-1", product_id="p-9", quantity=3, order_id="",
        page_url="https://shop.example/p?q=1", referrer=None, platform="ios",
        ip_address="10.0.0.1", user_agent="UA/1", utm_source="news", utm_medium="email",
        utm_campaign="bf",
    )
    row = one_event(converter, raw)
    assert row["event_id"] == "caf\u00e9-\"1\""
    assert row["quantity"] == 3
    assert row["order_id"] == ""  # only the id fields of §4 turn empty into null
    assert row["referrer"] is None
    assert {k: row[k] for k in ("page_url", "platform", "ip_address", "user_agent",
                                "utm_source", "utm_medium", "utm_campaign")} == {
        "page_url": "https://shop.example/p?q=1", "platform": "ios", "ip_address": "10.0.0.1",
        "user_agent": "UA/1", "utm_source": "news", "utm_medium": "email", "utm_campaign": "bf",
    }
    assert (row["message_id"], row["line_number"]) == ("m-1", 1)


def test_missing_quantity_is_null_and_kept_valid(converter: BatchConverter) -> None:
    row = one_event(converter, line(event_type="add_to_cart", quantity=DROP))
    assert row["quantity"] is None
    assert row["event_type"] == "add_to_cart"


def test_unknown_extra_fields_are_kept_verbatim_in_raw_json(converter: BatchConverter) -> None:
    raw = ('{ "event_type":"PRODUCT_VIEW" ,"event_id":"e-9","event_timestamp":1764237600,'
           '"anonymous_id":"a","x_score":1.50,"x_tags":["a","\\u00e9"],"x_obj":{"k":null}}')
    row = one_event(converter, raw)
    assert row["raw_json"] == raw
    assert json.loads(row["raw_json"])["x_tags"] == ["a", "\u00e9"]


def test_blank_lines_ignored_and_line_numbers_are_physical(converter: BatchConverter) -> None:
    lines = ["", line(event_id="e-2"), "   ", "\t", "not json", "\r", line(event_id="e-7"), ""]
    result = convert(converter, message(lines))
    assert result.lines == 3
    assert [(r["event_id"], r["line_number"]) for r in result.events.to_pylist()] == [
        ("e-2", 2), ("e-7", 7)
    ]
    assert [(r["raw_line"], r["line_number"]) for r in result.quarantine.to_pylist()] == [
        ("not json", 5)
    ]


def test_crlf_lines_are_events(converter: BatchConverter) -> None:
    body = (line(event_id="e-1") + "\r\n\r\n" + line(event_id="e-3") + "\r\n").encode()
    msg = Message("m-crlf", "r", body, 1, 0.0)
    result = converter.convert([msg], now=NOW)
    assert result.quarantine.num_rows == 0
    assert [(r["event_id"], r["line_number"]) for r in result.events.to_pylist()] == [
        ("e-1", 1), ("e-3", 3)
    ]


def test_invalid_utf8_in_one_line_spares_the_others(converter: BatchConverter) -> None:
    msg = message([line(event_id="e-1"), b"\xc3\x28 broken", "", line(event_id="e-4")])
    result = convert(converter, msg)
    assert [(r["event_id"], r["line_number"]) for r in result.events.to_pylist()] == [
        ("e-1", 1), ("e-4", 4)
    ]
    (bad,) = result.quarantine.to_pylist()
    assert (bad["reason"], bad["line_number"]) == (R.MALFORMED_JSON.value, 2)


def test_rows_keep_their_own_message_id(converter: BatchConverter) -> None:
    result = convert(
        converter,
        message([line(event_id="a"), "oops"], "m-A"),
        message(["[]", line(event_id="b")], "m-B"),
    )
    assert sorted((r["message_id"], r["line_number"], r["event_id"])
                  for r in result.events.to_pylist()) == [("m-A", 1, "a"), ("m-B", 2, "b")]
    assert sorted((r["message_id"], r["line_number"], r["reason"])
                  for r in result.quarantine.to_pylist()) == [
        ("m-A", 2, R.MALFORMED_JSON.value), ("m-B", 1, R.NOT_AN_OBJECT.value)
    ]
    assert result.rejected_by_reason() == {R.MALFORMED_JSON.value: 1, R.NOT_AN_OBJECT.value: 1}


# --- schema and accounting ------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param([line()], id="only-events"),
        pytest.param(["nope"], id="only-rejects"),
        pytest.param([line(), "nope"], id="both"),
        pytest.param(["", "  "], id="nothing"),
    ],
)
def test_output_schema_is_exactly_the_lake_schema(converter: BatchConverter,
                                                  lines: list[str]) -> None:
    result = convert(converter, message(lines))
    assert result.events.schema.equals(LAKE_EVENT_SCHEMA)
    assert result.quarantine.schema.equals(LAKE_QUARANTINE_SCHEMA)


_GOOD = [
    lambda i: line(event_id=f"g-{i}"),
    lambda i: line(event_id=f"g-{i}", event_type=" Checkout", quantity=2, user_id="u"),
    lambda i: line(event_id=f"g-{i}", event_timestamp=1_764_237_600_000 + i),
    lambda i: line(event_id=f"g-{i}", anonymous_id="", user_id=f"u-{i}"),
]
_BAD = [
    (lambda i: "{" * (i % 5 + 1), R.MALFORMED_JSON),
    (lambda i: f"[{i}]", R.NOT_AN_OBJECT),
    (lambda i: line(event_id=i), R.MISSING_EVENT_ID),
    (lambda i: line(event_id=f"b-{i}", event_timestamp="soon"), R.BAD_TIMESTAMP),
    (lambda i: line(event_id=f"b-{i}", event_timestamp=i), R.TIMESTAMP_OUT_OF_RANGE),
    (lambda i: line(event_id=f"b-{i}", event_type="tap"), R.UNKNOWN_EVENT_TYPE),
    (lambda i: line(event_id=f"b-{i}", anonymous_id=""), R.NO_IDENTITY),
    (lambda i: line(event_id=f"b-{i}", quantity=-i), R.INVALID_FIELD),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_accounting_balances_for_a_random_mix(converter: BatchConverter, seed: int) -> None:
    rng = random.Random(seed)
    messages: list[Message] = []
    expected: dict[tuple[str, int], str | None] = {}  # (message, line) → reason or None
    for m in range(rng.randint(2, 6)):
        mid = f"m-{seed}-{m}"
        lines: list[str | bytes] = []
        for n in range(1, rng.randint(1, 60) + 1):
            roll = rng.random()
            if roll < 0.15:
                lines.append(rng.choice(["", " ", "\t", "\r"]))
                continue
            if roll < 0.55:
                lines.append(rng.choice(_GOOD)(n))
                expected[mid, n] = None
            elif roll < 0.6:
                lines.append(b"\xff\xfe" + str(n).encode())
                expected[mid, n] = R.MALFORMED_JSON.value
            else:
                make, reason = rng.choice(_BAD)
                lines.append(make(n))
                expected[mid, n] = reason.value
        messages.append(message(lines, mid))

    result = converter.convert(messages, now=NOW)
    non_blank = len(expected)
    assert result.events.num_rows + result.quarantine.num_rows == non_blank == result.lines
    got: dict[tuple[str, int], str | None] = {}
    for r in result.events.to_pylist():
        got[r["message_id"], r["line_number"]] = None
    for r in result.quarantine.to_pylist():
        got[r["message_id"], r["line_number"]] = r["reason"]
    assert got == expected  # every line once, with the right verdict
