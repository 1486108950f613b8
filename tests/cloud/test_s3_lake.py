"""The S3 lake backend (src/rtdp/lake/s3.py) against S3 emulators: moto and MinIO."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

from rtdp.exceptions import LakeError
from rtdp.lake import EVENTS_PREFIX, QUARANTINE_PREFIX, FileNamer, open_lake
from rtdp.lake.s3 import S3Lake
from tests.cloud.conftest import S3Server


def _table(n: int, start: int = 0) -> pa.Table:
    return pa.table({
        "event_id": [f"e{i}" for i in range(start, start + n)],
        "event_timestamp": pa.array(
            [dt.datetime(2026, 9, 21, 12, 0, i % 60) for i in range(n)], pa.timestamp("us")),
    })


def test_write_list_read_and_footer_rows(s3: S3Server) -> None:
    bucket = s3.create_bucket()
    lake = open_lake(f"s3://{bucket}/lake/v1")
    assert isinstance(lake, S3Lake)
    assert lake.uri == f"s3://{bucket}/lake/v1"
    namer = FileNamer("test")
    paths = [f"{EVENTS_PREFIX}/event_date=2026-09-21/{namer()}" for _ in range(3)]
    written = [lake.write_parquet(p, _table(5 + i, start=100 * i)) for i, p in enumerate(paths)]
    quarantined = lake.write_parquet(f"{QUARANTINE_PREFIX}/seen_date=2026-09-21/{namer()}",
                                     _table(1))

    listed = list(lake.list(EVENTS_PREFIX))
    assert listed == written  # same paths, sizes and versions (ETags), in key order
    assert [f.path for f in lake.list(QUARANTINE_PREFIX)] == [quarantined.path]
    assert all(f.version and f.size > 0 for f in listed)
    assert lake.read_parquet(paths[1]).equals(_table(6, start=100))
    assert [lake.parquet_rows(p) for p in paths] == [5, 6, 7]

    # keys live under the prefix, nothing else in the bucket
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == sorted(f"lake/v1/{f.path}" for f in [*written, quarantined])


def test_listing_pages_past_a_thousand_keys_and_skips_non_parquet(s3: S3Server) -> None:
    bucket = s3.create_bucket()
    client = s3.client()
    # Written directly, in parallel (cheap): the lake only has to list them.
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: client.put_object(
            Bucket=bucket, Key=f"events/event_date=2026-01-01/{i:05d}.parquet", Body=b"x"),
            range(1003)))
    client.put_object(Bucket=bucket, Key="events/event_date=2026-01-01/_SUCCESS", Body=b"")
    client.put_object(Bucket=bucket, Key="eventsXYZ/not-under-the-prefix.parquet", Body=b"x")
    lake = open_lake(f"s3://{bucket}")
    names = [f.path for f in lake.list(EVENTS_PREFIX)]
    assert len(names) == 1003
    assert names == sorted(names)


def test_rewriting_a_key_changes_its_version(s3: S3Server) -> None:
    lake = open_lake(f"s3://{s3.create_bucket()}/p")
    first = lake.write_parquet("events/event_date=2026-01-01/a.parquet", _table(1))
    second = lake.write_parquet("events/event_date=2026-01-01/a.parquet", _table(2))
    assert first.path == second.path
    assert first.version != second.version
    [listed] = lake.list(EVENTS_PREFIX)
    assert listed.version == second.version


def test_errors_are_lake_errors(s3: S3Server) -> None:
    lake = open_lake("s3://rtdp-no-such-bucket-here/p")
    with pytest.raises(LakeError):
        lake.write_parquet("events/x.parquet", _table(1))
    with pytest.raises(LakeError):
        list(lake.list(EVENTS_PREFIX))
    good = open_lake(f"s3://{s3.create_bucket()}")
    with pytest.raises(LakeError):
        good.read_parquet("events/missing.parquet")
