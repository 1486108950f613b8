"""The converter: queue messages → validated, normalized Parquet in the lake.

One micro-batch at a time: messages are received until the batch holds ``flush_bytes`` of
bodies or is ``flush_seconds`` old, then the whole batch is split into lines, validated and
normalized in one vectorized DuckDB query (spec §1, §2, §4), written as one Parquet file per
event date plus one quarantine file, and only then are the messages deleted. A crash anywhere
before the delete means the messages come back and are converted again: at-least-once, with
the duplicates told apart downstream by their (message_id, line_number).
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from rtdp.events import (
    EPOCH_MILLIS_THRESHOLD,
    LAKE_EVENT_SCHEMA,
    LAKE_QUARANTINE_SCHEMA,
    MAX_EVENT_ID_CHARS,
    MAX_FUTURE_SECONDS,
    MAX_LINE_BYTES,
    STRING_FIELDS,
    EventType,
    RejectReason,
    Stage,
)
from rtdp.exceptions import LakeError
from rtdp.lake import EVENTS_PREFIX, QUARANTINE_PREFIX, FileNamer, Lake, LakeFile
from rtdp.queue import Message, Queue
from rtdp.settings import Settings

log = logging.getLogger(__name__)

# The fields pulled out of each line (as JSON text and as plain text) in one pass each.
_FIELDS: Final = ("event_id", "event_type", "event_timestamp", "quantity", *STRING_FIELDS)
_MIN_EPOCH_US: Final = 946_684_800 * 1_000_000  # 2000-01-01T00:00:00Z
# Offsets within ±23:59 (DuckDB's cast would take +99:99 and roll the clock).
_ISO_PATTERN: Final = (
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]([01]\d|2[0-3]):?[0-5]\d)?"
)
# What "surrounding whitespace" means for event_type: JSON's white space and \f, \v.
_WS: Final = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
# DuckDB's JSON reader is lenient where RFC 8259 is not: trailing commas and NaN/Infinity
# parse. Lines that may hold either are few; they are checked again by Python's strict parser.
# Searched per message body first (one regex pass over the bytes); only the lines of the rare
# bodies that match are searched one by one.
_TRAILING_COMMA: Final = r",\s*[\]}]"
_NAN_OR_INF: Final = r"[:\[,]\s*[-+]?(?i:nan|inf)"
_TIMESTAMP_SQL: Final = "make_timestamp(ts_us::bigint)"


def _col(name: str) -> str:
    """The field as JSON text (SQL NULL when absent or JSON null)."""
    return f"v.{name}"


def _type(name: str) -> str:
    """The field's JSON type: ``VARCHAR``, ``NULL``, a number type, or ``OTHER``."""
    return f"t_{name}"


def _text(name: str) -> str:
    """The field as text: a string unescaped, anything else as its JSON text."""
    return f"s.{name}"


# Fields whose numeric kind matters get DuckDB's json_type; for the others "is it a string"
# is enough, and the first character of the JSON text says so at a fraction of the cost.
_NUMERIC_FIELDS: Final = ("event_timestamp", "quantity")


def _type_expression(name: str) -> str:
    if name in _NUMERIC_FIELDS:
        return f"coalesce(json_type({_col(name)}), 'NULL')"
    return (f"case when {_col(name)} is null then 'NULL'"
            f" when ascii({_col(name)}) = 34 then 'VARCHAR' else 'OTHER' end")


_LINES_SQL: Final = """
select message_id, line_number, raw, invalid_utf8, coalesce(size, strlen(raw)) as size
from (
    select
        message_id,
        unnest(range(1, len(parts) + 1))::integer as line_number,
        unnest(parts) as raw,
        false as invalid_utf8,
        null::bigint as size
    from (select message_id, string_split(body, chr(10)) as parts from bodies)
    union all
    select message_id, line_number, raw, invalid_utf8, size from extra_lines
)
-- blank lines are not events (spec §1); trim only lines that start with white space
where case when raw = '' then false
           when left(raw, 1) not in (' ', chr(9), chr(13)) then true
           else trim(raw, ' ' || chr(9) || chr(13)) <> '' end
"""


