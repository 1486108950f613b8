"""Fixtures for the operator tests: a real control plane, the chart's CRDs and RBAC applied
with the real helm and kubectl, and the operator as a real ``kopf run`` subprocess that logs
in as the chart's ServiceAccount (so the RBAC is tested too).

These tests need kopf and the Kubernetes client, which live in their own venv
(``make .venv-k8s``; ``make test-operators`` runs them); the main venv skips them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

import pytest

if importlib.util.find_spec("kopf") is None or importlib.util.find_spec("rtdp_operator") is None:
    collect_ignore_glob = ["test_*.py"]  # the main venv: see the module docstring
else:
    from tests.cluster.kube import REPO, Cluster, control_plane, eventually

NAMESPACE: Final = "rtdp-test"
RELEASE: Final = "rtdp"
OPERATOR: Final = f"{RELEASE}-operator"  # the chart's rtdp.operator.fullname
DRIFT_SECONDS: Final = 1.0
PRODUCER_IMAGE: Final = "rtdp:test"


TEST_QUEUE_URL: Final = "https://sqs.eu-west-1.amazonaws.com/123456789012/rtdp-test"


def chart_values() -> list[str]:
    """``helm`` value flags so the whole chart renders here: the full chart refuses to render
    without a queue URL (pods cannot share the embedded SQLite queue)."""
    text = (REPO / "charts" / "rtdp" / "values.yaml").read_text()
    return ["--set", f"config.queueUrl={TEST_QUEUE_URL}"] if "\n  queueUrl:" in text else []


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with control_plane(tmp_path_factory.mktemp("k8s")) as running:
        yield running


@pytest.fixture(scope="session")
def chart(cluster: Cluster) -> str:
    """The chart's CRDs and its operator templates (ServiceAccount, RBAC, peering, Deployment)
    in NAMESPACE. The Deployment is scaled to 0: the operator runs as a subprocess instead."""
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    cluster.kubectl("apply", "--server-side", "-f", str(REPO / "charts" / "rtdp" / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                    "crd/eventproducers.rtdp.io", "crd/kopfpeerings.kopf.dev")
    operator_templates = sorted((REPO / "charts" / "rtdp" / "templates").glob("operator-*.yaml"))
    only = [arg for t in operator_templates for arg in ("--show-only", f"templates/{t.name}")]
    rendered = cluster.run("helm", "template", RELEASE, str(REPO / "charts" / "rtdp"),
                           "--namespace", NAMESPACE, *chart_values(), *only).stdout
    cluster.apply(rendered, "--namespace", NAMESPACE, "--server-side")
    cluster.kubectl("scale", "deployment", OPERATOR, "--replicas=0", "-n", NAMESPACE)
    _wait_for_garbage_collector(cluster)
    eventually(lambda: cluster.get("serviceaccount", "default", "-n", NAMESPACE),
               what="default service account")
    return NAMESPACE


def _wait_for_garbage_collector(cluster: Cluster) -> None:
    """The controller manager's garbage collector learns of a new CRD at its next discovery
    sync (every 30 s): until then an EventProducer's dependents would outlive it. Probe it
    with an owned ConfigMap, so the tests do not depend on when the CRD was made."""
    owner = {"apiVersion": "rtdp.io/v1", "kind": "EventProducer",
             "metadata": {"name": "gc-probe", "namespace": NAMESPACE},
             "spec": {"replicas": 0, "queue": {"url": "sqlite:///probe"}}}
    cluster.apply(owner)
    uid = cluster.get("eventproducer", "gc-probe", "-n", NAMESPACE)["metadata"]["uid"]
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "gc-probe", "namespace": NAMESPACE, "ownerReferences": [
                       {"apiVersion": "rtdp.io/v1", "kind": "EventProducer",
                        "name": "gc-probe", "uid": uid}]}})
    cluster.kubectl("delete", "eventproducer", "gc-probe", "-n", NAMESPACE)
    eventually(lambda: cluster.get("configmap", "gc-probe", "-n", NAMESPACE) is None,
               timeout=90, interval=1, what="garbage collector aware of EventProducers")


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster: Cluster, chart: str, tmp_path_factory: pytest.TempPathFactory
                        ) -> Path:
    """A kubeconfig holding a token of the operator's ServiceAccount (TokenRequest API)."""
    token = cluster.kubectl("create", "token", OPERATOR, "-n", chart,
                            "--duration=4h").stdout.strip()
    config = json.loads(cluster.kubectl("config", "view", "--raw", "-o", "json").stdout)
    config["users"] = [{"name": OPERATOR, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = OPERATOR
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    path.write_text(json.dumps(config))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Operator:
    """``kopf run -m rtdp_operator.handlers`` as a subprocess, ready once /healthz answers."""

    def __init__(self, kubeconfig: Path, namespace: str, log_dir: Path, name: str) -> None:
        self.kubeconfig, self.namespace, self.name = kubeconfig, namespace, name
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Operator:
        port = _free_port()
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig),
               "RTDP_OPERATOR_DRIFT_SECONDS": str(DRIFT_SECONDS),
               "RTDP_PRODUCER_IMAGE": PRODUCER_IMAGE}
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "-m", "rtdp_operator.handlers",
             "--namespace", self.namespace, "--peering", OPERATOR, "--verbose",
             "--liveness", f"http://127.0.0.1:{port}/healthz"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT)
        eventually(lambda: self._healthy(port), timeout=60, what=f"{self.name} /healthz")
        return self

    def _healthy(self, port: int) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # kopf's graceful exit: leaves peering
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


_STARTED: list[Operator] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, the end of each operator's log goes into the report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for op in _STARTED:
            tail = [line for line in op.log().splitlines() if "DEBUG" not in line][-60:]
            report.sections.append((f"{op.name} log (last lines, no DEBUG)", "\n".join(tail)))


@pytest.fixture(scope="session")
def operator_factory(operator_kubeconfig: Path, chart: str,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    log_dir = tmp_path_factory.mktemp("operator-logs")

    def make(name: str = "operator") -> Operator:
        op = Operator(operator_kubeconfig, chart, log_dir, name)
        _STARTED.append(op)
        return op

    yield make
    for op in _STARTED:
        op.stop()


@pytest.fixture(scope="session")
def operator(operator_factory: Any) -> Operator:
    return operator_factory("operator").start()  # type: ignore[no-any-return]


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A fresh EventProducer name per test (≤ 52 characters, DNS-1123)."""
    base = request.node.name.removeprefix("test_").replace("_", "-").lower()
    return "".join(c for c in base if c.isalnum() or c == "-")[:40].strip("-") + \
        f"-{int(time.time() * 1000) % 100000}"
