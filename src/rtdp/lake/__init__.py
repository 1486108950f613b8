"""The lake seam: a Parquet store with atomic writes, chosen by ``RTDP_LAKE_URI``.

- ``file:///abs/path`` (or a bare path) — the embedded default (:mod:`rtdp.lake.local`)
- ``s3://bucket/prefix`` — Amazon S3 or an S3-compatible server (:mod:`rtdp.lake.s3`)

Layout under the root, the same on every backend::

    events/event_date=YYYY-MM-DD/<UTC time>-<writer>-<seq>.parquet      valid events
    quarantine/seen_date=YYYY-MM-DD/<UTC time>-<writer>-<seq>.parquet   rejected lines

File names sort by time of writing and are unique across writers.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol
from urllib.parse import urlparse

import pyarrow as pa

from rtdp.exceptions import UnsupportedBackendError

EVENTS_PREFIX: Final = "events"
QUARANTINE_PREFIX: Final = "quarantine"


@dataclass(frozen=True)
class LakeFile:
    path: str  # relative to the lake root, with forward slashes
    size: int
    version: str  # changes when the object changes (mtime+size locally, ETag on S3)


class Lake(Protocol):
    uri: str

    def write_parquet(self, path: str, table: pa.Table) -> LakeFile:
        """Write ``table`` to ``path`` so that it appears whole or not at all, and is durable
        when this returns."""
        ...

    def list(self, prefix: str) -> Iterator[LakeFile]: ...

    def read_parquet(self, path: str, columns: Sequence[str] | None = None) -> pa.Table: ...


class FileNamer:
    """Unique, time-sortable file names: ``20261128T034500123456Z-<writer>-<seq>.parquet``."""

    def __init__(self, writer: str | None = None) -> None:
        self.writer = writer or f"{os.getpid():x}{uuid.uuid4().hex[:6]}"
        self._seq = 0

    def __call__(self, now: float | None = None) -> str:
        self._seq += 1
        stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        return f"{stamp:%Y%m%dT%H%M%S%fZ}-{self.writer}-{self._seq:06d}.parquet"


def open_lake(uri: str) -> Lake:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        from rtdp.lake.local import LocalLake

        return LocalLake(parsed.path if parsed.scheme else uri)
    if parsed.scheme == "s3":
        try:
            from rtdp.lake.s3 import S3Lake  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise UnsupportedBackendError(f"lake URI {uri!r} needs the S3 backend ({exc})") from exc
        return S3Lake(uri)  # type: ignore[no-any-return,unused-ignore]
    raise UnsupportedBackendError(
        f"RTDP_LAKE_URI {uri!r}: unknown scheme {parsed.scheme!r} (use file:///path or s3://)"
    )
