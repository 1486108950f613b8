"""charts/rtdp rendered by the real helm for each values profile (bare, local, eks), and the
documents asserted on: lint, security contexts, probes, resources, IRSA, pinned images, no
inline secrets, NetworkPolicies, the default EventProducer, and bad values failing loudly."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import yaml

from tests.charts.conftest import CHART, PROFILES, helm, named, of_kind, pod_specs, render

SECRET_ENV = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|PRIVATE)", re.IGNORECASE)


def test_helm_lint_every_profile(profile: str) -> None:
    result = helm("lint", "--strict", str(CHART), *PROFILES[profile], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_bare_values_are_the_operator_alone(docs: list[dict[str, Any]], profile: str) -> None:
    kinds = sorted({d["kind"] for d in docs})
    if profile == "bare":
        assert kinds == ["Deployment", "KopfPeering", "Role", "RoleBinding", "ServiceAccount"]
    else:
        assert {"EventProducer", "PodDisruptionBudget", "NetworkPolicy", "ClusterRole"} \
            <= set(kinds)


def test_every_object_is_labelled_from_one_helper(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "rtdp", doc["metadata"]["name"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"].startswith("rtdp-")
        assert len(doc["metadata"]["name"]) <= 63


def test_every_container_is_non_root_read_only_without_capabilities(
        docs: list[dict[str, Any]]) -> None:
    for where, pod in pod_specs(docs):
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["securityContext"].get("runAsUser", 10001) != 0, where
        for container in pod["containers"] + pod.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert not sc.get("privileged"), where


def test_every_container_has_resource_requests_and_a_memory_limit(
        docs: list[dict[str, Any]]) -> None:
    for where, pod in pod_specs(docs):
        for container in pod["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where


def test_long_running_containers_have_probes(docs: list[dict[str, Any]]) -> None:
    for where, pod in pod_specs(docs):
        if where.startswith("Job/"):
            continue
        for container in pod["containers"]:
            assert "livenessProbe" in container, where


def test_no_image_is_latest_or_untagged(docs: list[dict[str, Any]]) -> None:
    images = [c["image"] for _, pod in pod_specs(docs) for c in pod["containers"]]
    images += [d["spec"]["image"] for d in of_kind(docs, "EventProducer")]
    assert images
    for image in images:
        name = image.rsplit("/", 1)[-1]
        assert ":" in name or "@sha256:" in image, image
        assert not image.endswith(":latest"), image


def test_no_secret_value_is_inline(docs: list[dict[str, Any]], profile: str) -> None:
    """Credentials reach pods by secretKeyRef only; the one Secret the chart makes (the local
    emulators' MinIO user) holds random values, new at every install."""
    for where, pod in pod_specs(docs):
        for container in pod["containers"]:
            for env in container.get("env", []):
                if SECRET_ENV.search(env["name"]):
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], \
                        (where, env["name"])
    secrets = of_kind(docs, "Secret")
    if profile == "local":
        [secret] = secrets
        [again] = of_kind(render(*PROFILES["local"]), "Secret")
        assert secret["data"]["secretKey"] != again["data"]["secretKey"]
        assert len(base64.b64decode(secret["data"]["secretKey"])) == 40
    else:
        assert secrets == []