def _build_query(*, suspects: bool) -> str:
    """The whole validation and normalization, as one DuckDB query over ``lines``.

    Built from the field lists so that the rules and the schema cannot drift apart.
    """
    as_json = ", ".join(f'"{name}": "JSON"' for name in _FIELDS)
    as_text = ", ".join(f'"{name}": "VARCHAR"' for name in _FIELDS)
    event_types = ", ".join(f"'{t.value}'" for t in EventType)
    non_string = " or ".join(
        f"coalesce({_type(n)}, 'NULL') not in ('VARCHAR', 'NULL')" for n in STRING_FIELDS
    )
    first_bad_string = ", ".join(
        f"case when coalesce({_type(n)}, 'NULL') not in ('VARCHAR', 'NULL') then '{n}' end"
        for n in STRING_FIELDS
    )
    # Reasons in precedence order (spec §2): the first CASE branch that matches wins.
    reason = f"""
        case
            when oversize then '{RejectReason.OVERSIZE}'
            when not_json then '{RejectReason.MALFORMED_JSON}'
            when not is_object then '{RejectReason.NOT_AN_OBJECT}'
            when {_type("event_id")} is distinct from 'VARCHAR'
                or length({_text("event_id")}) not between 1 and {MAX_EVENT_ID_CHARS}
                then '{RejectReason.MISSING_EVENT_ID}'
            when ts_us is null then '{RejectReason.BAD_TIMESTAMP}'
            when ts_us < {_MIN_EPOCH_US} or ts_us > $max_us
                then '{RejectReason.TIMESTAMP_OUT_OF_RANGE}'
            when {_type("event_type")} is distinct from 'VARCHAR'
                or lower(trim({_text("event_type")}, {_WS})) not in ({event_types})
                then '{RejectReason.UNKNOWN_EVENT_TYPE}'
            when not coalesce(
                ({_type("anonymous_id")} = 'VARCHAR' and {_text("anonymous_id")} <> '')
                or ({_type("user_id")} = 'VARCHAR' and {_text("user_id")} <> ''),
                false
            ) then '{RejectReason.NO_IDENTITY}'
            when coalesce({_type("quantity")}, 'NULL') <> 'NULL'
                and not ({_type("quantity")} in ('UBIGINT', 'BIGINT')
                         and coalesce(try_cast({_text("quantity")} as bigint) >= 1, false))
                then '{RejectReason.INVALID_FIELD}'
            when {non_string} then '{RejectReason.INVALID_FIELD}'
        end"""
    detail = f"""
        case
            when reason = '{RejectReason.OVERSIZE}' then size || ' bytes'
            when invalid_utf8 then 'invalid UTF-8'
            when reason in ('{RejectReason.BAD_TIMESTAMP}',
                            '{RejectReason.TIMESTAMP_OUT_OF_RANGE}')
                then 'event_timestamp=' || left(coalesce({_col("event_timestamp")}::varchar,
                                                          'missing'), 80)
            when reason = '{RejectReason.UNKNOWN_EVENT_TYPE}'
                then 'event_type=' || left(coalesce({_col("event_type")}::varchar, 'missing'), 80)
            when reason = '{RejectReason.INVALID_FIELD}'
                then coalesce(case when coalesce({_type("quantity")}, 'NULL') <> 'NULL'
                    and not ({_type("quantity")} in ('UBIGINT', 'BIGINT')
                             and coalesce(try_cast({_text("quantity")} as bigint) >= 1, false))
                    then 'quantity=' || left({_col("quantity")}::varchar, 80) end,
                    {first_bad_string})
        end"""
    # Epoch numbers → microseconds as DOUBLE (exact below 2^53 µs, i.e. until year 2255);
    # ISO strings → parsed with DuckDB's timestamptz cast in a UTC session (no offset = UTC).
    ts_us = f"""
        case {_type("event_timestamp")}
            when 'VARCHAR' then case
                when regexp_full_match({_text("event_timestamp")}, '{_ISO_PATTERN}')
                then epoch_us(try_cast({_text("event_timestamp")} as timestamptz))::double end
            when 'UBIGINT' then try_cast({_text("event_timestamp")} as double)
                * case when try_cast({_text("event_timestamp")} as double)
                    >= {EPOCH_MILLIS_THRESHOLD} then 1000 else 1000000 end
            when 'BIGINT' then try_cast({_text("event_timestamp")} as double) * 1000000
            when 'DOUBLE' then case
                when isfinite(try_cast({_text("event_timestamp")} as double))
                then round(try_cast({_text("event_timestamp")} as double) * 1000000) end
        end"""
    typed_columns = ",\n            ".join(f"{_type_expression(n)} as t_{n}" for n in _FIELDS)
    suspect = (
        "(not not_json and not oversize"
        " and message_id in (select message_id from suspect_bodies)"
        f" and regexp_matches(raw, '{_TRAILING_COMMA}|{_NAN_OR_INF}'))"
        if suspects else "false"
    )
    ids = {"anonymous_id", "user_id", "product_id"}
    string_columns = ",\n            ".join(
        f"nullif({_text(n)}, '') as {n}" if n in ids else f"{_text(n)} as {n}"
        for n in STRING_FIELDS
    )
    return f"""
    with lines as ({_LINES_SQL}),
    parsed as (
        select
            message_id,
            line_number,
            raw,
            invalid_utf8,
            size,
            size > {MAX_LINE_BYTES} as oversize,
            -- every field we need as JSON text (NULL when absent); NULL if not valid JSON
            case when size <= {MAX_LINE_BYTES} and not invalid_utf8
                then try(json_transform(raw, '{{{as_json}}}')) end as v,
            -- a valid JSON text that starts with '{{' is an object (trim only when needed:
            -- trimming every line costs more than parsing it)
            case when starts_with(raw, '{{') then true
                 else ltrim(raw, ' ' || chr(9) || chr(10) || chr(13)) like '{{%' end as is_object
        from lines
    ),
    -- each field's type and text computed once (CASE branches below reuse them)
    fields as (
        select *,
            {typed_columns}
        from (
            select *,
                case when v is not null then json_transform(raw, '{{{as_text}}}') end as s
            from parsed
        )
    ),
    judged as (
        select *,
            invalid_utf8
                -- json_transform gives NULL for the JSON text `null` too; that one is valid
                or (v is null and not coalesce(try(json_valid(raw)), false)) as not_json
        from fields
    ),
    timed as (select *, {ts_us} as ts_us from judged),
    classified as (select *, {reason} as reason from timed)
    select
        message_id,
        line_number,
        raw,
        reason,
        case when reason is not null then {detail} end as detail,
        case when reason is null then {_text("event_id")} end as event_id,
        case when reason is null then lower(trim({_text("event_type")}, {_WS})) end as event_type,
        case when reason is null then {_TIMESTAMP_SQL} end as event_timestamp,
        case when reason is null then try_cast({_text("quantity")} as bigint) end as quantity,
        {string_columns},
        -- parsed, but maybe only by a lenient parser: checked again in Python
        {suspect} as suspect
    from classified
    """


