"""Fixtures of the chart's install tests: a real control plane (tests/cluster/up: etcd,
kube-apiserver, controller-manager, scheduler, kwok nodes) and the operator as a real
``kopf run`` subprocess logged in with a token of the ServiceAccount the chart installed.

They need kopf and the operator package, in ``.venv-k8s`` (``make test`` runs this folder
with it, in a pytest run of its own); the main venv skips them.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

if importlib.util.find_spec("kopf") is None or importlib.util.find_spec("rtdp_operator") is None:
    collect_ignore_glob = ["test_*.py"]  # the main venv: see the module docstring
else:
    from tests.cluster.kube import Cluster, control_plane
    from tests.operators.conftest import Operator

NAMESPACE: Final = "rtdp-helm"
RELEASE: Final = "rtdp"  # so the operator's names are tests.operators.conftest.OPERATOR's


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with control_plane(tmp_path_factory.mktemp("k8s")) as running:
        yield running


def operator_kubeconfig(cluster: Cluster, service_account: str, path: Path) -> Path:
    """A kubeconfig holding a token of ``service_account`` (TokenRequest API)."""
    token = cluster.kubectl("create", "token", service_account, "-n", NAMESPACE,
                            "--duration=1h").stdout.strip()
    config = json.loads(cluster.kubectl("config", "view", "--raw", "-o", "json").stdout)
    config["users"] = [{"name": service_account, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = service_account
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def operator_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Operator]]:
    """Operators started by a test, stopped at the end of the module."""
    started: list[Operator] = []
    yield started
    for op in started:
        op.stop()