def test_converter_worker(docs: list[dict[str, Any]], profile: str) -> None:
    if profile == "bare":
        return
    deployment = named(docs, "Deployment", "rtdp-converter")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"] == ["rtdp"]
    assert container["args"][:2] == ["convert", "--follow"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    flush = float(env["RTDP_FLUSH_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] >= flush + 30
    assert env["RTDP_QUEUE_URL"].startswith(("https://sqs.", "http://rtdp-elasticmq:9324/"))
    assert env["RTDP_LAKE_URI"].startswith("s3://")
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert "ports" not in container  # it serves nothing: no health or metrics endpoint exists
    pdb = named(docs, "PodDisruptionBudget", "rtdp-converter")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"] or \
        deployment["spec"]["replicas"] == pdb["spec"]["minAvailable"] == 0


def test_selectors_are_name_instance_and_component_only(docs: list[dict[str, Any]]) -> None:
    for doc in of_kind(docs, "Deployment"):
        assert set(doc["spec"]["selector"]["matchLabels"]) == {
            "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}


def test_irsa_annotations_only_on_eks(docs: list[dict[str, Any]], profile: str) -> None:
    accounts = {d["metadata"]["name"]: d for d in of_kind(docs, "ServiceAccount")}
    annotated = {name: (d["metadata"].get("annotations") or {}).get("eks.amazonaws.com/role-arn")
                 for name, d in accounts.items()}
    if profile == "eks":
        assert annotated["rtdp-converter"] == "arn:aws:iam::123456789012:role/rtdp-converter"
        assert annotated["rtdp-producer"] == "arn:aws:iam::123456789012:role/rtdp-producer"
        assert annotated["rtdp-operator"] is None  # talks to the API server only
        [producer] = of_kind(docs, "EventProducer")
        assert producer["spec"]["serviceAccountName"] == "rtdp-producer"
        converter = named(docs, "Deployment", "rtdp-converter")
        assert converter["spec"]["template"]["spec"]["serviceAccountName"] == "rtdp-converter"
    else:
        assert not any(annotated.values())


def test_default_event_producer(docs: list[dict[str, Any]], profile: str) -> None:
    producers = of_kind(docs, "EventProducer")
    if profile == "bare":
        assert producers == []
        return
    [producer] = producers
    assert producer["apiVersion"] == "rtdp.io/v1"
    assert producer["metadata"]["name"] == "events"
    assert producer["spec"]["replicas"] == 1
    assert set(producer["spec"]["queue"]) == {"url"}
    # No `keep` policy: helm uninstall must remove it (and with it the producer pods).
    assert "helm.sh/resource-policy" not in (producer["metadata"].get("annotations") or {})


def test_network_policies_cover_every_pod_and_open_no_ingress(
        docs: list[dict[str, Any]], profile: str) -> None:
    policies = of_kind(docs, "NetworkPolicy")
    if profile == "bare":
        assert policies == []
        return
    selected = [p["spec"]["podSelector"] for p in policies]
    for doc in of_kind(docs, "Deployment"):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert any(_selects(s, labels) for s in selected), doc["metadata"]["name"]
    assert any(_selects(s, {"app.kubernetes.io/name": "rtdp-producer"}) for s in selected)
    for policy in policies:
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        is_emulator = policy["metadata"]["name"] == "rtdp-emulators"
        assert bool(policy["spec"]["ingress"]) == is_emulator, policy["metadata"]["name"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def test_local_profile_points_at_in_cluster_emulators(docs: list[dict[str, Any]],
                                                      profile: str) -> None:
    if profile != "local":
        return
    minio = named(docs, "Deployment", "rtdp-minio")
    elasticmq = named(docs, "Deployment", "rtdp-elasticmq")
    images = [d["spec"]["template"]["spec"]["containers"][0]["image"] for d in (minio, elasticmq)]
    assert images[0].startswith("quay.io/minio/minio:RELEASE.")
    assert images[1] == "softwaremill/elasticmq-native:1.7.1"
    config = named(docs, "ConfigMap", "rtdp-elasticmq")["data"]["elasticmq.conf"]
    assert '"rtdp-events" {' in config and "rtdp-events-dlq" in config
    converter_env = {e["name"]: e for e in named(docs, "Deployment", "rtdp-converter")
                     ["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert converter_env["AWS_ENDPOINT_URL_S3"]["value"] == "http://rtdp-minio:9000"
    assert converter_env["RTDP_QUEUE_URL"]["value"] == \
        "http://rtdp-elasticmq:9324/000000000000/rtdp-events"
    job = named(docs, "Job", "rtdp-minio-bucket")
    [mc] = job["spec"]["template"]["spec"]["containers"]
    assert "mb --ignore-existing lake/rtdp-lake" in mc["args"][0]


def test_aggregated_roles_let_editors_scale_event_producers(docs: list[dict[str, Any]],
                                                           profile: str) -> None:
    if profile == "bare":
        return
    roles = {d["metadata"]["name"]: d for d in of_kind(docs, "ClusterRole")}
    edit = roles["rtdp-rtdp-eventproducers-edit"]
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "eventproducers/scale" in edit["rules"][0]["resources"]
    assert "patch" in edit["rules"][0]["verbs"]


def test_notes_say_what_to_run_next() -> None:
    out = helm("install", "rtdp", str(CHART), "--dry-run=client", "-n", "rtdp",
               *PROFILES["local"]).stdout
    assert "kubectl -n rtdp scale eventproducer/events --replicas=3" in out
    assert "port-forward svc/rtdp-minio 9000" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "converter.replicaz=2"], "replicaz"),
    (["--set", "converter.enabled=true"], "config.queueUrl is required"),
    (["--set", "converter.enabled=true", "--set", "config.queueUrl=https://sqs.x/1/q",
      "--set", "config.lakeUri=/data/lake"], "lakeUri"),
    (["-f", str(CHART / "values-local.yaml"), "--set", "converter.image.tag=latest"],
     "/converter/image/tag"),
    (["-f", str(CHART / "values-local.yaml"), "--set",
      "converter.terminationGracePeriodSeconds=10"], "flushSeconds + 30"),
    (["-f", str(CHART / "values-eks.yaml"), "--set",
      "serviceAccounts.converterRoleArn=rtdp-converter"], "converterRoleArn"),
    (["--set", "emulators.minio.image=quay.io/minio/minio:latest"], "image"),
    (["--set", "producer.name=Events_1"], "name"),
])
def test_bad_values_fail_loudly(args: list[str], message: str) -> None:
    result = helm("template", "rtdp", str(CHART), *args, check=False)
    assert result.returncode != 0, result.stdout[:500]
    assert message in result.stderr, result.stderr


def test_schema_describes_every_value_and_forbids_unknown_keys() -> None:
    import json
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, path
            for key, child in node["properties"].items():
                assert child.get("description"), f"{path}.{key}"
                walk(child, f"{path}.{key}")
    walk(schema, "")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) == set(schema["properties"])
