"""``rtdp ingest``: every non-blank line of NDJSON files into the queue, as it is.

Malformed lines travel too: judging them is the converter's job. The only lines kept back are
those that cannot travel through a queue — invalid UTF-8, characters SQS refuses, or longer
than a message — and those are written to the lake's quarantine here, with their reason, so
that nothing is lost and the accounting still balances.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pyarrow as pa

from rtdp.events import LAKE_QUARANTINE_SCHEMA, MAX_LINE_BYTES, RejectReason, Stage
from rtdp.lake import QUARANTINE_PREFIX, FileNamer, Lake
from rtdp.ledger import Ledger
from rtdp.queue import LINE_COUNT_ATTRIBUTE, Queue

_READ_BYTES: Final = 8 * 1024 * 1024
_SEND_BATCH: Final = 10  # messages per send call (SQS's ceiling)
# Characters an SQS message body may not hold (its allowed set is #x9 #xA #xD #x20-#xD7FF
# #xE000-#xFFFD #x10000-#x10FFFF); surrogates cannot occur in decoded UTF-8.
_UNSENDABLE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_WHITESPACE: Final = b" \t\r"


@dataclass
class IngestStats:
    files: int = 0
    lines: int = 0  # non-blank lines read
    sent_lines: int = 0
    messages: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "lines": self.lines,
            "sent_lines": self.sent_lines,
            "messages": self.messages,
            "rejected_at_ingest": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
        }


@dataclass(frozen=True)
class _Rejected:
    line_number: int
    raw: str
    reason: RejectReason
    detail: str


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its newline) for every line of ``path``."""
    number = 0
    tail = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(_READ_BYTES):
            parts = (tail + chunk).split(b"\n")
            tail = parts.pop()
            for part in parts:
                number += 1
                yield number, part
    if tail:
        yield number + 1, tail


def _check(line: bytes) -> tuple[str | None, _Rejected | None]:
    """The line as text if it can travel; otherwise why not (with line number 0)."""
    if len(line) > MAX_LINE_BYTES:
        # Oversize comes first in the spec's order, whatever else is wrong with the line, and
        # it would be rejected downstream anyway: no need to send it.
        return None, _Rejected(0, line.decode("utf-8", "backslashreplace"),
                               RejectReason.OVERSIZE, f"{len(line)} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, _Rejected(0, line.decode("utf-8", "backslashreplace"),
                               RejectReason.MALFORMED_JSON, f"invalid UTF-8 at byte {exc.start}")
    if _UNSENDABLE.search(text):
        return None, _Rejected(0, text, RejectReason.MALFORMED_JSON,
                               "control character outside JSON strings' allowed set")
    return text, None


class Ingestor:
    def __init__(self, queue: Queue, lake: Lake, ledger: Ledger, *,
                 max_message_bytes: int) -> None:
        self.queue = queue
        self.lake = lake
        self.ledger = ledger
        self.max_message_bytes = min(max_message_bytes, queue.max_message_bytes)
        self.namer = FileNamer()
        self.stats = IngestStats()

    def ingest(self, paths: Iterable[Path]) -> IngestStats:
        for path in paths:
            self.ingest_lines(read_lines(path), source=str(path))
            self.stats.files += 1
        return self.stats

    def ingest_lines(self, lines: Iterable[tuple[int, bytes]], source: str) -> None:
        bodies: list[bytes] = []
        counts: list[int] = []
        body: list[bytes] = []
        body_bytes = 0
        rejected: list[_Rejected] = []
        for number, line in lines:
            if not line.strip(_WHITESPACE):
                continue  # blank lines are not events (spec §1)
            self.stats.lines += 1
            text, problem = _check(line)
            if problem is not None:
                rejected.append(_Rejected(number, problem.raw, problem.reason, problem.detail))
                continue
            del text  # the bytes travel as they are
            size = len(line) + (1 if body else 0)
            if body and body_bytes + size > self.max_message_bytes:
                bodies.append(b"\n".join(body))
                counts.append(len(body))
                body, body_bytes, size = [], 0, len(line)
                if len(bodies) >= _SEND_BATCH:
                    self._send(bodies, counts, source)
                    bodies, counts = [], []
            body.append(line)
            body_bytes += size
        if body:
            bodies.append(b"\n".join(body))
            counts.append(len(body))
        if bodies:
            self._send(bodies, counts, source)
        if rejected:
            self._quarantine(rejected, source)

    def _send(self, bodies: list[bytes], counts: list[int], source: str) -> None:
        self.queue.send_batch(bodies, [{LINE_COUNT_ATTRIBUTE: str(c)} for c in counts])
        lines = sum(counts)
        self.ledger.record(source, lines)
        self.stats.messages += len(bodies)
        self.stats.sent_lines += lines

    def _quarantine(self, rejected: list[_Rejected], source: str) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        # One id per ingest of a file: (message_id, line_number) names each line uniquely,
        # like a queue message id does for the lines that travelled.
        message_id = f"ingest-{uuid.uuid4().hex}"
        table = pa.table(
            {
                "raw_line": [r.raw for r in rejected],
                "reason": [r.reason.value for r in rejected],
                "detail": [f"{r.detail} ({source})" for r in rejected],
                "stage": [Stage.INGEST.value] * len(rejected),
                "message_id": [message_id] * len(rejected),
                "line_number": [r.line_number for r in rejected],
                "seen_at": [now] * len(rejected),
            },
            schema=LAKE_QUARANTINE_SCHEMA,
        )
        day = now.date().isoformat()
        self.lake.write_parquet(f"{QUARANTINE_PREFIX}/seen_date={day}/{self.namer()}", table)
        self.ledger.record(source, len(rejected), rejected_at_ingest=len(rejected))
        self.stats.rejected.update(r.reason.value for r in rejected)
