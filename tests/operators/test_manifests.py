"""The EventProducer → Deployment mapping and the drift check, without an API server."""

from __future__ import annotations

import copy

from rtdp_operator import manifests, status


def producer(**spec: object) -> dict[str, object]:
    return {"metadata": {"name": "web", "generation": 3},
            "spec": {"queue": {"url": "sqlite:///q.sqlite"}, **spec}}


def test_args_carry_rate_mix_and_seed() -> None:
    args = manifests.producer_args({"ratePerReplica": 12.5, "seed": 7,
                                    "mix": {"caseRatio": 0, "lateRatio": 0.25}})
    assert args == ["produce", "--rate", "12.5", "--json", "--case-ratio", "0",
                    "--late-ratio", "0.25", "--seed", "7"]


def test_clean_mix_ignores_the_ratios() -> None:
    args = manifests.producer_args({"mix": {"clean": True, "epochRatio": 0.9}})
    assert args == ["produce", "--rate", "100", "--json", "--clean"]


def test_server_defaults_are_not_drift_but_hand_edits_are() -> None:
    desired = manifests.deployment(producer(seeds={"configMapName": "seeds"}))
    actual = copy.deepcopy(desired)
    pod = actual["spec"]["template"]["spec"]
    seeds = next(v for v in pod["volumes"] if v["name"] == "seeds")
    seeds["configMap"]["defaultMode"] = 420  # added by the API server
    pod["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
    pod["dnsPolicy"] = "ClusterFirst"
    actual["metadata"]["labels"]["pod-template-hash"] = "abc"
    assert manifests.deployment_drift(desired, actual) == []

    pod["containers"][0]["env"].append({"name": "EXTRA", "value": "1"})
    actual["spec"]["replicas"] = 9
    assert manifests.deployment_drift(desired, actual) == [
        ".spec.replicas", ".spec.template.spec.containers[0].env"]


def test_selector_and_status_follow_the_deployment() -> None:
    body = producer(replicas=2)
    deployment = {"metadata": {"generation": 4},
                  "status": {"observedGeneration": 4, "replicas": 2, "readyReplicas": 1,
                             "updatedReplicas": 2}}
    first = status.status_of(body, deployment)
    assert first["selector"] == \
        "app.kubernetes.io/instance=web,app.kubernetes.io/name=rtdp-producer"
    assert first["conditions"][0]["reason"] == "ScalingUp"
    deployment["status"]["readyReplicas"] = 2
    body["status"] = first
    second = status.status_of(body, deployment)
    assert second["conditions"][0]["status"] == "True"
    assert status.changed(first, second)
    body["status"] = second
    assert not status.changed(second, status.status_of(body, deployment))


def test_producer_pods_run_non_root_on_a_read_only_root_filesystem() -> None:
    pod = manifests.deployment(producer())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    container = pod["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    # what rtdp produce writes (its ledger home, /tmp) is an emptyDir, not the image
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert {manifests.HOME_DIR, "/tmp"} <= mounts
