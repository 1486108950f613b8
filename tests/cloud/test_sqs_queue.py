"""The SQS queue backend (src/rtdp/queue/sqs.py) against SQS emulators: moto and ElasticMQ.

The same promises as the SQLite queue (tests/unit/test_queue.py): visibility timeouts, receive
counts, dead-lettering by the queue's redrive policy and redrive back, batch limits. Partial
batch failures cannot be provoked on an emulator, so one test injects them through botocore's
event hooks: the server really receives only the entries reported as successful.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from rtdp.exceptions import MessageTooLargeError, QueueError
from rtdp.queue import LINE_COUNT_ATTRIBUTE, Message, open_queue
from rtdp.queue.sqs import BATCH_ENTRIES, SqsQueue
from tests.cloud.conftest import SqsServer

MAX_BYTES = 70 * 1024
LONG = 600  # a visibility timeout no test outlives
SHORT = 2  # SQS timeouts are whole seconds; a receive long-polls for 1 s
PAST_SHORT = 2.5


@pytest.fixture
def queue(sqs: SqsServer) -> Iterator[SqsQueue]:
    q = open_queue(sqs.create_queue(max_receive_count=2), max_message_bytes=MAX_BYTES)
    assert isinstance(q, SqsQueue)
    yield q
    q.close()


def _receive_all(q: SqsQueue, visibility: float = LONG, rounds: int = 50) -> list[Message]:
    out: list[Message] = []
    for _ in range(rounds):
        batch = q.receive(10, visibility)
        if not batch:
            break
        out.extend(batch)
    return out


def test_round_trip_keeps_ids_bodies_and_line_counts(queue: SqsQueue) -> None:
    bodies = [b'{"event_id": "a"}', b'{"event_id": "b"}\n{"event_id": "c"}']
    ids = queue.send_batch(bodies, [{LINE_COUNT_ATTRIBUTE: "1"}, {LINE_COUNT_ATTRIBUTE: "2"}])
    assert len(set(ids)) == 2

    got = _receive_all(queue)
    assert {m.message_id: m.body for m in got} == dict(zip(ids, bodies, strict=True))
    assert {m.body: m.attributes for m in got}[bodies[1]] == {LINE_COUNT_ATTRIBUTE: "2"}
    assert all(m.receive_count == 1 and m.sent_at > 1e9 for m in got)

    stats = queue.stats()
    assert (stats.depth, stats.in_flight, stats.dead_letter) == (0, 2, 0)
    assert stats.oldest_age_seconds is None  # a CloudWatch metric, not a queue attribute

    queue.delete_batch([m.receipt for m in got])
    stats = queue.stats()
    assert (stats.depth, stats.in_flight) == (0, 0)


def test_unacknowledged_message_comes_back_with_the_same_id(queue: SqsQueue) -> None:
    [sent] = queue.send_batch([b"x"])
    [first] = queue.receive(10, SHORT)
    assert queue.receive(10, SHORT) == []  # invisible while held
    time.sleep(PAST_SHORT)
    [again] = queue.receive(10, LONG)
    assert again.message_id == first.message_id == sent
    assert again.receipt != first.receipt
    assert again.receive_count == 2


def test_change_visibility_extends_and_releases(queue: SqsQueue) -> None:
    queue.send_batch([b"held"])
    [held] = queue.receive(10, SHORT)
    queue.change_visibility([held.receipt], LONG)
    time.sleep(PAST_SHORT)
    assert queue.receive(10, SHORT) == []  # still held: the extension took
    queue.change_visibility([held.receipt], 0)
    [back] = queue.receive(10, LONG)
    assert back.message_id == held.message_id


def test_dead_letter_by_redrive_policy_then_redrive_back(queue: SqsQueue) -> None:
    [sent] = queue.send_batch([b"poison"], [{LINE_COUNT_ATTRIBUTE: "1"}])
    for _ in range(2):  # maxReceiveCount = 2
        assert [m.message_id for m in queue.receive(10, SHORT)] == [sent]
        time.sleep(PAST_SHORT)
    assert queue.receive(10, SHORT) == []  # a third receive moves it to the DLQ instead
    stats = queue.stats()
    assert (stats.depth, stats.in_flight, stats.dead_letter) == (0, 0, 1)

    assert queue.redrive_dead_letters() == 1
    [back] = _receive_all(queue)
    assert (back.message_id, back.body, back.attributes) == (
        sent, b"poison", {LINE_COUNT_ATTRIBUTE: "1"})
    assert queue.stats().dead_letter == 0
    assert queue.redrive_dead_letters() == 0


def _record_calls(q: SqsQueue, operation: str) -> list[list[dict[str, Any]]]:
    calls: list[list[dict[str, Any]]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append([dict(e) for e in params["Entries"]])

    q._client.meta.events.register(f"provide-client-params.sqs.{operation}", record)
    return calls


def _payload(entry: dict[str, Any]) -> int:
    attrs = entry.get("MessageAttributes", {})
    return len(entry["MessageBody"].encode()) + sum(
        len(k) + len(v["DataType"]) + len(v["StringValue"]) for k, v in attrs.items())


def test_send_batch_packs_within_entry_and_size_limits(queue: SqsQueue) -> None:
    small = [f"s{i}".encode() for i in range(23)]
    big = [bytes([65 + i]) * (20 * 1024) for i in range(7)]  # three fit under 70 KiB
    calls = _record_calls(queue, "SendMessageBatch")
    ids = queue.send_batch(small + big)
    assert len(ids) == 30
    assert all(len(c) <= BATCH_ENTRIES for c in calls)
    assert all(sum(_payload(e) for e in c) <= MAX_BYTES for c in calls)
    assert [len(c) for c in calls] == [10, 10, 6, 3, 1]  # the 4th big body would not fit
    got = _receive_all(queue)
    assert sorted(m.body for m in got) == sorted(small + big)
    assert {m.message_id for m in got} == set(ids)


def test_a_body_over_the_limit_is_refused_before_anything_is_sent(queue: SqsQueue) -> None:
    with pytest.raises(MessageTooLargeError):
        queue.send_batch([b"fine", b"x" * (MAX_BYTES + 1)])
    assert queue.stats().depth == 0


def _fail_entries_once(q: SqsQueue, ids: set[str], *, sender_fault: bool) -> None:
    """Drop ``ids`` from the first SendMessageBatch request before it leaves, and report them
    as failed in its response, as SQS does when part of a batch fails."""
    dropped: list[str] = []

    def drop(params: dict[str, Any], **_: Any) -> None:
        if not dropped:
            dropped.extend(e["Id"] for e in params["Entries"] if e["Id"] in ids)
            params["Entries"] = [e for e in params["Entries"] if e["Id"] not in ids]

    def report(parsed: dict[str, Any], **_: Any) -> None:
        if dropped and "injected" not in dropped:
            parsed.setdefault("Failed", []).extend(
                {"Id": i, "SenderFault": sender_fault, "Code": "InternalError",
                 "Message": "injected"} for i in dropped)
            dropped.append("injected")

    q._client.meta.events.register("provide-client-params.sqs.SendMessageBatch", drop)
    q._client.meta.events.register("after-call.sqs.SendMessageBatch",
                                   lambda parsed, **kw: report(parsed))


def test_only_failed_entries_are_retried(queue: SqsQueue) -> None:
    bodies = [f"m{i}".encode() for i in range(10)]
    calls = _record_calls(queue, "SendMessageBatch")  # what rtdp asked for, before the drop
    _fail_entries_once(queue, {"3", "7"}, sender_fault=False)
    ids = queue.send_batch(bodies)
    assert [sorted(e["Id"] for e in c) for c in calls] == [
        [str(i) for i in range(10)], ["3", "7"]]
    got = _receive_all(queue)
    assert sorted(m.body for m in got) == sorted(bodies)  # each exactly once
    assert {m.message_id for m in got} == set(ids)


def test_a_sender_fault_is_not_retried(queue: SqsQueue) -> None:
    calls = _record_calls(queue, "SendMessageBatch")
    _fail_entries_once(queue, {"1"}, sender_fault=True)
    with pytest.raises(QueueError, match="refused entry 1"):
        queue.send_batch([b"a", b"b"])
    assert len(calls) == 1


def test_delete_and_visibility_in_batches_of_ten(queue: SqsQueue) -> None:
    queue.send_batch([f"d{i}".encode() for i in range(23)])
    got = _receive_all(queue)
    assert len(got) == 23
    visibility = _record_calls(queue, "ChangeMessageVisibilityBatch")
    deletes = _record_calls(queue, "DeleteMessageBatch")
    queue.change_visibility([m.receipt for m in got], LONG)
    queue.delete_batch([m.receipt for m in got])
    assert [len(c) for c in visibility] == [len(c) for c in deletes] == [10, 10, 3]
    stats = queue.stats()
    assert (stats.depth, stats.in_flight) == (0, 0)
