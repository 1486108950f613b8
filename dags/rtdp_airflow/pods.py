"""``RTDP_AIRFLOW_MODE=kubernetes``: a dbt step as a KubernetesPodOperator.

Each step gets its own pod from the dbt image (``images/dbt``), so the scheduler and workers
never carry dbt. The pod runs as a non-root user on a read-only root filesystem with every
capability dropped; /tmp (HOME, dbt's target and logs) is an ``emptyDir``. Snowflake
credentials never appear in the DAG: the keys of one Secret become the container's
environment (``envFrom``), and the private key of a second Secret is mounted read-only as a
file that ``SNOWFLAKE_PRIVATE_KEY_PATH`` points at.
"""

from __future__ import annotations

from typing import Any, Final

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from kubernetes.client import models as k8s

from rtdp_airflow.settings import KubernetesSettings
from rtdp_airflow.steps import DBT, DbtStep

UID: Final = 10001  # the image's user (images/dbt/Dockerfile)
# An emptyDir over /tmp: the only writable place (HOME=/tmp in the image; the Snowflake
# connector's caches and dbt's target/ and logs/ go there).
TMP_DIR: Final = "/tmp"
WORK_DIR: Final = "/tmp/dbt"
KEY_DIR: Final = "/var/run/secrets/rtdp/snowflake"
DOCS_DIR: Final = "/var/lib/rtdp/dbt-docs"
KEY_FILE: Final = "rsa_key.p8"


def _secrets(settings: KubernetesSettings) -> list[Secret]:
    return [
        Secret("env", None, settings.snowflake_secret),
        Secret("volume", KEY_DIR, settings.snowflake_key_secret, items=[
            # 0440 with fsGroup: readable by the pod's group, by nobody else
            k8s.V1KeyToPath(key=settings.snowflake_key_secret_key, path=KEY_FILE, mode=0o440),
        ]),
    ]


def _volumes(step: DbtStep, settings: KubernetesSettings,
             ) -> tuple[list[k8s.V1Volume], list[k8s.V1VolumeMount], str]:
    """Volumes, their mounts, and dbt's target path."""
    volumes = [k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="1Gi"))]
    mounts = [k8s.V1VolumeMount(name="tmp", mount_path=TMP_DIR)]
    target_path = f"{WORK_DIR}/target"
    if step.args[:2] == ("docs", "generate") and settings.docs_pvc:
        volumes.append(k8s.V1Volume(
            name="dbt-docs",
            persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                claim_name=settings.docs_pvc)))
        mounts.append(k8s.V1VolumeMount(name="dbt-docs", mount_path=DOCS_DIR))
        target_path = DOCS_DIR
    return volumes, mounts, target_path


def dbt_pod_operator(step: DbtStep, settings: KubernetesSettings,
                     dbt_env: dict[str, str], **kwargs: Any) -> KubernetesPodOperator:
    volumes, mounts, target_path = _volumes(step, settings)
    env = {
        **dbt_env,
        "RTDP_DBT_TARGET": settings.dbt_target,
        "SNOWFLAKE_PRIVATE_KEY_PATH": f"{KEY_DIR}/{KEY_FILE}",
        "DBT_TARGET_PATH": target_path,
        "DBT_LOG_PATH": f"{WORK_DIR}/logs",
    }
    resources = settings.resources
    return KubernetesPodOperator(
        task_id=step.task_id,
        doc_md=step.doc,
        name=step.pod_name,  # + a random suffix: a retry never meets its predecessor's pod
        namespace=settings.namespace,
        kubernetes_conn_id=settings.conn_id,
        image=settings.image,
        image_pull_policy="IfNotPresent",
        cmds=[DBT],
        arguments=list(step.args),
        env_vars=[k8s.V1EnvVar(name=name, value=value) for name, value in env.items()],
        secrets=_secrets(settings),
        volumes=volumes,
        volume_mounts=mounts,
        service_account_name=settings.service_account,
        automount_service_account_token=False,  # dbt never calls the Kubernetes API
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": resources.cpu_request, "memory": resources.memory_request},
            limits={"cpu": resources.cpu_limit, "memory": resources.memory_limit},
        ),
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True, run_as_user=UID, run_as_group=UID, fs_group=UID,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        container_security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False, read_only_root_filesystem=True,
            run_as_non_root=True, capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        labels={"app.kubernetes.io/name": "rtdp-dbt", "app.kubernetes.io/part-of": "rtdp",
                "app.kubernetes.io/component": step.pod_name},
        get_logs=True,
        log_events_on_failure=True,
        # A failed pod stays for `kubectl logs/describe`; a succeeded one is removed.
        on_finish_action="delete_succeeded_pod",
        startup_timeout_seconds=settings.startup_timeout_seconds,
        **kwargs,
    )
