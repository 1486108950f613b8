"""The few API calls the operator makes, on plain dicts (the Kubernetes client's models are
skipped: manifests are built and compared as dicts, as the API server sends them)."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from rtdp_operator.manifests import GROUP, MANAGER, PLURAL, VERSION, Manifest

_APPLY: str = "application/apply-patch+yaml"  # server-side apply (JSON is YAML)
_MERGE: str = "application/merge-patch+json"


_client: kubernetes.client.ApiClient | None = None


def configure() -> None:
    """In a pod, its service account; elsewhere ``$KUBECONFIG`` / ``~/.kube/config``. One
    client (one connection pool, thread-safe) for every handler thread."""
    global _client
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    _client = kubernetes.client.ApiClient()


def _apps() -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(_client)


def _custom() -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(_client)


def _body(response: Any) -> Manifest:
    return json.loads(response.data)  # type: ignore[no-any-return]


def get_deployment(namespace: str, name: str) -> Manifest | None:
    try:
        return _body(_apps().read_namespaced_deployment(
            name, namespace, _preload_content=False))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def apply_deployment(manifest: Manifest) -> Manifest:
    """Server-side apply with force: the fields this operator owns are put back whoever
    changed them; fields it does not set (another controller's, an annotation) are left."""
    meta = manifest["metadata"]
    return _body(_apps().patch_namespaced_deployment(
        meta["name"], meta["namespace"], manifest, field_manager=MANAGER, force=True,
        _content_type=_APPLY, _preload_content=False))


def put_back_deployment(manifest: Manifest) -> Manifest:
    """JSON merge patch of the labels and the whole spec: unlike apply, it replaces lists
    (containers, env, volumes) outright, so entries others added by hand go too."""
    meta = manifest["metadata"]
    patch = {"metadata": {"labels": meta["labels"]}, "spec": manifest["spec"]}
    return _body(_apps().patch_namespaced_deployment(
        meta["name"], meta["namespace"], patch, field_manager=MANAGER,
        _content_type=_MERGE, _preload_content=False))


def get_producer(namespace: str, name: str) -> Manifest | None:
    try:
        return _body(_custom().get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _preload_content=False))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def patch_producer_status(namespace: str, name: str, status: Manifest) -> None:
    _custom().patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, {"status": status},
        _content_type=_MERGE, _preload_content=False)