_CLASSIFY_SQL: Final = _build_query(suspects=False)
_CLASSIFY_SUSPECTS_SQL: Final = _build_query(suspects=True)
_SUSPECT_BODIES_SQL: Final = (
    "select message_id from bodies"
    f" where regexp_matches(body, '{_TRAILING_COMMA}|{_NAN_OR_INF}')"
)



@dataclass
class BatchResult:
    """What one micro-batch produced."""

    events: pa.Table
    quarantine: pa.Table

    @property
    def lines(self) -> int:
        return int(self.events.num_rows + self.quarantine.num_rows)

    def rejected_by_reason(self) -> Counter[str]:
        if self.quarantine.num_rows == 0:
            return Counter()
        counts = pc.value_counts(self.quarantine["reason"]).to_pylist()
        return Counter({c["values"]: c["counts"] for c in counts})


class BatchConverter:
    """Validates and normalizes lines with one in-process DuckDB connection."""

    def __init__(self, *, threads: int = 2, memory_limit: str = "384MB") -> None:
        self._con = duckdb.connect(":memory:")
        self._con.execute(f"set threads = {threads}")
        self._con.execute(f"set memory_limit = '{memory_limit}'")
        # Spill under the system temp dir, never the working directory (read-only on Lambda).
        spill = Path(tempfile.gettempdir()) / "rtdp-duckdb"
        self._con.execute(f"set temp_directory = '{spill}'")
        self._con.execute("set TimeZone = 'UTC'")

    def convert(self, messages: Sequence[Message], now: datetime | None = None) -> BatchResult:
        """Classify every line of ``messages``; ``now`` is the processing time (UTC)."""
        now = now or datetime.now(UTC)
        bodies, extra = _split_utf8(messages)
        con = self._con
        con.register("bodies", bodies)
        con.register("extra_lines", extra)
        try:
            max_us = int(now.timestamp() * 1_000_000) + MAX_FUTURE_SECONDS * 1_000_000
            suspect_bodies = con.sql(_SUSPECT_BODIES_SQL).to_arrow_table()
            if suspect_bodies.num_rows or extra.num_rows:
                con.register("suspect_bodies", pa.concat_tables(
                    [suspect_bodies, extra.select(["message_id"])]))
                query = _CLASSIFY_SUSPECTS_SQL
            else:
                query = _CLASSIFY_SQL
            classified = con.sql(query, params={"max_us": max_us}).to_arrow_table()
        finally:
            for name in ("bodies", "extra_lines", "suspect_bodies"):
                con.unregister(name)
        return _split_result(_reject_lenient_json(classified),
                             now.astimezone(UTC).replace(tzinfo=None))

    def close(self) -> None:
        self._con.close()


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _strictly_json(raw: str) -> bool:
    try:
        json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        return False
    return True


