"""Amazon SQS (or an SQS-compatible server) as the queue, with boto3.

Selected when ``RTDP_QUEUE_URL`` is an ``http(s)://`` queue URL. Configuration is the standard
AWS chain only: credentials from the environment, a profile, or an instance/IRSA/Lambda role;
the region from ``AWS_DEFAULT_REGION``/``AWS_REGION``/the profile (else from the queue URL's
host); the endpoint from ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_SQS`` (botocore reads both).
Unless one of those is set, a queue URL whose host is not AWS's (ElasticMQ, moto, LocalStack)
is taken as its own endpoint.

Semantics match :mod:`rtdp.queue.local`:

- ``send_batch`` packs SendMessageBatch calls of at most 10 entries and at most
  ``max_message_bytes`` of payload (SQS counts a batch's total against the message limit),
  then retries only the entries SQS reports as failed, with bounded exponential backoff;
  a sender fault (the entry itself is bad) fails at once.
- Every message carries ``line_count`` and ``rtdp_message_id`` (a UUID chosen at send time).
  The id is what :class:`~rtdp.queue.Message` reports, so it stays the same across
  redeliveries *and* across dead-letter moves and redrives, where SQS's own MessageId can
  change; a message sent by another client falls back to its SQS MessageId.
- ``receive`` always long-polls (at least 1 s): a short poll samples only some SQS servers
  and may come back empty while messages wait, which would end ``rtdp convert --once`` early.
- Deleting or extending a receipt that is no longer valid (its visibility timeout expired and
  the message went back) is a no-op, as in the local queue: the message will be delivered
  again and its lines are recognised downstream by ``(message_id, line_number)``.
- The dead-letter queue is the one the queue's redrive policy names; ``max_receive_count``
  lives in that policy, not here.
- ``oldest_age_seconds`` is ``None``: SQS publishes ApproximateAgeOfOldestMessage only as a
  CloudWatch metric, not as a queue attribute. ``pending_lines`` is ``None`` too: counting
  lines would mean receiving the messages.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import urlparse

import boto3
import botocore.exceptions

from rtdp.exceptions import ConfigError, MessageTooLargeError, QueueError
from rtdp.queue import LINE_COUNT_ATTRIBUTE, Message, QueueStats

log = logging.getLogger(__name__)

MESSAGE_ID_ATTRIBUTE: Final = "rtdp_message_id"
BATCH_ENTRIES: Final = 10  # SQS's ceiling for every *Batch call and for one receive
MAX_WAIT_SECONDS: Final = 20  # SQS's long-poll ceiling
MAX_VISIBILITY_SECONDS: Final = 43_200  # 12 hours
MAX_ATTEMPTS: Final = 6  # per entry, for entries SQS reports as failed without sender fault
BACKOFF_SECONDS: Final = 0.2  # first retry delay, doubled each attempt
BACKOFF_CAP_SECONDS: Final = 5.0
_MOVE_TASK_POLL_SECONDS: Final = 0.5
_MOVE_TASK_TIMEOUT_SECONDS: Final = 900.0
# Error codes of a receipt handle whose message is no longer held (SQS and its emulators).
_STALE_RECEIPT_CODES: Final = frozenset({
    "ReceiptHandleIsInvalid",
    "AWS.SimpleQueueService.ReceiptHandleIsInvalid",
    "MessageNotInflight",
    "AWS.SimpleQueueService.MessageNotInflight",
    "InvalidParameterValue",
})
_SYSTEM_ATTRIBUTES: Final = ["ApproximateReceiveCount", "SentTimestamp"]

Entry = dict[str, Any]


class SqsQueue:
    def __init__(self, url: str, *, max_message_bytes: int, client: Any = None) -> None:
        self.url = url
        self.max_message_bytes = max_message_bytes
        self.max_receive_batch = BATCH_ENTRIES
        self._client = client if client is not None else sqs_client(url)
        self._dead_letter_url: str | None = None

    # ----------------------------------------------------------------------------- send

    def send_batch(
        self, bodies: Sequence[bytes], attributes: Sequence[dict[str, str]] | None = None
    ) -> list[str]:
        attrs = attributes or [{} for _ in bodies]
        ids = [uuid.uuid4().hex for _ in bodies]
        entries = [
            _send_entry(str(i), body, {**a, MESSAGE_ID_ATTRIBUTE: mid}, self.max_message_bytes)
            for i, (body, a, mid) in enumerate(zip(bodies, attrs, ids, strict=True))
        ]
        for chunk in _pack(entries, self.max_message_bytes):
            self._retry_failed("SendMessageBatch", chunk, lambda es: self._call(
                "send_message_batch", QueueUrl=self.url, Entries=es))
        return ids

    # -------------------------------------------------------------------------- receive

    def receive(
        self, max_messages: int, visibility_timeout_seconds: float, wait_seconds: float = 0.0
    ) -> list[Message]:
        response = self._call(
            "receive_message",
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(BATCH_ENTRIES, max_messages)),
            VisibilityTimeout=_visibility(visibility_timeout_seconds),
            WaitTimeSeconds=max(1, min(MAX_WAIT_SECONDS, math.ceil(wait_seconds))),
            AttributeNames=_SYSTEM_ATTRIBUTES,
            MessageAttributeNames=["All"],
        )
        return [message_from_sqs(m) for m in response.get("Messages", [])]

    def delete_batch(self, receipts: Sequence[str]) -> None:
        for start in range(0, len(receipts), BATCH_ENTRIES):
            chunk = [{"Id": str(i), "ReceiptHandle": r}
                     for i, r in enumerate(receipts[start:start + BATCH_ENTRIES])]
            self._retry_failed("DeleteMessageBatch", chunk, lambda es: self._call(
                "delete_message_batch", QueueUrl=self.url, Entries=es), tolerate_stale=True)

    def change_visibility(self, receipts: Sequence[str], timeout_seconds: float) -> None:
        timeout = _visibility(timeout_seconds)
        for start in range(0, len(receipts), BATCH_ENTRIES):
            chunk = [{"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": timeout}
                     for i, r in enumerate(receipts[start:start + BATCH_ENTRIES])]
            self._retry_failed("ChangeMessageVisibilityBatch", chunk, lambda es: self._call(
                "change_message_visibility_batch", QueueUrl=self.url, Entries=es),
                tolerate_stale=True)

    # ---------------------------------------------------------------- stats and the DLQ

    def stats(self) -> QueueStats:
        attrs = self._attributes(self.url, "ApproximateNumberOfMessages",
                                 "ApproximateNumberOfMessagesNotVisible")
        dead = 0
        dlq = self.dead_letter_url()
        if dlq is not None:
            d = self._attributes(dlq, "ApproximateNumberOfMessages",
                                 "ApproximateNumberOfMessagesNotVisible")
            dead = (int(d.get("ApproximateNumberOfMessages", 0))
                    + int(d.get("ApproximateNumberOfMessagesNotVisible", 0)))
        return QueueStats(
            depth=int(attrs.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            dead_letter=dead,
            oldest_age_seconds=None,  # a CloudWatch metric only (see the module docstring)
        )

    def dead_letter_url(self) -> str | None:
        """The URL of the queue the redrive policy names, or None without a policy."""
        if self._dead_letter_url is None:
            policy = self._attributes(self.url, "RedrivePolicy").get("RedrivePolicy")
            if not policy:
                return None
            arn = json.loads(policy)["deadLetterTargetArn"]
            account, name = arn.split(":")[4], arn.split(":")[5]
            try:
                response = self._call("get_queue_url", QueueName=name,
                                      QueueOwnerAWSAccountId=account)
            except QueueError:  # some emulators know only their own account
                response = self._call("get_queue_url", QueueName=name)
            self._dead_letter_url = str(response["QueueUrl"])
        return self._dead_letter_url

    def redrive_dead_letters(self) -> int:
        """Move every dead-lettered message back: StartMessageMoveTask where the server has
        it (SQS does; it keeps message attributes, hence ``rtdp_message_id``), else
        receive from the DLQ, send here, delete there."""
        dlq = self.dead_letter_url()
        if dlq is None:
            return 0
        arn = self._attributes(dlq, "QueueArn")["QueueArn"]
        try:
            handle = self._client.start_message_move_task(SourceArn=arn)["TaskHandle"]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            log.info("StartMessageMoveTask unavailable (%s); moving messages one by one", exc)
            return self._move_by_hand(dlq)
        return self._await_move_task(arn, handle)

    def _await_move_task(self, source_arn: str, handle: str) -> int:
        deadline = time.monotonic() + _MOVE_TASK_TIMEOUT_SECONDS
        while True:
            tasks = self._call("list_message_move_tasks", SourceArn=source_arn,
                               MaxResults=10).get("Results", [])
            task = next((t for t in tasks if t.get("TaskHandle") in (handle, None)), None)
            status = task.get("Status") if task else "COMPLETED"
            if status == "COMPLETED":
                return int(task.get("ApproximateNumberOfMessagesMoved", 0)) if task else 0
            if status in ("FAILED", "CANCELLED"):
                raise QueueError(f"redrive task {status.lower()}: "
                                 f"{task.get('FailureReason', 'no reason given') if task else ''}")
            if time.monotonic() > deadline:
                raise QueueError(f"redrive task still {status} after "
                                 f"{_MOVE_TASK_TIMEOUT_SECONDS:.0f}s; see ListMessageMoveTasks")
            time.sleep(_MOVE_TASK_POLL_SECONDS)

    def _move_by_hand(self, dlq: str) -> int:
        moved = 0
        while True:
            response = self._call(
                "receive_message", QueueUrl=dlq, MaxNumberOfMessages=BATCH_ENTRIES,
                VisibilityTimeout=60, WaitTimeSeconds=1, MessageAttributeNames=["All"])
            messages = response.get("Messages", [])
            if not messages:
                return moved
            entries = []
            for i, m in enumerate(messages):
                attrs = {k: _plain_attribute(v) for k, v in m.get("MessageAttributes", {}).items()}
                # keep the id the lines were known by, even for messages of other senders
                attrs.setdefault(MESSAGE_ID_ATTRIBUTE,
                                 {"DataType": "String", "StringValue": m["MessageId"]})
                entries.append({"Id": str(i), "MessageBody": m["Body"],
                                "MessageAttributes": attrs})
            self._retry_failed("SendMessageBatch", entries, lambda es: self._call(
                "send_message_batch", QueueUrl=self.url, Entries=es))
            self._retry_failed("DeleteMessageBatch", [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages)
            ], lambda es: self._call("delete_message_batch", QueueUrl=dlq, Entries=es),
                tolerate_stale=True)
            moved += len(messages)

    def close(self) -> None:
        self._client.close()

    # ---------------------------------------------------------------------- internals

    def _attributes(self, url: str, *names: str) -> dict[str, str]:
        response = self._call("get_queue_attributes", QueueUrl=url, AttributeNames=list(names))
        return dict(response.get("Attributes", {}))

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self._client, operation)(**kwargs)  # type: ignore[no-any-return]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise QueueError(f"SQS {operation} on {kwargs.get('QueueUrl', self.url)}: "
                             f"{exc}") from exc

    def _retry_failed(self, operation: str, entries: list[Entry],
                      call: Callable[[list[Entry]], dict[str, Any]],
                      *, tolerate_stale: bool = False) -> None:
        """Run a *Batch call; retry only its failed entries (with backoff) until none is
        left. A sender fault is final: raised, or logged if it is a stale receipt and
        ``tolerate_stale``."""
        pending = entries
        for attempt in range(MAX_ATTEMPTS):
            failed = call(pending).get("Failed", [])
            if not failed:
                return
            retry: list[dict[str, Any]] = []
            for f in failed:
                if f.get("SenderFault"):
                    if tolerate_stale and f.get("Code") in _STALE_RECEIPT_CODES:
                        log.warning("%s: receipt no longer held (%s); the message will be"
                                    " delivered again", operation, f.get("Code"))
                        continue
                    raise QueueError(f"SQS {operation} refused entry {f.get('Id')}: "
                                     f"{f.get('Code')}: {f.get('Message', '')}")
                retry.append(f)
            if not retry:
                return
            ids = {f["Id"] for f in retry}
            pending = [e for e in pending if e["Id"] in ids]
            if attempt + 1 < MAX_ATTEMPTS:
                time.sleep(min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2 ** attempt))
        codes = sorted({str(f.get("Code")) for f in retry})
        raise QueueError(f"SQS {operation}: {len(pending)} entries still failing after "
                         f"{MAX_ATTEMPTS} attempts ({', '.join(codes)})")


def sqs_client(url: str) -> Any:
    """A boto3 SQS client configured the standard way, for the queue at ``url``."""
    session = boto3.session.Session()
    host = urlparse(url).hostname or ""
    region = session.region_name or os.environ.get("AWS_REGION") or _region_from_host(host)
    if region is None:
        raise ConfigError(f"no AWS region for {url}: set AWS_REGION or AWS_DEFAULT_REGION")
    kwargs: dict[str, Any] = {"region_name": region}
    if not _is_aws_host(host) and not _endpoint_configured():
        # An emulator's queue URL names its endpoint; AWS's never needs one.
        parsed = urlparse(url)
        kwargs["endpoint_url"] = f"{parsed.scheme}://{parsed.netloc}"
    return session.client("sqs", **kwargs)


def message_from_sqs(m: dict[str, Any]) -> Message:
    """A ReceiveMessage entry as a :class:`Message`."""
    system = m.get("Attributes", {})
    user = {k: v.get("StringValue", "") for k, v in m.get("MessageAttributes", {}).items()}
    return Message(
        message_id=user.get(MESSAGE_ID_ATTRIBUTE) or m["MessageId"],
        receipt=m["ReceiptHandle"],
        body=m["Body"].encode("utf-8"),
        receive_count=int(system.get("ApproximateReceiveCount", 1)),
        sent_at=int(system.get("SentTimestamp", 0)) / 1000.0,
        attributes={k: v for k, v in user.items() if k == LINE_COUNT_ATTRIBUTE},
    )


def _send_entry(entry_id: str, body: bytes, attributes: dict[str, str],
                max_message_bytes: int) -> Entry:
    if len(body) > max_message_bytes:
        raise MessageTooLargeError(
            f"message of {len(body)} bytes is over the {max_message_bytes}-byte limit")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QueueError(f"an SQS message body must be UTF-8 text: {exc}") from exc
    return {
        "Id": entry_id,
        "MessageBody": text,
        "MessageAttributes": {
            name: {"DataType": "Number" if name == LINE_COUNT_ATTRIBUTE else "String",
                   "StringValue": value}
            for name, value in attributes.items()
        },
    }


def _payload_bytes(entry: Entry) -> int:
    """What SQS counts against the size limit: the body plus every attribute's name, type
    and value."""
    size = len(entry["MessageBody"].encode("utf-8"))
    for name, attr in entry.get("MessageAttributes", {}).items():
        size += len(name.encode()) + len(attr["DataType"].encode())
        size += len(attr.get("StringValue", "").encode())
    return size


def _pack(entries: list[Entry], max_bytes: int) -> list[list[Entry]]:
    """Consecutive runs of at most 10 entries and ``max_bytes`` of payload (an entry larger
    than that alone travels alone)."""
    chunks: list[list[Entry]] = []
    chunk: list[Entry] = []
    size = 0
    for entry in entries:
        n = _payload_bytes(entry)
        if chunk and (len(chunk) == BATCH_ENTRIES or size + n > max_bytes):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(entry)
        size += n
    if chunk:
        chunks.append(chunk)
    return chunks


def _plain_attribute(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}


def _visibility(seconds: float) -> int:
    return max(0, min(MAX_VISIBILITY_SECONDS, math.ceil(seconds)))


def _is_aws_host(host: str) -> bool:
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


def _region_from_host(host: str) -> str | None:
    """``sqs.eu-west-1.amazonaws.com`` → ``eu-west-1``."""
    parts = host.split(".")
    if _is_aws_host(host) and len(parts) >= 4 and parts[0] == "sqs":
        return parts[1]
    return None


def _endpoint_configured() -> bool:
    return bool(os.environ.get("AWS_ENDPOINT_URL_SQS") or os.environ.get("AWS_ENDPOINT_URL"))
