"""A KubernetesPodOperator task of the DAG against a real API server (tests/cluster: etcd,
kube-apiserver, controller-manager, scheduler, kwok nodes), run by Airflow itself
(``dag.test()``, the other tasks marked successful).

The API server admits the operator's pod (its own validation, admission and defaulting), the
real scheduler binds it to a kwok node and kwok reports it Running. No container runs, and
kwok's stages complete only Job-owned pods, so the test plays the kubelet's last part: it
writes the container's exit into the pod status, as a kubelet would. What Airflow then does
with the pod is real: a success deletes it (``on_finish_action=delete_succeeded_pod``), a
failure fails the task, calls the failure callback and keeps the pod for debugging.

kwok serves no container logs (404 on pods/log), so ``get_logs`` is switched off on the one
task run here; everything else is the DAG as deployed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.kube import Cluster, KubectlError, control_plane
from tests.dags.conftest import DAG_ID, parse_dags

NAMESPACE = "rtdp-airflow-test"
CONN_ID = "rtdp_test_k8s"
# On a machine whose cache (~/.cache/rtdp/k8s) is cold, the first test's setup builds the
# control plane from source (tests/cluster/build: minutes); warm, `up` takes seconds.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with control_plane(tmp_path_factory.mktemp("k8s")) as running:
        running.kubectl("create", "namespace", NAMESPACE)
        running.kubectl("-n", NAMESPACE, "create", "serviceaccount", "rtdp-dbt")
        running.kubectl("-n", NAMESPACE, "create", "secret", "generic", "rtdp-snowflake",
                        "--from-literal=SNOWFLAKE_ACCOUNT=test-account",
                        "--from-literal=SNOWFLAKE_USER=RTDP_TRANSFORMER")
        running.kubectl("-n", NAMESPACE, "create", "secret", "generic", "rtdp-snowflake-key",
                        "--from-literal=rsa_key.p8=not-a-key")
        yield running


class Kubelet(threading.Thread):
    """Watches NAMESPACE; ends every Running pod's container with ``exit_code`` and records
    each pod as the API server stored it."""

    def __init__(self, cluster: Cluster, exit_code: int) -> None:
        super().__init__(daemon=True)
        self.cluster, self.exit_code = cluster, exit_code
        self.pods: dict[str, dict[str, Any]] = {}
        self.phases: dict[str, list[str]] = {}
        self.errors: list[str] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self._poll()
            except KubectlError as e:  # e.g. a pod deleted between get and patch: poll again
                self.errors.append(str(e))
            self.stopped.wait(0.3)

    def _poll(self) -> None:
        for pod in self.cluster.get("pods", "-n", NAMESPACE)["items"]:
            name, phase = pod["metadata"]["name"], pod["status"].get("phase", "")
            self.pods[name] = pod
            if self.phases.setdefault(name, [])[-1:] != [phase]:
                self.phases[name].append(phase)
            if phase == "Running":
                # record the pod as the API server stored the patch: Airflow may delete it
                # before the next poll would see it
                finished = self._finish(pod)
                self.pods[name] = finished
                self.phases[name].append(finished["status"]["phase"])

    def _finish(self, pod: dict[str, Any]) -> dict[str, Any]:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (container,) = pod["spec"]["containers"]
        reason = "Completed" if self.exit_code == 0 else "Error"
        status = {"status": {
            "phase": "Succeeded" if self.exit_code == 0 else "Failed",
            "containerStatuses": [{
                "name": container["name"], "image": container["image"], "imageID": "",
                "ready": False, "restartCount": 0, "started": False,
                "state": {"terminated": {"exitCode": self.exit_code, "reason": reason,
                                         "startedAt": now, "finishedAt": now}},
            }]}}
        patched = self.cluster.kubectl(
            "patch", "pod", pod["metadata"]["name"], "-n", NAMESPACE, "--subresource=status",
            "--type=merge", "-p", json.dumps(status), "-o", "json")
        return json.loads(patched.stdout)  # type: ignore[no-any-return]

    def __enter__(self) -> Kubelet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.join(timeout=10)


def _run_one(cluster: Cluster, dag_env: pytest.MonkeyPatch, task_id: str,
             exit_code: int) -> tuple[Any, Kubelet]:
    conn = {"conn_type": "kubernetes", "extra": {"kube_config_path": str(cluster.kubeconfig)}}
    env = {"RTDP_K8S_NAMESPACE": NAMESPACE, "RTDP_K8S_CONN_ID": CONN_ID,
           "RTDP_DBT_IMAGE": "registry.example/rtdp-dbt", "RTDP_DBT_IMAGE_TAG": "3f2a9c1",
           "RTDP_DBT_RETRIES": "0", f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(conn)}
    for name, value in env.items():
        dag_env.setenv(name, value)
    dag = parse_dags().dags[DAG_ID]
    dag.get_task(task_id).get_logs = False  # kwok serves no logs (module docstring)
    with Kubelet(cluster, exit_code) as kubelet:
        run = dag.test(mark_success_pattern=f"(?!{task_id}$).*")
    return run, kubelet


def test_a_dbt_pod_runs_on_the_cluster_and_is_deleted_after_success(
        cluster: Cluster, airflow_db: None, dag_env: pytest.MonkeyPatch) -> None:
    run, kubelet = _run_one(cluster, dag_env, "dbt_seed", exit_code=0)

    assert {ti.task_id: ti.state for ti in run.get_task_instances()}["dbt_seed"] == "success"
    assert run.state == "success"
    (name,) = kubelet.pods
    assert name.startswith("dbt-seed-"), kubelet.errors
    assert kubelet.phases[name][-2:] == ["Running", "Succeeded"]
    pod = kubelet.pods[name]
    # as the API server stored it: bound by the real scheduler, the DAG's container
    assert pod["spec"]["nodeName"].startswith("kwok-node-")
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "registry.example/rtdp-dbt:3f2a9c1"
    assert [*container["command"], *container["args"]] == ["dbt", "seed"]
    assert pod["spec"]["serviceAccountName"] == "rtdp-dbt"
    assert pod["metadata"]["labels"]["dag_id"] == DAG_ID
    # succeeded, so deleted
    assert cluster.get("pod", name, "-n", NAMESPACE) is None


def test_a_failed_dbt_pod_fails_the_task_and_is_kept(
        cluster: Cluster, airflow_db: None, dag_env: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    run, kubelet = _run_one(cluster, dag_env, "dbt_build", exit_code=1)

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["dbt_build"] == "failed"
    assert states["dbt_docs_generate"] == "upstream_failed"
    assert run.state == "failed"
    (name,) = [n for n in kubelet.pods if n.startswith("dbt-build-")]
    kept = cluster.get("pod", name, "-n", NAMESPACE)
    assert kept is not None and kept["status"]["phase"] == "Failed"
    assert "rtdp dbt workflow failed" in caplog.text
