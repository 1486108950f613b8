"""Every KubernetesPodOperator's pod, rendered by the provider itself (``build_pod_request_obj``,
as at execution) and validated against the Kubernetes schema, then checked for what the
platform promises: a pinned image, the dbt command, resources, Snowflake credentials from
Secrets only, a non-root read-only container.

Schema: the strict JSON schemas of the ``kubernetes-validate`` package (PyPI), generated from
the Kubernetes OpenAPI spec of each release; strict means an unknown or misspelt field fails.
The pod is serialized as the API server receives it (the Kubernetes client's
``sanitize_for_serialization``: camelCase, no nulls).
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient

from tests.dags.conftest import DAG_ID, parse_dags

# the oldest Kubernetes minor still in upstream support when this was written, and the newest
# the package knows
SCHEMA_VERSIONS = ["1.32.0", kubernetes_validate.latest_version()]
ENV = {"RTDP_AIRFLOW_MODE": "kubernetes", "RTDP_DBT_IMAGE": "registry.example/rtdp-dbt",
       "RTDP_DBT_IMAGE_TAG": "3f2a9c1", "RTDP_K8S_NAMESPACE": "rtdp",
       "RTDP_DBT_DOCS_PVC": "rtdp-dbt-docs"}


@pytest.fixture
def pods(dag_env: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    bag = parse_dags(ENV)
    assert bag.import_errors == {}
    dag = bag.dags[DAG_ID]
    rendered = {}
    for task in dag.tasks:
        pod = task.build_pod_request_obj()
        rendered[task.task_id] = ApiClient().sanitize_for_serialization(pod)
    return rendered


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_pod_is_valid_for_kubernetes(pods: dict[str, dict[str, Any]], version: str) -> None:
    assert len(pods) == 4
    for task_id, pod in pods.items():
        try:
            kubernetes_validate.validate(pod, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{task_id}: {e}")


def test_the_schema_check_would_catch_a_mistake(pods: dict[str, dict[str, Any]]) -> None:
    pod = pods["dbt_build"]
    pod["spec"]["containers"][0]["resources"]["limit"] = {"cpu": "1"}  # not "limits"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)


def test_pods_run_the_dbt_steps_from_a_pinned_image(pods: dict[str, dict[str, Any]]) -> None:
    args = {task_id: pod["spec"]["containers"][0]["args"] for task_id, pod in pods.items()}
    assert args == {
        "dbt_source_freshness": ["source", "freshness"],
        "dbt_seed": ["seed"],
        "dbt_build": ["build", "--exclude-resource-type", "unit_test",
                      "--exclude-resource-type", "seed"],
        "dbt_docs_generate": ["docs", "generate"],
    }
    for task_id, pod in pods.items():
        (container,) = pod["spec"]["containers"]
        assert container["command"] == ["dbt"]
        image = container["image"]
        assert image == "registry.example/rtdp-dbt:3f2a9c1"
        assert re.fullmatch(r"[^:@]+(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})", image)
        assert not image.endswith(":latest")
        assert pod["metadata"]["namespace"] == "rtdp"
        assert pod["metadata"]["name"].startswith(task_id.replace("_", "-") + "-")
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "rtdp-dbt"
        assert pod["spec"]["serviceAccountName"] == "rtdp-dbt"
        assert pod["spec"]["restartPolicy"] == "Never"
        resources = container["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


def test_credentials_come_from_secrets_only(pods: dict[str, dict[str, Any]]) -> None:
    for pod in pods.values():
        (container,) = pod["spec"]["containers"]
        assert container["envFrom"] == [{"secretRef": {"name": "rtdp-snowflake"}}]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["RTDP_DBT_TARGET"] == "snowflake"
        assert not [name for name in env if "PASSWORD" in name or "PASSPHRASE" in name]
        key_volumes = [v for v in pod["spec"]["volumes"] if "secret" in v]
        (key_volume,) = key_volumes
        assert key_volume["secret"]["secretName"] == "rtdp-snowflake-key"
        (item,) = key_volume["secret"]["items"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == key_volume["name"]]
        assert mount["readOnly"] is True
        assert env["SNOWFLAKE_PRIVATE_KEY_PATH"] == f"{mount['mountPath']}/{item['path']}"
        assert item["mode"] & 0o007 == 0  # not world-readable


def test_pods_run_non_root_on_a_read_only_root(pods: dict[str, dict[str, Any]]) -> None:
    for pod in pods.values():
        spec = pod["spec"]
        (container,) = spec["containers"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        # dbt writes its target and logs to a writable emptyDir
        env = {e["name"]: e.get("value") for e in container["env"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        for var in ("DBT_TARGET_PATH", "DBT_LOG_PATH"):
            (mount_path,) = [p for p in mounts if env[var].startswith(p + "/") or env[var] == p]
            assert not volumes[mounts[mount_path]].get("secret")


def test_docs_artifacts_land_on_their_volume(pods: dict[str, dict[str, Any]]) -> None:
    docs = pods["dbt_docs_generate"]
    (container,) = docs["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
              for v in docs["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert list(claims.values()) == ["rtdp-dbt-docs"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] in claims]
    assert env["DBT_TARGET_PATH"] == mount["mountPath"]
    # only the docs step gets the claim
    for task_id, pod in pods.items():
        if task_id != "dbt_docs_generate":
            assert not [v for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]


def test_operators_keep_failed_pods_and_stream_logs(dag_env: pytest.MonkeyPatch) -> None:
    dag = parse_dags(ENV).dags[DAG_ID]
    for task in dag.tasks:
        assert task.get_logs is True
        assert task.on_finish_action.value == "delete_succeeded_pod"
        assert task.name == task.task_id.replace("_", "-")
        assert task.random_name_suffix is True
