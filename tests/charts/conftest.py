"""Fixtures of the chart tests: the real helm v4 binary (tests/cluster/build puts it in
~/.cache/rtdp/k8s) and the chart rendered per values profile.

``test_*.py`` here render only (no cluster) and run in any venv with PyYAML. The tests against
the real API server are in ``cluster/`` and run in ``.venv-k8s`` (they start the operator).
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from tests.cluster.kube import HERE as CLUSTER_DIR
from tests.cluster.kube import REPO

CHART: Final = REPO / "charts" / "rtdp"
PROFILES: Final = {
    "bare": [],
    "local": ["-f", str(CHART / "values-local.yaml")],
    "eks": ["-f", str(CHART / "values-eks.yaml")],
}


@cache
def helm_path() -> Path:
    out = subprocess.run([CLUSTER_DIR / "build"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()) / "bin" / "helm"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([helm_path(), *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stderr}{result.stdout}")
    return result


def render(*args: str, namespace: str = "rtdp") -> list[dict[str, Any]]:
    out = helm("template", "rtdp", str(CHART), "--namespace", namespace, *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="session", params=sorted(PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def docs(profile: str) -> list[dict[str, Any]]:
    return render(*PROFILES[profile])


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(Kind/name, pod spec) of every workload rendered."""
    return [(f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
            for d in docs if d["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}]
