"""The embedded queue: SQLite in WAL mode, with SQS semantics.

Why SQLite: it ships with Python, needs no server, is safe for several processes at once
(one writer at a time, readers never blocked), and a committed transaction survives ``kill -9``
of any process. Each operation is one short ``BEGIN IMMEDIATE`` transaction, so a crash leaves
either the state before or the state after, never half.

Semantics follow SQS: a received message is invisible for the visibility timeout and comes
back if not deleted in time; each receive counts; a message received more than
``max_receive_count`` times moves to the dead-letter queue instead of being delivered again.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from rtdp.exceptions import MessageTooLargeError, QueueError
from rtdp.queue import LINE_COUNT_ATTRIBUTE, Message, QueueStats

# Bodies live apart from the state: SQLite rewrites a whole row on UPDATE, and a receive
# updates each message it hands out — with the body in the row that meant rewriting up to
# a MiB per message.
_SCHEMA: Final = """
create table if not exists queue_messages (
    seq integer primary key autoincrement,
    message_id text not null unique,
    line_count integer,
    sent_at real not null,
    visible_at real not null,
    receive_count integer not null default 0,
    receipt text,
    dead integer not null default 0
);
create table if not exists queue_bodies (
    seq integer primary key,
    body blob not null
);
create index if not exists queue_ready on queue_messages (dead, visible_at);
create index if not exists queue_receipt on queue_messages (receipt);
"""
_POLL_SECONDS: Final = 0.05


class SqliteQueue:
    def __init__(self, path: str | os.PathLike[str], *, max_message_bytes: int,
                 max_receive_count: int = 5) -> None:
        self.path = Path(path)
        self.max_message_bytes = max_message_bytes
        self.max_receive_count = max_receive_count
        # As SQS: small receives keep the work shared fairly among several converters.
        self.max_receive_batch = 10
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._db.execute("pragma journal_mode=wal")
            # NORMAL in WAL mode: a commit survives the crash of any process, but the last
            # commits may be lost to a power cut. That is safe for receive, delete and
            # visibility (the message just comes back); send switches to FULL (below).
            self._db.execute("pragma synchronous=normal")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise QueueError(f"cannot open queue database {self.path}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("begin immediate")
        except sqlite3.Error as exc:
            raise QueueError(f"queue {self.path} is busy or broken: {exc}") from exc
        try:
            yield self._db
        except BaseException:
            self._db.execute("rollback")
            raise
        else:
            self._db.execute("commit")

    def send_batch(
        self, bodies: Sequence[bytes], attributes: Sequence[dict[str, str]] | None = None
    ) -> list[str]:
        for body in bodies:
            if len(body) > self.max_message_bytes:
                raise MessageTooLargeError(
                    f"message of {len(body)} bytes is over the {self.max_message_bytes}-byte limit"
                )
        now = time.time()
        ids = [uuid.uuid4().hex for _ in bodies]
        attrs = attributes or [{} for _ in bodies]
        rows = [
            (mid, body, _line_count(a), now, now)
            for mid, body, a in zip(ids, bodies, attrs, strict=True)
        ]
        # FULL: the commit is on disk before send_batch returns, so a producer told "sent"
        # never loses the message, even to a power cut.
        self._db.execute("pragma synchronous=full")
        try:
            with self._write() as db:
                for message_id, body, line_count, sent_at, visible_at in rows:
                    cur = db.execute(
                        "insert into queue_messages"
                        " (message_id, line_count, sent_at, visible_at) values (?, ?, ?, ?)",
                        (message_id, line_count, sent_at, visible_at),
                    )
                    db.execute("insert into queue_bodies (seq, body) values (?, ?)",
                               (cur.lastrowid, body))
        finally:
            self._db.execute("pragma synchronous=normal")
        return ids

    def receive(
        self, max_messages: int, visibility_timeout_seconds: float, wait_seconds: float = 0.0
    ) -> list[Message]:
        deadline = time.monotonic() + wait_seconds
        while True:
            messages = self._receive_once(max_messages, visibility_timeout_seconds)
            if messages or time.monotonic() >= deadline:
                return messages
            time.sleep(_POLL_SECONDS)

    def _receive_once(self, max_messages: int, visibility_timeout: float) -> list[Message]:
        now = time.time()
        out: list[Message] = []
        with self._write() as db:
            # Messages due for the dead-letter queue are moved there as they are met; they must
            # not use up the slots of this receive, so look again until it is full or empty.
            while len(out) < max_messages:
                rows = db.execute(
                    "select m.seq, m.message_id, b.body, m.line_count, m.sent_at, m.receive_count"
                    " from queue_messages m join queue_bodies b using (seq)"
                    " where m.dead = 0 and m.visible_at <= ?"
                    " order by visible_at, seq limit ?",
                    (now, max_messages - len(out)),
                ).fetchall()
                if not rows:
                    break
                for seq, message_id, body, line_count, sent_at, count in rows:
                    if count >= self.max_receive_count:
                        db.execute(
                            "update queue_messages set dead = 1, receipt = null where seq = ?",
                            (seq,),
                        )
                        continue
                    receipt = uuid.uuid4().hex
                    db.execute(
                        "update queue_messages set visible_at = ?, receive_count = ?, receipt = ?"
                        " where seq = ?",
                        (now + visibility_timeout, count + 1, receipt, seq),
                    )
                    attrs = {} if line_count is None else {LINE_COUNT_ATTRIBUTE: str(line_count)}
                    out.append(
                        Message(message_id, receipt, bytes(body), count + 1, sent_at, attrs)
                    )
        return out

    def delete_batch(self, receipts: Sequence[str]) -> None:
        if not receipts:
            return
        with self._write() as db:
            for receipt in receipts:
                row = db.execute("delete from queue_messages where receipt = ? returning seq",
                                 (receipt,)).fetchone()
                if row is not None:
                    db.execute("delete from queue_bodies where seq = ?", (row[0],))

    def change_visibility(self, receipts: Sequence[str], timeout_seconds: float) -> None:
        if not receipts:
            return
        visible_at = time.time() + timeout_seconds
        with self._write() as db:
            db.executemany(
                "update queue_messages set visible_at = ? where receipt = ? and dead = 0",
                [(visible_at, r) for r in receipts],
            )

    def stats(self) -> QueueStats:
        now = time.time()
        row = self._db.execute(
            "select"
            " coalesce(sum(dead = 0 and visible_at <= ?), 0),"
            " coalesce(sum(dead = 0 and visible_at > ?), 0),"
            " coalesce(sum(dead = 1), 0),"
            " min(case when dead = 0 then sent_at end),"
            " coalesce(sum(case when dead = 0 then line_count end), 0),"
            " coalesce(sum(case when dead = 1 then line_count end), 0)"
            " from queue_messages",
            (now, now),
        ).fetchone()
        depth, in_flight, dead, oldest, lines, dead_lines = row
        return QueueStats(
            depth=int(depth),
            in_flight=int(in_flight),
            dead_letter=int(dead),
            oldest_age_seconds=None if oldest is None else max(0.0, now - oldest),
            pending_lines=int(lines),
            dead_letter_lines=int(dead_lines),
        )

    def redrive_dead_letters(self) -> int:
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                "update queue_messages set dead = 0, receive_count = 0, receipt = null,"
                " visible_at = ?"
                " where dead = 1",
                (now,),
            )
            return cur.rowcount

    def close(self) -> None:
        self._db.close()


def _line_count(attributes: dict[str, str]) -> int | None:
    value = attributes.get(LINE_COUNT_ATTRIBUTE)
    return None if value is None else int(value)