def _reject_lenient_json(classified: pa.Table) -> pa.Table:
    """Lines only a lenient parser accepts (trailing commas, NaN, Infinity) are malformed:
    the few suspects the query flagged are parsed again by Python's strict parser."""
    suspects = pc.indices_nonzero(classified["suspect"]).to_pylist()
    raw = classified["raw"]
    bad = {i for i in suspects if not _strictly_json(raw[i].as_py())}
    classified = classified.drop_columns(["suspect"])
    if not bad:
        return classified
    mask = pa.array([i in bad for i in range(classified.num_rows)], pa.bool_())
    reason = pc.if_else(mask, RejectReason.MALFORMED_JSON.value, classified["reason"])
    detail = pc.if_else(mask, "not strict JSON (trailing comma, NaN or Infinity)",
                        classified["detail"])
    return classified.set_column(
        classified.schema.get_field_index("reason"), "reason", reason
    ).set_column(classified.schema.get_field_index("detail"), "detail", detail)


def _split_result(classified: pa.Table, now: datetime) -> BatchResult:
    """Valid rows → the lake schema; rejected rows → the quarantine schema (in Arrow: a
    filter on one column is cheaper than a second query)."""
    valid = pc.is_null(classified["reason"])
    events = classified.filter(valid)
    n = events.num_rows
    events = pa.table(
        {
            **{name: events[name] for name in _EVENT_SOURCE_COLUMNS},
            "event_date": pc.cast(events["event_timestamp"], pa.date32()),
            "raw_json": events["raw"],
            "received_at": _repeat(now, n),
        }
    ).select(LAKE_EVENT_SCHEMA.names)
    rejected = classified.filter(pc.invert(valid))
    m = rejected.num_rows
    quarantine = pa.table(
        {
            "raw_line": rejected["raw"],
            "reason": rejected["reason"],
            "detail": rejected["detail"],
            "stage": pa.repeat(pa.scalar(Stage.CONVERT.value, pa.string()), m),
            "message_id": rejected["message_id"],
            "line_number": rejected["line_number"],
            "seen_at": _repeat(now, m),
        }
    )
    return BatchResult(events=events.cast(LAKE_EVENT_SCHEMA),
                       quarantine=quarantine.cast(LAKE_QUARANTINE_SCHEMA))


def _repeat(moment: datetime, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(moment, pa.timestamp("us")), n)


_DERIVED_COLUMNS: Final = ("event_date", "raw_json", "received_at")
_EVENT_SOURCE_COLUMNS: Final = [n for n in LAKE_EVENT_SCHEMA.names if n not in _DERIVED_COLUMNS]


def _split_utf8(messages: Sequence[Message]) -> tuple[pa.Table, pa.Table]:
    """Bodies that are valid UTF-8 go to DuckDB whole; the rare others are split here so that
    each of their lines is judged alone (only the invalid lines are malformed)."""
    ids = pa.array([m.message_id for m in messages], pa.string())
    raw = pa.array([m.body for m in messages], pa.large_binary())
    try:
        # One C pass validates every body; the per-message path is for the rare failure.
        table = pa.table({"message_id": ids, "body": raw.cast(pa.large_string())})
        # Several record batches, so DuckDB's Arrow scan feeds every thread, not one.
        return pa.Table.from_batches(table.to_batches(max_chunksize=4)), _no_lines()
    except pa.ArrowInvalid:
        pass
    good: list[Message] = []
    extra: dict[str, list[Any]] = {name: [] for name in _EXTRA_SCHEMA.names}
    for message in messages:
        try:
            message.body.decode("utf-8")
            good.append(message)
            continue
        except UnicodeDecodeError:
            pass
        for number, line in enumerate(message.body.split(b"\n"), start=1):
            try:
                text, invalid = line.decode("utf-8"), False
            except UnicodeDecodeError:
                # An invalid line keeps its bytes visible as \xNN escapes in the quarantine.
                text, invalid = line.decode("utf-8", "backslashreplace"), True
            for name, value in zip(_EXTRA_SCHEMA.names,
                                   (message.message_id, number, text, invalid, len(line)),
                                   strict=True):
                extra[name].append(value)
    bodies, _ = _split_utf8(good) if good else (_no_bodies(), None)
    return bodies, pa.table(extra, schema=_EXTRA_SCHEMA)


