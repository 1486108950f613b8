"""Amazon S3 (or an S3-compatible server) as the lake, with boto3.

Selected when ``RTDP_LAKE_URI`` is ``s3://bucket/prefix``. Same layout as the local lake
(see :mod:`rtdp.lake`), keys under ``prefix/``.

Atomicity comes with S3: a PUT of one object is all or nothing, and a reader sees either no
object or the whole of it (strong read-after-write consistency), so there is no temp-file
dance. Each file is serialized in memory and sent in one ``PutObject`` (lake files are one
micro-batch, tens of MiB at most); botocore adds a CRC checksum that S3 verifies before it
stores anything. ``LakeFile.version`` is the ETag: the loader's history is keyed by key and
ETag, as Snowpipe's is.

Why boto3 rather than ``pyarrow.fs.S3FileSystem``: listing must return ETags (pyarrow's
``FileInfo`` has none), the SQS backend already uses boto3 so credentials, region and
endpoint resolve the same way for both (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``,
profiles, roles), and boto3 is already in the Lambda runtime.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator, Sequence
from typing import Any, Final
from urllib.parse import urlparse

import boto3
import botocore.exceptions
import pyarrow as pa
import pyarrow.parquet as pq

from rtdp.exceptions import ConfigError, LakeError
from rtdp.lake import LakeFile

_FOOTER_GUESS_BYTES: Final = 64 * 1024  # one ranged GET reads most Parquet footers whole
_PARQUET_MAGIC: Final = b"PAR1"
_S3_ERRORS: Final = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


class S3Lake:
    def __init__(self, uri: str, *, client: Any = None) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigError(f"RTDP_LAKE_URI {uri!r} is not s3://bucket[/prefix]")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._client = client if client is not None else s3_client()

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _path(self, key: str) -> str:
        return key[len(self.prefix) + 1:] if self.prefix else key

    def write_parquet(self, path: str, table: pa.Table) -> LakeFile:
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        data = sink.getvalue()
        try:
            response = self._client.put_object(
                Bucket=self.bucket, Key=self._key(path), Body=data,
                ContentType="application/vnd.apache.parquet",
            )
        except _S3_ERRORS as exc:
            raise LakeError(f"cannot write s3://{self.bucket}/{self._key(path)}: {exc}") from exc
        return LakeFile(path=path, size=len(data), version=_etag(response["ETag"]))

    def list(self, prefix: str) -> Iterator[LakeFile]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket,
                                           Prefix=self._key(prefix.strip("/")) + "/"):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith(".parquet"):
                        yield LakeFile(self._path(key), int(obj["Size"]), _etag(obj["ETag"]))
        except _S3_ERRORS as exc:
            raise LakeError(f"cannot list s3://{self.bucket}/{self._key(prefix)}: {exc}") from exc

    def read_parquet(self, path: str, columns: Sequence[str] | None = None) -> pa.Table:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"]
            return pq.read_table(pa.BufferReader(body.read()),
                                 columns=None if columns is None else [*columns])
        except (*_S3_ERRORS, pa.ArrowInvalid) as exc:
            raise LakeError(f"cannot read s3://{self.bucket}/{self._key(path)}: {exc}") from exc

    def parquet_rows(self, path: str) -> int:
        """Row count from the footer: one ranged GET of the file's tail (two if the footer
        is larger than 64 KiB), never the data."""
        try:
            tail = self._range(path, _FOOTER_GUESS_BYTES)
            (footer_len,) = struct.unpack("<I", tail[-8:-4])
            if tail[-4:] != _PARQUET_MAGIC:
                raise LakeError(f"s3://{self.bucket}/{self._key(path)} is not a Parquet file")
            if footer_len + 8 > len(tail):
                tail = self._range(path, footer_len + 8)
            # The footer alone, framed by the magic bytes, is what the reader needs.
            framed = _PARQUET_MAGIC + tail[-(footer_len + 8):]
            return int(pq.read_metadata(pa.BufferReader(framed)).num_rows)
        except (*_S3_ERRORS, pa.ArrowInvalid, struct.error) as exc:
            raise LakeError(f"cannot read the footer of s3://{self.bucket}/{self._key(path)}:"
                            f" {exc}") from exc

    def _range(self, path: str, last_bytes: int) -> bytes:
        response = self._client.get_object(Bucket=self.bucket, Key=self._key(path),
                                           Range=f"bytes=-{last_bytes}")
        return bytes(response["Body"].read())


def s3_client() -> Any:
    """A boto3 S3 client configured the standard way (region, endpoint, credentials)."""
    session = boto3.session.Session()
    region = session.region_name or os.environ.get("AWS_REGION")
    return session.client("s3", region_name=region)


def _etag(value: str) -> str:
    return value.strip('"')
