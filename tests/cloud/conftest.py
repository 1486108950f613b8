"""Fixtures for the cloud backends: emulators started once per session, fresh resources per test.

``sqs`` runs a test on every SQS emulator (moto, ElasticMQ), ``s3`` on every S3 emulator
(moto, MinIO). An emulator that is not installed skips its variants with the reason; moto
always runs. Resources (queues, buckets) get unique names, so tests never share state.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cloud import servers

_INSTALL = "pip install -e '.[cloud-test]'"
boto3 = pytest.importorskip("boto3", reason=f"the cloud tests need boto3: {_INSTALL}")
pytest.importorskip("moto", reason=f"the cloud tests need moto[server]: {_INSTALL}")


def _session_server(name: str, start: Callable[[Path], servers.Server],
                    factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    reason = servers.unavailable(name)
    if reason:
        pytest.skip(reason)
    server = start(factory.mktemp(name))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    yield from _session_server("moto", servers.start_moto, tmp_path_factory)


@pytest.fixture(scope="session")
def elasticmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    yield from _session_server("elasticmq", servers.start_elasticmq, tmp_path_factory)


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    yield from _session_server("minio", servers.start_minio, tmp_path_factory)


@pytest.fixture(scope="session")
def fakesnow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    pytest.importorskip("fakesnow", reason=f"needs fakesnow[server]: {_INSTALL}")
    yield from _session_server("fakesnow", servers.start_fakesnow, tmp_path_factory)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Emulator credentials and region in this process's environment (and for children)."""
    for name in servers.AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    env = servers.aws_environment()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@dataclass(frozen=True)
class SqsServer:
    name: str
    endpoint: str

    def client(self) -> Any:
        return boto3.client("sqs", endpoint_url=self.endpoint, region_name=servers.REGION,
                            aws_access_key_id=servers.ACCESS_KEY,
                            aws_secret_access_key=servers.SECRET_KEY)

    def create_queue(self, *, visibility_timeout: int = 30, max_receive_count: int = 3) -> str:
        """A fresh queue with its own dead-letter queue (redrive policy); returns its URL."""
        client = self.client()
        name = f"rtdp-{uuid.uuid4().hex[:12]}"
        dlq = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = client.get_queue_attributes(
            QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
        url = client.create_queue(QueueName=name, Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(policy),
        })["QueueUrl"]
        client.close()
        return str(url)


@dataclass(frozen=True)
class S3Server:
    name: str
    endpoint: str

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=servers.REGION,
                            aws_access_key_id=servers.ACCESS_KEY,
                            aws_secret_access_key=servers.SECRET_KEY)

    def create_bucket(self) -> str:
        name = f"rtdp-{uuid.uuid4().hex[:12]}"
        client = self.client()
        client.create_bucket(Bucket=name)
        client.close()
        return name


@pytest.fixture(params=["moto", "elasticmq"])
def sqs(request: pytest.FixtureRequest, aws_env: dict[str, str]) -> SqsServer:
    server: servers.Server = request.getfixturevalue(f"{request.param}_server")
    return SqsServer(server.name, server.endpoint)


@pytest.fixture(params=["moto", "minio"])
def s3(request: pytest.FixtureRequest, aws_env: dict[str, str],
       monkeypatch: pytest.MonkeyPatch) -> S3Server:
    server: servers.Server = request.getfixturevalue(f"{request.param}_server")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint)  # the lake's standard way
    return S3Server(server.name, server.endpoint)


@pytest.fixture
def fast_sqs(request: pytest.FixtureRequest, aws_env: dict[str, str]) -> SqsServer:
    """The fastest SQS emulator here: ElasticMQ if installed, else moto."""
    name = "moto" if servers.unavailable("elasticmq") else "elasticmq"
    server: servers.Server = request.getfixturevalue(f"{name}_server")
    return SqsServer(server.name, server.endpoint)


@pytest.fixture
def fast_s3(request: pytest.FixtureRequest, aws_env: dict[str, str],
            monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The fastest S3 emulator here: MinIO if installed, else moto."""
    name = "moto" if servers.unavailable("minio") else "minio"
    server: servers.Server = request.getfixturevalue(f"{name}_server")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint)
    return S3Server(server.name, server.endpoint)
