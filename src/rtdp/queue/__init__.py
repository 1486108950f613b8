"""The queue seam: one small interface with SQS semantics, one module per backend.

``open_queue(url)`` picks the backend by URL scheme:

- ``sqlite:///abs/path/queue.sqlite`` — the embedded default (:mod:`rtdp.queue.local`)
- ``https://sqs.<region>.amazonaws.com/<account>/<name>`` or any ``http(s)://`` queue URL —
  Amazon SQS or an SQS-compatible server (:mod:`rtdp.queue.sqs`, the ``aws`` extra)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlparse

from rtdp.exceptions import UnsupportedBackendError

LINE_COUNT_ATTRIBUTE = "line_count"


@dataclass(frozen=True)
class Message:
    """A received message. ``message_id`` is stable across redeliveries; ``receipt`` is not."""

    message_id: str
    receipt: str
    body: bytes
    receive_count: int
    sent_at: float
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueStats:
    depth: int  # visible, waiting to be received
    in_flight: int  # received, not yet deleted, invisible
    dead_letter: int
    oldest_age_seconds: float | None  # age of the oldest message not in the dead-letter queue
    pending_lines: int | None = None  # lines in depth + in flight, when the backend can tell
    dead_letter_lines: int | None = None  # lines in the dead-letter queue, likewise


class Queue(Protocol):
    """What producers, ingest, converters and status need from a queue."""

    max_message_bytes: int
    max_receive_batch: int  # most messages one receive may return (SQS: 10)

    def send_batch(
        self, bodies: Sequence[bytes], attributes: Sequence[dict[str, str]] | None = None
    ) -> list[str]:
        """Send each body as one message; return their message ids. All or nothing per call."""
        ...

    def receive(
        self, max_messages: int, visibility_timeout_seconds: float, wait_seconds: float = 0.0
    ) -> list[Message]: ...

    def delete_batch(self, receipts: Sequence[str]) -> None: ...

    def change_visibility(self, receipts: Sequence[str], timeout_seconds: float) -> None: ...

    def stats(self) -> QueueStats: ...

    def redrive_dead_letters(self) -> int:
        """Move every dead-lettered message back to the queue; return how many."""
        ...

    def close(self) -> None: ...


def open_queue(url: str, *, max_message_bytes: int, max_receive_count: int = 5) -> Queue:
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from rtdp.queue.local import SqliteQueue

        return SqliteQueue(
            urlparse(url).path,
            max_message_bytes=max_message_bytes,
            max_receive_count=max_receive_count,
        )
    if scheme in ("http", "https"):
        try:
            from rtdp.queue.sqs import SqsQueue  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise UnsupportedBackendError(
                f"queue URL {url!r} needs the SQS backend: pip install 'rtdp[aws]' ({exc})"
            ) from exc
        return SqsQueue(url, max_message_bytes=max_message_bytes)  # type: ignore[no-any-return,unused-ignore]
    raise UnsupportedBackendError(
        f"RTDP_QUEUE_URL {url!r}: unknown scheme {scheme!r} (use sqlite:///path or an SQS URL)"
    )
