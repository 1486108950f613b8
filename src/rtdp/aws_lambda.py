"""The converter as an AWS Lambda function behind an SQS event source mapping.

Handler: ``rtdp.aws_lambda.handler``. The event source mapping must enable
``ReportBatchItemFailures``: the handler returns ``{"batchItemFailures": [...]}`` naming only
the messages that really failed, Lambda deletes the others, and a failed message comes back
after its visibility timeout until the queue's redrive policy dead-letters it.

This is the same code as ``rtdp convert``: the event's messages are served to
:class:`~rtdp.convert.Converter` through :class:`EventQueue`, a :class:`~rtdp.queue.Queue`
that hands out the event's messages and *records* deletions instead of making them (deleting
is Lambda's job). So validation, Parquet writing, the order "files durable, then
acknowledged" and the isolation of a poison message (the batch retried message by message)
are the converter's own. Rejected lines are quarantined in the lake, like everywhere else: a
message holding them succeeded. A lake that is down fails the whole batch.

Configuration, from the function's environment: ``RTDP_LAKE_URI`` (``s3://bucket/prefix``,
required) and the other ``RTDP_*`` settings; AWS access is the function's role.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from rtdp.convert import Converter
from rtdp.exceptions import ConfigError, QueueError
from rtdp.lake import Lake, open_lake
from rtdp.queue import LINE_COUNT_ATTRIBUTE, Message, QueueStats
from rtdp.queue.sqs import MESSAGE_ID_ATTRIBUTE
from rtdp.settings import Settings

log = logging.getLogger(__name__)

# Kept across warm invocations of one execution environment.
_lake: Lake | None = None
_settings: Settings | None = None


class EventQueue:
    """The messages of one Lambda event as a read-only queue that records acknowledgements."""

    def __init__(self, messages: Iterable[Message], max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_receive_batch = 10  # as SQS; the converter gathers them into one batch
        self._pending = list(messages)
        self._total = len(self._pending)
        self.acknowledged: set[str] = set()

    def send_batch(self, bodies: Sequence[bytes],
                   attributes: Sequence[dict[str, str]] | None = None) -> list[str]:
        raise QueueError("a Lambda event is read-only")

    def receive(self, max_messages: int, visibility_timeout_seconds: float,
                wait_seconds: float = 0.0) -> list[Message]:
        taken, self._pending = self._pending[:max_messages], self._pending[max_messages:]
        return taken

    def delete_batch(self, receipts: Sequence[str]) -> None:
        self.acknowledged.update(receipts)  # Lambda deletes what the handler does not report

    def change_visibility(self, receipts: Sequence[str], timeout_seconds: float) -> None:
        """Lambda holds the messages for the function's timeout; nothing to extend."""

    def stats(self) -> QueueStats:
        return QueueStats(depth=len(self._pending),
                          in_flight=self._total - len(self._pending) - len(self.acknowledged),
                          dead_letter=0, oldest_age_seconds=None)

    def redrive_dead_letters(self) -> int:
        return 0

    def close(self) -> None:
        pass


def message_from_record(record: dict[str, Any]) -> Message:
    """One ``Records[]`` entry of an SQS event as a :class:`Message` (ids as the SQS backend
    reports them, so a line is named the same whether ``rtdp convert`` or Lambda read it)."""
    attrs = record.get("attributes", {})
    user = {k: v.get("stringValue") for k, v in record.get("messageAttributes", {}).items()}
    line_count = user.get(LINE_COUNT_ATTRIBUTE)
    return Message(
        message_id=user.get(MESSAGE_ID_ATTRIBUTE) or record["messageId"],
        receipt=record["receiptHandle"],
        body=record["body"].encode("utf-8"),
        receive_count=int(attrs.get("ApproximateReceiveCount", 1)),
        sent_at=int(attrs.get("SentTimestamp", 0)) / 1000.0,
        attributes={} if line_count is None else {LINE_COUNT_ATTRIBUTE: str(int(line_count))},
    )


def handle(event: dict[str, Any], lake: Lake, settings: Settings) -> dict[str, Any]:
    """Convert the event's messages; return the partial batch response."""
    failed: list[str] = []
    messages: list[Message] = []
    sqs_ids: dict[str, str] = {}  # receipt → SQS messageId, what Lambda wants back
    for record in event.get("Records", []):
        try:
            message = message_from_record(record)
        except (KeyError, TypeError, ValueError, AttributeError, UnicodeError):
            log.exception("unreadable record %s", record.get("messageId"))
            failed.append(str(record.get("messageId")))
            continue
        messages.append(message)
        sqs_ids[message.receipt] = record["messageId"]
    queue = EventQueue(messages, settings.max_message_bytes)
    converter = Converter(queue, lake, settings)
    try:
        stats = converter.run(follow=False)
    finally:
        converter.close()
    failed += [sqs_ids[m.receipt] for m in messages if m.receipt not in queue.acknowledged]
    log.info("%s", json.dumps({**stats.as_dict(), "failed_items": len(failed)}))
    return {"batchItemFailures": [{"itemIdentifier": item} for item in failed]}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point."""
    global _lake, _settings
    if _settings is None or _lake is None:
        _settings = Settings.from_env()
        if not _settings.lake_uri:
            raise ConfigError("RTDP_LAKE_URI must name the lake (s3://bucket/prefix)")
        _lake = open_lake(_settings.lake_uri)
    return handle(event, _lake, _settings)
