"""The Lambda handler (src/rtdp/aws_lambda.py) on real SQS event payloads.

Messages are sent with the SQS backend and received from an SQS emulator, then shaped into the
event an SQS event source mapping delivers (the documented ``Records[]`` format); the lake is
an S3 emulator. A message that really fails is provoked by a lake that raises for its lines:
the converter itself judges every line, it does not fail on bad data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from rtdp import aws_lambda
from rtdp.lake import EVENTS_PREFIX, QUARANTINE_PREFIX, Lake, LakeFile, open_lake
from rtdp.queue import LINE_COUNT_ATTRIBUTE, open_queue
from rtdp.queue.sqs import SqsQueue
from rtdp.settings import Settings
from tests.cloud.conftest import S3Server, SqsServer


def _event(n: int, tag: str) -> str:
    return json.dumps({"event_id": f"{tag}-{n}", "event_type": "page_view",
                       "event_timestamp": "2026-09-21T10:00:00Z", "anonymous_id": f"a{n}"})


GOOD_1 = "\n".join(_event(i, "m1") for i in range(3))
WITH_REJECTS = "\n".join([_event(0, "m2"), '{"event_id": "m2-bad", "trunc',
                          json.dumps({"event_id": "m2-x", "event_type": "teleport",
                                      "event_timestamp": 1790000000, "anonymous_id": "a"}),
                          _event(1, "m2")])
POISON = "\n".join(_event(i, "m3") for i in range(2))
GOOD_4 = _event(0, "m4")


def _to_lambda_record(m: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A received SQS message as Lambda's SQS event source mapping delivers it."""
    return {
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": {k: str(v) for k, v in m["Attributes"].items()},
        "messageAttributes": {
            name: {"stringValue": v.get("StringValue"), "stringListValues": [],
                   "binaryListValues": [], "dataType": v["DataType"]}
            for name, v in m.get("MessageAttributes", {}).items()
        },
        "md5OfBody": m["MD5OfBody"],
        "md5OfMessageAttributes": m.get("MD5OfMessageAttributes"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


@pytest.fixture
def queue_url(fast_sqs: SqsServer) -> str:
    return fast_sqs.create_queue()


def _send_and_receive_event(sqs: SqsServer, url: str, bodies: list[str]) -> dict[str, Any]:
    q = open_queue(url, max_message_bytes=256 * 1024)
    assert isinstance(q, SqsQueue)
    q.send_batch([b.encode() for b in bodies],
                 [{LINE_COUNT_ATTRIBUTE: str(b.count("\n") + 1)} for b in bodies])
    q.close()
    client = sqs.client()
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    received: list[dict[str, Any]] = []
    while len(received) < len(bodies):
        received += client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=600,
            AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
    order = {b: i for i, b in enumerate(bodies)}
    received.sort(key=lambda m: order[m["Body"]])
    return {"Records": [_to_lambda_record(m, arn) for m in received]}


class PoisonLake:
    """The real lake, except that writing any line of ``message_id`` raises (a bug that
    message triggers)."""

    def __init__(self, lake: Lake, message_id: str) -> None:
        self.lake, self.message_id, self.uri = lake, message_id, lake.uri

    def write_parquet(self, path: str, table: pa.Table) -> LakeFile:
        if self.message_id in table["message_id"].to_pylist():
            raise RuntimeError("poison message")
        return self.lake.write_parquet(path, table)

    def list(self, prefix: str) -> Iterator[LakeFile]:
        return self.lake.list(prefix)

    def read_parquet(self, path: str) -> pa.Table:
        return self.lake.read_parquet(path)

    def parquet_rows(self, path: str) -> int:
        return self.lake.parquet_rows(path)


def _read_all(lake: Lake, prefix: str) -> pa.Table | None:
    tables = [lake.read_parquet(f.path) for f in lake.list(prefix)]
    return pa.concat_tables(tables) if tables else None


def test_only_the_failing_message_is_reported_and_rejects_are_quarantined(
    fast_sqs: SqsServer, fast_s3: S3Server, queue_url: str
) -> None:
    event = _send_and_receive_event(fast_sqs, queue_url, [GOOD_1, WITH_REJECTS, POISON, GOOD_4])
    records = event["Records"]
    poison_rtdp_id = records[2]["messageAttributes"]["rtdp_message_id"]["stringValue"]
    lake = open_lake(f"s3://{fast_s3.create_bucket()}/lake")

    response = aws_lambda.handle(event, PoisonLake(lake, poison_rtdp_id), Settings())

    # only the poison message, named by its SQS messageId as Lambda requires
    assert response == {"batchItemFailures": [{"itemIdentifier": records[2]["messageId"]}]}
    events = _read_all(lake, EVENTS_PREFIX)
    assert events is not None
    assert sorted(set(events["event_id"].to_pylist())) == sorted(
        [f"m1-{i}" for i in range(3)] + ["m2-0", "m2-1", "m4-0"])
    # lines are named by the id the SQS backend reports, not by Lambda's record id
    rtdp_ids = {r["messageAttributes"]["rtdp_message_id"]["stringValue"] for r in records}
    assert set(events["message_id"].to_pylist()) <= rtdp_ids - {poison_rtdp_id}
    quarantine = _read_all(lake, QUARANTINE_PREFIX)
    assert quarantine is not None
    assert sorted(zip(quarantine["line_number"].to_pylist(),
                      quarantine["reason"].to_pylist(), strict=True)) == [
        (2, "malformed_json"), (3, "unknown_event_type")]
    assert pc.all(pc.equal(quarantine["message_id"],
                           records[1]["messageAttributes"]["rtdp_message_id"]["stringValue"]
                           )).as_py()

    # deleting is Lambda's job: the handler left all four messages in flight
    stats = open_queue(queue_url, max_message_bytes=256 * 1024).stats()
    assert (stats.depth, stats.in_flight) == (0, 4)


def test_handler_from_environment_quarantines_without_failing(
    fast_sqs: SqsServer, fast_s3: S3Server, queue_url: str,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = fast_s3.create_bucket()
    monkeypatch.setenv("RTDP_LAKE_URI", f"s3://{bucket}/prod")
    monkeypatch.setattr(aws_lambda, "_lake", None)
    monkeypatch.setattr(aws_lambda, "_settings", None)
    event = _send_and_receive_event(fast_sqs, queue_url, [WITH_REJECTS])

    assert aws_lambda.handler(event, None) == {"batchItemFailures": []}
    lake = open_lake(f"s3://{bucket}/prod")
    events = _read_all(lake, EVENTS_PREFIX)
    quarantine = _read_all(lake, QUARANTINE_PREFIX)
    assert events is not None and quarantine is not None
    assert sorted(events["event_id"].to_pylist()) == ["m2-0", "m2-1"]
    assert sorted(quarantine["reason"].to_pylist()) == ["malformed_json", "unknown_event_type"]


def test_a_lake_that_is_down_fails_every_message(
    fast_sqs: SqsServer, fast_s3: S3Server, queue_url: str
) -> None:
    event = _send_and_receive_event(fast_sqs, queue_url, [GOOD_1, GOOD_4])
    lake = open_lake("s3://rtdp-bucket-that-does-not-exist/lake")
    response = aws_lambda.handle(event, lake, Settings())
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(
        r["messageId"] for r in event["Records"])


def test_an_unreadable_record_fails_alone(
    fast_sqs: SqsServer, fast_s3: S3Server, queue_url: str
) -> None:
    event = _send_and_receive_event(fast_sqs, queue_url, [GOOD_1, GOOD_4])
    del event["Records"][0]["body"]
    lake = open_lake(f"s3://{fast_s3.create_bucket()}")
    response = aws_lambda.handle(event, lake, Settings())
    assert response == {"batchItemFailures": [{"itemIdentifier":
                                               event["Records"][0]["messageId"]}]}
    events = _read_all(lake, EVENTS_PREFIX)
    assert events is not None and events["event_id"].to_pylist() == ["m4-0"]
