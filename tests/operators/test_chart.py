"""The operator's part of charts/rtdp, rendered with the real helm: lint clean, RBAC minimal."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kube import HERE, REPO
from tests.operators.conftest import chart_values

CHART = REPO / "charts" / "rtdp"


@pytest.fixture(scope="module")
def helm() -> Path:
    cache = subprocess.run([HERE / "build"], capture_output=True, text=True, check=True)
    return Path(cache.stdout.strip()) / "bin" / "helm"


def render(helm: Path, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run([helm, "template", "rtdp", CHART, "--namespace", "data",
                          *chart_values(), *args],
                         capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_helm_lint(helm: Path) -> None:
    result = subprocess.run([helm, "lint", "--strict", CHART, *chart_values()],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def operator_docs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "operator"]


def test_rbac_is_namespaced_and_minimal(helm: Path) -> None:
    docs = operator_docs(render(helm))
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["Deployment", "KopfPeering", "Role", "RoleBinding", "ServiceAccount"]
    [role] = [d for d in docs if d["kind"] == "Role"]
    verbs = {(g, r): set(rule["verbs"]) for rule in role["rules"]
             for g in rule["apiGroups"] for r in rule["resources"]}
    assert "delete" not in set().union(*verbs.values())
    assert verbs[("apps", "deployments")] == {"get", "list", "watch", "create", "patch"}


def test_operator_runs_with_peering_in_its_namespace(helm: Path) -> None:
    [deployment] = [d for d in operator_docs(render(helm, "--set", "operator.replicas=3"))
                    if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 3
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert "--peering=rtdp-operator" in container["args"]
    assert "--namespace=$(POD_NAMESPACE)" in container["args"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_bad_values_fail_loudly(helm: Path) -> None:
    result = subprocess.run([helm, "template", "rtdp", CHART, "--set", "operator.replicaz=2"],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "replicaz" in result.stderr