_EXTRA_SCHEMA: Final = pa.schema([
    ("message_id", pa.string()), ("line_number", pa.int32()), ("raw", pa.string()),
    ("invalid_utf8", pa.bool_()), ("size", pa.int64()),
])


def _no_lines() -> pa.Table:
    return _EXTRA_SCHEMA.empty_table()


def _no_bodies() -> pa.Table:
    return pa.table({"message_id": pa.array([], pa.string()),
                     "body": pa.array([], pa.large_string())})


@dataclass
class ConvertStats:
    messages: int = 0
    lines: int = 0
    events: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    files: int = 0
    bytes_written: int = 0
    batches: int = 0
    failed_messages: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "lines": self.lines,
            "events": self.events,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "files": self.files,
            "bytes_written": self.bytes_written,
            "batches": self.batches,
            "failed_messages": self.failed_messages,
        }


def write_batch(lake: Lake, result: BatchResult, namer: FileNamer) -> list[LakeFile]:
    """One Parquet file per event date (Hive-partitioned), one for the quarantine."""
    written: list[LakeFile] = []
    events = result.events
    if events.num_rows:
        dates = events["event_date"]
        days = pc.unique(dates).to_pylist()
        for day in sorted(days):
            chunk = events if len(days) == 1 else events.filter(pc.equal(dates, day))
            path = f"{EVENTS_PREFIX}/event_date={day.isoformat()}/{namer()}"
            written.append(lake.write_parquet(path, chunk))
    quarantine = result.quarantine
    if quarantine.num_rows:
        day = quarantine["seen_at"][0].as_py().date().isoformat()
        path = f"{QUARANTINE_PREFIX}/seen_date={day}/{namer()}"
        written.append(lake.write_parquet(path, quarantine))
    return written


ProgressCallback = Callable[[ConvertStats], None]


class Converter:
    """The worker loop around :class:`BatchConverter`: receive, micro-batch, write, delete."""

    def __init__(self, queue: Queue, lake: Lake, settings: Settings) -> None:
        self.queue = queue
        self.lake = lake
        self.settings = settings
        self.namer = FileNamer()
        self.batcher = BatchConverter()
        self.stats = ConvertStats()

    def run(
        self,
        *,
        follow: bool,
        stop: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> ConvertStats:
        """Drain the queue (``follow=False``) or work until ``stop`` is set."""
        stop = stop or threading.Event()
        batch: list[Message] = []
        batch_bytes = 0
        started = time.monotonic()
        vt = self.settings.visibility_timeout_seconds
        while True:
            messages: list[Message] = []
            if not stop.is_set():
                messages = self.queue.receive(
                    self.queue.max_receive_batch, vt, wait_seconds=1.0 if follow else 0
                )
            if messages and not batch:
                started = time.monotonic()
            batch.extend(messages)
            batch_bytes += sum(len(m.body) for m in messages)
            age = time.monotonic() - started
            drained = not messages
            due = (
                batch_bytes >= self.settings.flush_bytes
                or age >= self.settings.flush_seconds
                or (drained and (not follow or stop.is_set()))
            )
            if batch and due:
                if age > vt / 2:  # about to exceed the visibility we were granted
                    self.queue.change_visibility([m.receipt for m in batch], vt)
                self._flush(batch)
                batch, batch_bytes = [], 0
                if on_progress:
                    on_progress(self.stats)
            if drained and not batch and (not follow or stop.is_set()):
                return self.stats

    def _flush(self, batch: list[Message]) -> None:
        try:
            self._convert_and_write(batch)
        except LakeError:
            # Storage is down: leave every message to come back after its visibility timeout.
            log.exception("lake write failed; %d messages will be redelivered", len(batch))
            self.stats.failed_messages += len(batch)
            time.sleep(1.0)
        except Exception:
            if len(batch) == 1:
                log.exception("message %s failed; it will be retried, then dead-lettered",
                              batch[0].message_id)
                self.stats.failed_messages += 1
                return
            # Isolate the poison message: convert the others one by one.
            log.exception("batch of %d failed; retrying messages one by one", len(batch))
            for message in batch:
                self._flush([message])

    def _convert_and_write(self, batch: list[Message]) -> None:
        result = self.batcher.convert(batch)
        files = write_batch(self.lake, result, self.namer)
        # Only now, with every file durable, may the messages go.
        self.queue.delete_batch([m.receipt for m in batch])
        stats = self.stats
        stats.batches += 1
        stats.messages += len(batch)
        stats.lines += result.lines
        stats.events += result.events.num_rows
        stats.rejected.update(result.rejected_by_reason())
        stats.files += len(files)
        stats.bytes_written += sum(f.size for f in files)

    def close(self) -> None:
        self.batcher.close()
