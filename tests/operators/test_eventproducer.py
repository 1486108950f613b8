"""EventProducer against a real API server, controller manager, scheduler and kwok nodes, with
the operator running as ``kopf run`` and the real kubectl."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.kube import Cluster, KubectlError, eventually
from tests.operators.conftest import (
    DRIFT_SECONDS,
    NAMESPACE,
    OPERATOR,
    PRODUCER_IMAGE,
    Operator,
)

pytestmark = pytest.mark.usefixtures("operator")

QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/rtdp-events"


def producer(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "rtdp.io/v1",
        "kind": "EventProducer",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"queue": {"url": QUEUE_URL}, **spec},
    }


def get(cluster: Cluster, kind: str, name: str) -> Any:
    return cluster.get(kind, name, "-n", NAMESPACE)


def deployment_where(cluster: Cluster, name: str, check: Any, what: str,
                     timeout: float = 30) -> dict[str, Any]:
    def probe() -> Any:
        found = get(cluster, "deployment", name)
        return found if found and check(found) else None
    return eventually(probe, timeout=timeout, what=what)  # type: ignore[no-any-return]


def producer_status(cluster: Cluster, name: str) -> dict[str, Any]:
    return (get(cluster, "eventproducer", name) or {}).get("status") or {}


def ready(cluster: Cluster, name: str, replicas: int) -> dict[str, Any]:
    def probe() -> Any:
        status = producer_status(cluster, name)
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        ok = (status.get("readyReplicas") == replicas and status.get("replicas") == replicas
              and conditions.get("Ready", {}).get("status") == "True")
        return status if ok else None
    return eventually(probe, timeout=60, what=f"{name}: {replicas} ready")  # type: ignore[no-any-return]


def pods(cluster: Cluster, selector: str) -> list[dict[str, Any]]:
    items = cluster.get("pods", "-n", NAMESPACE, "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def test_crd_is_served_with_schema_scale_and_columns(cluster: Cluster) -> None:
    resources = cluster.kubectl("api-resources", "--api-group=rtdp.io", "-o", "wide").stdout
    assert "eventproducers" in resources and "evp" in resources
    explained = cluster.kubectl("explain", "eventproducer.spec.ratePerReplica").stdout
    assert "Events per second per replica" in explained
    crd = cluster.get("crd", "eventproducers.rtdp.io")
    version = crd["spec"]["versions"][0]
    assert version["subresources"]["scale"]["labelSelectorPath"] == ".status.selector"
    assert [c["name"] for c in version["additionalPrinterColumns"]][:3] == \
        ["Desired", "Ready", "Rate/Replica"]


@pytest.mark.parametrize(("spec", "message"), [
    ({"ratePerReplica": -5}, "spec.ratePerReplica"),
    ({"ratePerReplica": 0}, "spec.ratePerReplica"),
    ({"replicas": 51}, "spec.replicas"),
    ({"replicas": -1}, "spec.replicas"),
    ({"mix": {"epochRatio": 1.5}}, "spec.mix.epochRatio"),
    ({"mix": {"duplicateRatio": 0.5, "lateRatio": 0.4, "malformedRatio": 0.2}},
     "duplicateRatio + lateRatio + malformedRatio must total at most 1"),
    ({"queue": {"url": QUEUE_URL, "secretKeyRef": {"name": "q", "key": "url"}}},
     "set exactly one of spec.queue.url and spec.queue.secretKeyRef"),
    ({"queue": {}}, "set exactly one of spec.queue.url and spec.queue.secretKeyRef"),
    ({"seed": 7, "replicas": 2}, "spec.seed makes every replica send the same events"),
    ({"unknownField": 1}, "unknown field \"spec.unknownField\""),
], ids=["negative-rate", "zero-rate", "too-many-replicas", "negative-replicas",
        "ratio-above-1", "rare-ratios-above-1", "two-queues", "no-queue", "seed-with-replicas",
        "unknown-field"])
def test_invalid_spec_is_refused_by_the_api_server(cluster: Cluster, name: str,
                                                   spec: dict[str, Any], message: str) -> None:
    manifest = producer(name, **spec)
    if spec.get("queue") is not None:
        manifest["spec"]["queue"] = spec["queue"]
    with pytest.raises(KubectlError) as refused:
        cluster.apply(manifest)
    assert message in refused.value.stderr
    assert get(cluster, "eventproducer", name) is None


def test_too_long_a_name_is_refused(cluster: Cluster) -> None:
    with pytest.raises(KubectlError) as refused:
        cluster.apply(producer("p" * 53))
    assert "metadata.name must be at most 52 characters" in refused.value.stderr


def test_created_producer_gets_an_owned_deployment(cluster: Cluster, name: str) -> None:
    cluster.apply(producer(name, replicas=2, ratePerReplica=250,
                           mix={"epochRatio": 0.5, "malformedRatio": 0.02},
                           seeds={"configMapName": "rtdp-seeds"}))
    owner = get(cluster, "eventproducer", name)
    deployment = deployment_where(cluster, name, lambda d: True, "Deployment created")

    assert deployment["spec"]["replicas"] == 2
    [ref] = deployment["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) \
        == ("EventProducer", name, owner["metadata"]["uid"], True, True)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == PRODUCER_IMAGE
    assert container["command"] == ["rtdp"]
    assert container["args"] == ["produce", "--rate", "250", "--json",
                                 "--epoch-ratio", "0.5", "--malformed-ratio", "0.02"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env == {"RTDP_QUEUE_URL": QUEUE_URL, "RTDP_HOME": "/var/lib/rtdp",
                   "RTDP_SEEDS_DIR": "/etc/rtdp/seeds"}

    status = ready(cluster, name, 2)
    assert status["selector"] == \
        f"app.kubernetes.io/instance={name},app.kubernetes.io/name=rtdp-producer"
    assert status["observedGeneration"] == owner["metadata"]["generation"]
    assert len(pods(cluster, status["selector"])) == 2
    columns = cluster.kubectl("get", "evp", name, "-n", NAMESPACE).stdout.split("\n")[1].split()
    assert columns[:5] == [name, "2", "2", "250", "AllReplicasReady"]


def test_queue_url_from_a_secret(cluster: Cluster, name: str) -> None:
    manifest = producer(name, replicas=1)
    manifest["spec"]["queue"] = {"secretKeyRef": {"name": "rtdp-queue", "key": "url"}}
    cluster.apply(manifest)
    deployment = deployment_where(cluster, name, lambda d: True, "Deployment created")
    [env] = [e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
             if e["name"] == "RTDP_QUEUE_URL"]
    assert env == {"name": "RTDP_QUEUE_URL",
                   "valueFrom": {"secretKeyRef": {"name": "rtdp-queue", "key": "url"}}}


def test_kubectl_scale_is_followed(cluster: Cluster, name: str) -> None:
    cluster.apply(producer(name, replicas=1))
    ready(cluster, name, 1)

    cluster.kubectl("scale", f"eventproducer/{name}", "--replicas=5", "-n", NAMESPACE)
    deployment_where(cluster, name, lambda d: d["spec"]["replicas"] == 5,
                     "Deployment scaled to 5", timeout=10)
    status = ready(cluster, name, 5)
    assert len(pods(cluster, status["selector"])) == 5
    scale = cluster.get(f"eventproducer/{name}", "-n", NAMESPACE, "--subresource=scale")
    assert (scale["spec"]["replicas"], scale["status"]["replicas"]) == (5, 5)
    assert scale["status"]["selector"] == status["selector"]

    cluster.kubectl("scale", f"eventproducer/{name}", "--replicas=0", "-n", NAMESPACE)
    deployment_where(cluster, name, lambda d: d["spec"]["replicas"] == 0,
                     "Deployment scaled to 0", timeout=10)
    ready(cluster, name, 0)
    with pytest.raises(KubectlError) as refused:
        cluster.kubectl("scale", f"eventproducer/{name}", "--replicas=51", "-n", NAMESPACE)
    assert "spec.replicas" in refused.value.stderr


def test_hand_edits_of_the_deployment_are_reverted(cluster: Cluster, name: str) -> None:
    cluster.apply(producer(name, replicas=2, ratePerReplica=10))
    original = deployment_where(cluster, name, lambda d: True, "Deployment created")
    ready(cluster, name, 2)

    cluster.kubectl("scale", f"deployment/{name}", "--replicas=4", "-n", NAMESPACE)
    cluster.kubectl("set", "env", f"deployment/{name}", "-n", NAMESPACE,
                    "RTDP_QUEUE_URL=sqlite:///tmp/elsewhere.sqlite", "EXTRA=1")
    cluster.kubectl("set", "image", f"deployment/{name}", "-n", NAMESPACE,
                    "producer=rtdp:hacked")

    original_env = original["spec"]["template"]["spec"]["containers"][0]["env"]

    def restored(d: dict[str, Any]) -> bool:
        container = d["spec"]["template"]["spec"]["containers"][0]
        return (d["spec"]["replicas"] == 2 and container["image"] == PRODUCER_IMAGE
                and container["env"] == original_env)
    reverted = deployment_where(cluster, name, restored, "hand edits reverted",
                                timeout=DRIFT_SECONDS * 10 + 10)
    assert reverted["metadata"]["uid"] == original["metadata"]["uid"]

    cluster.kubectl("delete", f"deployment/{name}", "-n", NAMESPACE, "--wait=true")
    recreated = deployment_where(cluster, name,
                                 lambda d: d["metadata"]["uid"] != original["metadata"]["uid"],
                                 "deleted Deployment recreated", timeout=DRIFT_SECONDS * 10 + 10)
    assert recreated["spec"]["replicas"] == 2


def test_deleting_the_producer_garbage_collects_its_deployment(cluster: Cluster,
                                                               name: str) -> None:
    cluster.apply(producer(name, replicas=3))
    status = ready(cluster, name, 3)
    # No finalizer: deletion must not depend on an operator still running (helm uninstall
    # removes the operator before the EventProducers).
    assert not get(cluster, "eventproducer", name)["metadata"].get("finalizers")
    cluster.kubectl("delete", f"eventproducer/{name}", "-n", NAMESPACE, "--wait=true")
    eventually(lambda: get(cluster, "deployment", name) is None, timeout=30,
               what="Deployment garbage-collected")
    eventually(lambda: not pods(cluster, status["selector"]), timeout=30,
               what="pods garbage-collected")


def test_a_restarted_operator_creates_no_duplicates(cluster: Cluster, operator: Operator,
                                                    name: str) -> None:
    cluster.apply(producer(name, replicas=2))
    ready(cluster, name, 2)
    before = get(cluster, "deployment", name)

    operator.stop()
    offset = len(operator.log())
    operator.start()
    resumed = f"[{NAMESPACE}/{name}] Handler 'reconcile' succeeded"
    eventually(lambda: resumed in operator.log()[offset:], timeout=30, what="resume handled")

    after = get(cluster, "deployment", name)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert len(after["metadata"]["ownerReferences"]) == 1
    deployments = cluster.get("deployments", "-n", NAMESPACE,
                              "-l", f"app.kubernetes.io/instance={name}")["items"]
    assert [d["metadata"]["name"] for d in deployments] == [name]
    replicasets = cluster.get("replicasets", "-n", NAMESPACE,
                              "-l", f"app.kubernetes.io/instance={name}")["items"]
    assert len(replicasets) == 1


def test_an_existing_deployment_is_adopted(cluster: Cluster, name: str) -> None:
    labels = {"app.kubernetes.io/name": "rtdp-producer", "app.kubernetes.io/instance": name}
    cluster.apply({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"replicas": 4, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "producer", "image": "old"}]}}},
    })
    existing = deployment_where(cluster, name, lambda d: True, "hand-made Deployment")
    cluster.apply(producer(name, replicas=1))
    adopted = deployment_where(cluster, name,
                               lambda d: bool(d["metadata"].get("ownerReferences")),
                               "Deployment adopted")
    assert adopted["metadata"]["uid"] == existing["metadata"]["uid"]
    assert adopted["spec"]["replicas"] == 1
    assert adopted["spec"]["template"]["spec"]["containers"][0]["image"] == PRODUCER_IMAGE
    ready(cluster, name, 1)


def test_a_deployment_it_cannot_adopt_is_reported_not_touched(cluster: Cluster,
                                                              name: str) -> None:
    labels = {"app": name}
    cluster.apply({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
    })
    cluster.apply(producer(name, replicas=1))

    def failed() -> Any:
        conditions = producer_status(cluster, name).get("conditions", [])
        return next((c for c in conditions if c["reason"] == "ReconcileFailed"), None)
    condition = eventually(failed, what="ReconcileFailed condition")
    assert condition["status"] == "False"
    assert "a selector cannot change" in condition["message"]
    untouched = get(cluster, "deployment", name)
    assert "ownerReferences" not in untouched["metadata"]
    assert untouched["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"


def test_two_operators_one_works_the_other_takes_over(cluster: Cluster, operator: Operator,
                                                     operator_factory: Any, name: str) -> None:
    second = operator_factory("standby").start()
    try:
        def both_peers() -> bool:
            peering = get(cluster, "kopfpeering", OPERATOR) or {}
            return len(peering.get("status") or {}) == 2
        eventually(both_peers, what="two operators in the KopfPeering")
        cluster.apply(producer(name, replicas=2))
        ready(cluster, name, 2)
        handled = f"[{NAMESPACE}/{name}] Handler 'reconcile' succeeded"
        [active] = [op for op in (operator, second) if handled in op.log()]
        standby = second if active is operator else operator
        deployments = cluster.get("deployments", "-n", NAMESPACE,
                                  "-l", f"app.kubernetes.io/instance={name}")["items"]
        assert len(deployments) == 1
        assert len(deployments[0]["metadata"]["ownerReferences"]) == 1

        active.stop()  # a clean exit leaves the peering: the standby resumes at once
        cluster.apply(producer(f"{name}-2", replicas=1))
        ready(cluster, f"{name}-2", 1)
        assert f"[{NAMESPACE}/{name}-2] Handler 'reconcile' succeeded" in standby.log()
    finally:
        second.stop()
        if operator.process is None:
            operator.start()
