"""The embedded SQLite queue against the SQS semantics it promises (src/rtdp/queue/local.py).

Real SQLite files in tmp_path, real child processes for durability and concurrency. Visibility
timeouts are short (0.2 s) and the tests sleep past them; no test asserts on elapsed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtdp.exceptions import MessageTooLargeError, UnsupportedBackendError
from rtdp.queue import LINE_COUNT_ATTRIBUTE, Queue, open_queue
from rtdp.queue.local import SqliteQueue

SHORT = 0.2  # visibility timeout that tests wait out
PAST_SHORT = 0.35  # comfortably longer than SHORT
LONG = 600.0  # visibility timeout no test outlives
MAX_BYTES = 4096


@pytest.fixture
def queue_path(tmp_path: Path) -> Path:
    return tmp_path / "q" / "queue.sqlite"


@pytest.fixture
def queue(queue_path: Path) -> Iterator[Queue]:
    q = open_queue(f"sqlite://{queue_path}", max_message_bytes=MAX_BYTES, max_receive_count=3)
    yield q
    q.close()


def _drain_bodies(q: Queue, timeout: float = LONG) -> list[bytes]:
    out: list[bytes] = []
    while batch := q.receive(10, timeout):
        out.extend(m.body for m in batch)
    return out


def test_open_queue_picks_sqlite_and_rejects_unknown_scheme(queue_path: Path) -> None:
    q = open_queue(f"sqlite://{queue_path}", max_message_bytes=MAX_BYTES)
    try:
        assert isinstance(q, SqliteQueue)
        assert queue_path.exists()
    finally:
        q.close()
    with pytest.raises(UnsupportedBackendError):
        open_queue("redis://localhost/0", max_message_bytes=MAX_BYTES)


def test_send_receive_delete_round_trip(queue: Queue) -> None:
    ids = queue.send_batch([b"one", b"two\nlines"], [{LINE_COUNT_ATTRIBUTE: "1"},
                                                    {LINE_COUNT_ATTRIBUTE: "2"}])
    assert len(ids) == 2 and len(set(ids)) == 2

    got = queue.receive(10, LONG)
    assert sorted(m.message_id for m in got) == sorted(ids)
    by_body = {m.body: m for m in got}
    assert set(by_body) == {b"one", b"two\nlines"}
    assert by_body[b"two\nlines"].attributes == {LINE_COUNT_ATTRIBUTE: "2"}
    assert all(m.receive_count == 1 for m in got)
    assert all(m.sent_at > 0 for m in got)

    stats = queue.stats()
    assert (stats.depth, stats.in_flight, stats.dead_letter) == (0, 2, 0)
    assert queue.receive(10, LONG) == []  # invisible while held

    queue.delete_batch([m.receipt for m in got])
    stats = queue.stats()
    assert (stats.depth, stats.in_flight, stats.dead_letter) == (0, 0, 0)
    assert stats.oldest_age_seconds is None
    assert stats.pending_lines == 0


def test_receive_honours_max_messages_and_fifo_order(queue: Queue) -> None:
    queue.send_batch([b"a", b"b", b"c"])
    first = queue.receive(2, LONG)
    assert [m.body for m in first] == [b"a", b"b"]
    assert [m.body for m in queue.receive(2, LONG)] == [b"c"]


def test_message_id_is_stable_across_redelivery_while_receipt_changes(queue: Queue) -> None:
    (mid,) = queue.send_batch([b"x"])
    (first,) = queue.receive(1, SHORT)
    time.sleep(PAST_SHORT)
    (second,) = queue.receive(1, SHORT)
    assert first.message_id == second.message_id == mid
    assert first.receipt != second.receipt
    assert first.body == second.body == b"x"


def test_visibility_timeout_expiry_redelivers_and_counts_receives(queue: Queue) -> None:
    queue.send_batch([b"x"])
    (m1,) = queue.receive(1, SHORT)
    assert m1.receive_count == 1
    time.sleep(PAST_SHORT)
    assert queue.stats().depth == 1  # visible again
    (m2,) = queue.receive(1, SHORT)
    assert m2.receive_count == 2
    time.sleep(PAST_SHORT)
    (m3,) = queue.receive(1, LONG)
    assert m3.receive_count == 3


def test_change_visibility_extends_the_hold(queue: Queue) -> None:
    queue.send_batch([b"x"])
    (m,) = queue.receive(1, SHORT)
    queue.change_visibility([m.receipt], LONG)
    time.sleep(PAST_SHORT)
    assert queue.receive(1, LONG) == []
    stats = queue.stats()
    assert (stats.depth, stats.in_flight) == (0, 1)


def test_change_visibility_to_zero_releases_at_once(queue: Queue) -> None:
    queue.send_batch([b"x"])
    (m,) = queue.receive(1, LONG)
    queue.change_visibility([m.receipt], 0)
    (again,) = queue.receive(1, LONG)
    assert again.message_id == m.message_id and again.receive_count == 2


def test_stale_receipt_neither_deletes_nor_extends_a_message_someone_else_holds(
    queue: Queue,
) -> None:
    queue.send_batch([b"x"])
    (old,) = queue.receive(1, SHORT)
    time.sleep(PAST_SHORT)
    (new,) = queue.receive(1, SHORT)  # another consumer now holds it

    queue.delete_batch([old.receipt])
    queue.change_visibility([old.receipt], LONG)
    assert queue.stats().in_flight == 1
    time.sleep(PAST_SHORT)
    # the stale change_visibility did not extend the new holder's lease
    (third,) = queue.receive(1, LONG)
    assert third.message_id == new.message_id

    queue.delete_batch([third.receipt])
    assert queue.stats().in_flight == 0


def test_max_receives_dead_letters_then_redrive_brings_back(queue: Queue) -> None:
    # max_receive_count=3 (fixture): three deliveries, then the dead-letter queue
    queue.send_batch([b"poison"], [{LINE_COUNT_ATTRIBUTE: "7"}])
    for expected_count in (1, 2, 3):
        (m,) = queue.receive(10, SHORT)
        assert (m.body, m.receive_count) == (b"poison", expected_count)
        time.sleep(PAST_SHORT)
    assert queue.receive(10, LONG) == []  # the fourth receive dead-letters it instead

    stats = queue.stats()
    assert (stats.depth, stats.in_flight, stats.dead_letter) == (0, 0, 1)
    assert stats.dead_letter_lines == 7
    assert stats.pending_lines == 0
    assert stats.oldest_age_seconds is None  # the dead-letter queue does not count
    assert queue.receive(10, LONG) == []  # still not delivered

    assert queue.redrive_dead_letters() == 1
    stats = queue.stats()
    assert (stats.depth, stats.dead_letter, stats.dead_letter_lines) == (1, 0, 0)
    assert stats.pending_lines == 7
    (back,) = queue.receive(10, LONG)
    assert back.body == b"poison"
    assert back.receive_count == 1  # a redriven message gets a fresh set of receives
    assert queue.redrive_dead_letters() == 0


def test_pending_lines_sums_line_count_of_waiting_and_in_flight_messages(queue: Queue) -> None:
    queue.send_batch(
        [b"a", b"b", b"c", b"d"],
        [{LINE_COUNT_ATTRIBUTE: "3"}, {LINE_COUNT_ATTRIBUTE: "5"}, {},
         {LINE_COUNT_ATTRIBUTE: "11"}],
    )
    assert queue.stats().pending_lines == 19  # the message without the attribute adds 0
    held = queue.receive(2, LONG)
    stats = queue.stats()
    assert (stats.depth, stats.in_flight, stats.pending_lines) == (2, 2, 19)
    queue.delete_batch([m.receipt for m in held])
    assert queue.stats().pending_lines == 19 - sum(
        int(m.attributes.get(LINE_COUNT_ATTRIBUTE, "0")) for m in held
    )


def test_oversize_body_raises_and_sends_nothing_of_the_batch(queue: Queue) -> None:
    queue.send_batch([b"x" * MAX_BYTES])  # exactly the limit is fine
    with pytest.raises(MessageTooLargeError):
        queue.send_batch([b"small", b"x" * (MAX_BYTES + 1)])
    bodies = _drain_bodies(queue)
    assert bodies == [b"x" * MAX_BYTES]  # all or nothing per call


def test_oldest_age_is_reported_for_waiting_messages(queue: Queue) -> None:
    assert queue.stats().oldest_age_seconds is None
    queue.send_batch([b"x"])
    age = queue.stats().oldest_age_seconds
    assert age is not None and age >= 0


def test_messages_survive_reopening_the_file(queue_path: Path) -> None:
    q = SqliteQueue(queue_path, max_message_bytes=MAX_BYTES)
    (mid,) = q.send_batch([b"kept"])
    q.close()
    q = SqliteQueue(queue_path, max_message_bytes=MAX_BYTES)
    try:
        (m,) = q.receive(1, LONG)
        assert (m.message_id, m.body) == (mid, b"kept")
    finally:
        q.close()


def test_dead_lettering_does_not_hide_deliverable_messages(queue_path: Path) -> None:
    q = SqliteQueue(queue_path, max_message_bytes=MAX_BYTES, max_receive_count=1)
    try:
        q.send_batch([b"poison"])
        (_held,) = q.receive(1, SHORT)
        time.sleep(PAST_SHORT)  # poison is visible again, ahead of the next message
        q.send_batch([b"good"])
        got = q.receive(1, LONG)
        assert [m.body for m in got] == [b"good"]
    finally:
        q.close()


# --- across processes ------------------------------------------------------------------------

_CHILD_SEND = textwrap.dedent(
    """
    import sys, time
    from rtdp.queue.local import SqliteQueue
    q = SqliteQueue(sys.argv[1], max_message_bytes=4096)
    ids = q.send_batch([b"from-child-1", b"from-child-2"], [{"line_count": "4"}, {}])
    print(" ".join(ids), flush=True)
    time.sleep(600)  # never closes: the parent kills us
    """
)

_CHILD_RECEIVE = textwrap.dedent(
    """
    import json, sys
    from rtdp.queue.local import SqliteQueue
    q = SqliteQueue(sys.argv[1], max_message_bytes=4096)
    print("ready", flush=True)
    sys.stdin.readline()  # start together with the other receiver
    got = []
    while batch := q.receive(int(sys.argv[2]), 600.0):
        got.extend((m.message_id, m.body.decode(), m.receive_count) for m in batch)
    print(json.dumps(got), flush=True)
    """
)


def test_message_sent_by_a_killed_process_is_still_there(queue_path: Path) -> None:
    SqliteQueue(queue_path, max_message_bytes=MAX_BYTES).close()  # create the file
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD_SEND, str(queue_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ids = child.stdout.readline().split()  # send_batch has returned
        assert len(ids) == 2
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()

    q = SqliteQueue(queue_path, max_message_bytes=MAX_BYTES)
    try:
        assert q.stats().pending_lines == 4
        got = q.receive(10, LONG)
        assert sorted((m.message_id, m.body) for m in got) == sorted(
            zip(ids, [b"from-child-1", b"from-child-2"], strict=True)
        )
    finally:
        q.close()


@pytest.mark.parametrize("per_receive", [1, 7])
def test_two_processes_never_receive_the_same_message(queue_path: Path, per_receive: int) -> None:
    q = SqliteQueue(queue_path, max_message_bytes=MAX_BYTES)
    bodies = [f"m{i}".encode() for i in range(150)]
    for start in range(0, len(bodies), 10):
        q.send_batch(bodies[start : start + 10])

    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD_RECEIVE, str(queue_path), str(per_receive)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [json.loads(child.communicate(timeout=60)[0]) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert all(child.returncode == 0 for child in children)

    ids = [[mid for mid, _, _ in r] for r in results]
    assert not set(ids[0]) & set(ids[1])
    received = sorted(body.encode() for r in results for _, body, _ in r)
    assert received == sorted(bodies)  # each exactly once, across both
    assert all(count == 1 for r in results for _, _, count in r)
    stats = q.stats()
    assert (stats.depth, stats.in_flight) == (0, 150)
    q.close()
