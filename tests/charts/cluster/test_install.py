"""``helm install`` / ``upgrade`` / ``uninstall`` of charts/rtdp (local profile) into a real API
server with kwok nodes, the operator running as the chart's ServiceAccount, and every profile's
rendered documents validated by the API server itself (``kubectl apply --dry-run=server``:
the OpenAPI schemas of Kubernetes 1.37 and the EventProducer CRD's schema and CEL rules).

The tests run in file order and share one release: install → scale → upgrade → uninstall.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.charts.cluster.conftest import NAMESPACE, RELEASE, operator_kubeconfig
from tests.charts.conftest import CHART, PROFILES
from tests.cluster.kube import Cluster, KubectlError, eventually
from tests.operators.conftest import OPERATOR, Operator

LOCAL = PROFILES["local"]
IMAGES = ["--set", "converter.image.tag=test1", "--set", "producer.image.tag=test1",
          "--set", "operator.image.tag=test1"]
EDITOR = "dev@example.com"  # a person bound to the built-in `edit` role in NAMESPACE only
PRODUCER = "events"


def helm(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cluster.run("helm", *args, "--namespace", NAMESPACE, check=check)


def pods(cluster: Cluster, selector: str = "") -> list[dict[str, Any]]:
    args = ["pods", "-n", NAMESPACE] + (["-l", selector] if selector else [])
    items: list[dict[str, Any]] = cluster.get(*args)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def running(cluster: Cluster, selector: str, count: int) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        found = pods(cluster, selector)
        ok = len(found) == count and all(
            p["spec"].get("nodeName", "").startswith("kwok-node-")
            and p["status"].get("phase") == "Running" for p in found)
        return found if ok else None
    return eventually(probe, timeout=90, what=f"{count} pods running for {selector}")


def producer_deployment(cluster: Cluster, replicas: int) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = cluster.get("deployment", PRODUCER, "-n", NAMESPACE)
        ok = found and found["spec"]["replicas"] == replicas and \
            found["status"].get("readyReplicas") == replicas
        return found if ok else None
    return eventually(probe, timeout=90, what=f"deployment/{PRODUCER} at {replicas} ready")


def test_install_deploys_and_schedules_every_pod(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", NAMESPACE)
    helm(cluster, "install", RELEASE, str(CHART), *LOCAL, *IMAGES,
         "--wait=watcher", "--timeout=180s")
    status = json.loads(helm(cluster, "status", RELEASE, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    # CRDs came with the chart (crds/), and are served.
    for crd in ("eventproducers.rtdp.io", "kopfpeerings.kopf.dev"):
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{crd}")
    instance = f"app.kubernetes.io/instance={RELEASE}"
    for component, count in (("operator", 1), ("converter", 1), ("minio", 1), ("elasticmq", 1)):
        found = running(cluster, f"{instance},app.kubernetes.io/component={component}", count)
        [container] = found[0]["spec"]["containers"]
        assert container["image"].endswith(":test1") or component in ("minio", "elasticmq")
    job = eventually(lambda: (cluster.get("job", "rtdp-minio-bucket", "-n", NAMESPACE) or {})
                     .get("status", {}).get("succeeded"), timeout=60, what="bucket job done")
    assert job == 1
    # The Secret the chart generated is referenced by the pods, never inlined.
    converter = cluster.get("deployment", "rtdp-converter", "-n", NAMESPACE)
    env = {e["name"]: e for e in converter["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "rtdp-emulators"


def test_operator_creates_the_default_producer(
        cluster: Cluster, operator_factory: list[Operator],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """No image runs on kwok: the operator runs here as ``kopf run``, with a token of the
    ServiceAccount and so the Role the chart installed."""
    path = tmp_path_factory.mktemp("operator")
    op = Operator(operator_kubeconfig(cluster, OPERATOR, path / "kubeconfig"), NAMESPACE,
                  path, "operator")
    operator_factory.append(op)
    op.start()
    deployment = producer_deployment(cluster, 1)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "rtdp-producer:test1"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "rtdp-producer"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RTDP_QUEUE_URL"] == "http://rtdp-elasticmq:9324/000000000000/rtdp-events"
    running(cluster, f"app.kubernetes.io/name=rtdp-producer,app.kubernetes.io/instance={PRODUCER}",
            1)


def test_editors_scale_the_producer_through_the_charts_rbac(cluster: Cluster) -> None:
    cluster.kubectl("create", "rolebinding", "dev-edit", "--clusterrole=edit",
                    f"--user={EDITOR}", "-n", NAMESPACE)
    # The chart's aggregated ClusterRole joins `edit` (the controller manager aggregates it).
    eventually(lambda: cluster.kubectl(
        "auth", "can-i", "patch", "eventproducers.rtdp.io", "--subresource=scale",
        f"--as={EDITOR}", "-n", NAMESPACE, check=False).stdout.strip() == "yes",
        timeout=30, what="edit aggregates the EventProducer rules")
    with pytest.raises(KubectlError, match=r"(?i)forbidden"):
        cluster.kubectl("scale", f"eventproducer/{PRODUCER}", "--replicas=3",
                        "--as=stranger@example.com", "-n", NAMESPACE)
    cluster.kubectl("scale", f"eventproducer/{PRODUCER}", "--replicas=3", f"--as={EDITOR}",
                    "-n", NAMESPACE)
    producer_deployment(cluster, 3)
    running(cluster, f"app.kubernetes.io/name=rtdp-producer,app.kubernetes.io/instance={PRODUCER}",
            3)


def test_upgrade_keeps_the_scaled_replica_count(cluster: Cluster) -> None:
    helm(cluster, "upgrade", RELEASE, str(CHART), *LOCAL, *IMAGES,
         "--set", "producer.ratePerReplica=35", "--wait=watcher", "--timeout=180s")
    status = json.loads(helm(cluster, "status", RELEASE, "-o", "json").stdout)
    assert (status["info"]["status"], status["version"]) == ("deployed", 2)
    producer = cluster.get("eventproducer", PRODUCER, "-n", NAMESPACE)
    assert producer["spec"]["ratePerReplica"] == 35  # the upgrade did apply
    assert producer["spec"]["replicas"] == 3  # and kept what kubectl scale set
    deployment = eventually(
        lambda: (d := cluster.get("deployment", PRODUCER, "-n", NAMESPACE))
        and "35" in d["spec"]["template"]["spec"]["containers"][0]["args"] and d,
        timeout=60, what="operator rolled the new rate out")
    assert deployment["spec"]["replicas"] == 3
    producer_deployment(cluster, 3)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_rendered_document_passes_server_side_validation(cluster: Cluster,
                                                               profile: str) -> None:
    namespace = f"dry-run-{profile}"
    cluster.kubectl("create", "namespace", namespace, check=False)
    rendered = cluster.run("helm", "template", RELEASE, str(CHART), "--namespace", namespace,
                           *PROFILES[profile], "--set", "emulators.existingSecret=x").stdout
    result = cluster.kubectl("apply", "--dry-run=server", "--validate=strict", "-n", namespace,
                             "-f", "-", input=rendered)
    assert result.stdout.count("(server dry run)") == rendered.count("\nkind: ")


def test_uninstall_leaves_nothing_behind(cluster: Cluster) -> None:
    """A bare `helm uninstall`: helm deletes unknown kinds (the EventProducer) last, after the
    operator's Deployment, Role and ServiceAccount; that only works because the operator puts
    no finalizer on EventProducers (its drift check rides on Deployment watch events, not on a
    kopf timer, which would hold one)."""
    helm(cluster, "uninstall", RELEASE, "--timeout=100s")
    cluster.kubectl("delete", "rolebinding", "dev-edit", "-n", NAMESPACE)
    kinds = cluster.kubectl("api-resources", "--verbs=list", "--namespaced", "-o",
                            "name").stdout.split()
    kinds = [k for k in kinds if k not in {"events", "events.events.k8s.io"}]
    left_behind = lambda: [  # noqa: E731
        f"{item['kind']}/{item['metadata']['name']}"
        for item in cluster.get(",".join(kinds), "-n", NAMESPACE)["items"]
        if (item["kind"], item["metadata"]["name"]) not in {
            ("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}]
    # The producer Deployment and the pods go by garbage collection, after the release.
    eventually(lambda: not left_behind() or None, timeout=120, interval=1,
               what="an empty namespace")
    assert left_behind() == []
    roles = cluster.get("clusterroles", "-l", f"app.kubernetes.io/instance={RELEASE}")
    assert roles["items"] == []
    assert json.loads(cluster.run("helm", "list", "-A", "-o", "json").stdout) == []
