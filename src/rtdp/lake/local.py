"""The embedded lake: a directory of Parquet files.

Atomicity: each file is written under ``_tmp/`` on the same filesystem, fsynced, then renamed
into place (rename is atomic on POSIX) and the directory fsynced. Readers and the loader never
look inside ``_tmp/``; leftovers of a killed writer are removed when older than an hour.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.parquet as pq

from rtdp.exceptions import LakeError
from rtdp.lake import LakeFile

_TMP: Final = "_tmp"
_STALE_TMP_SECONDS: Final = 3600


class LocalLake:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.uri = f"file://{self.root.resolve()}"
        (self.root / _TMP).mkdir(parents=True, exist_ok=True)
        self._sweep_tmp()

    def _sweep_tmp(self) -> None:
        cutoff = time.time() - _STALE_TMP_SECONDS
        for leftover in (self.root / _TMP).iterdir():
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
            except FileNotFoundError:
                pass

    def write_parquet(self, path: str, table: pa.Table) -> LakeFile:
        final = self.root / path
        tmp = self.root / _TMP / f"{uuid.uuid4().hex}.parquet"
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                pq.write_table(table, fh, compression="zstd")
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise LakeError(f"cannot write {final}: {exc}") from exc
        return self._describe(path, final.stat())

    def list(self, prefix: str) -> Iterator[LakeFile]:
        base = self.root / prefix
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d != _TMP)
            for name in sorted(filenames):
                if not name.endswith(".parquet"):
                    continue
                full = Path(dirpath) / name
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue
                yield self._describe(full.relative_to(self.root).as_posix(), st)

    def read_parquet(self, path: str, columns: Sequence[str] | None = None) -> pa.Table:
        try:
            return pq.read_table(self.root / path,
                                 columns=None if columns is None else [*columns])
        except (OSError, pa.ArrowInvalid) as exc:
            raise LakeError(f"cannot read {self.root / path}: {exc}") from exc

    @staticmethod
    def _describe(path: str, st: os.stat_result) -> LakeFile:
        return LakeFile(path=path, size=st.st_size, version=f"{st.st_mtime_ns:x}-{st.st_size:x}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
