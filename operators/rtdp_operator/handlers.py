"""kopf handlers: one owned Deployment per EventProducer, kept as the spec says.

Run: ``kopf run -m rtdp_operator.handlers --namespace NS --peering rtdp-operator``.

* create / update (of the spec) / resume → reconcile: the desired Deployment
  (``kopf.adopt``: owner reference, namespace) is created or adopted by server-side apply,
  and any difference in the fields it sets is put back by a merge patch (which, unlike apply,
  also drops list entries added by hand); then the status;
* Deployment events → the same reconcile, so a hand edit of the Deployment is put back
  (drift), and the EventProducer's status follows its pods (ready replicas). kopf re-lists
  its watches every ``RTDP_OPERATOR_DRIFT_SECONDS`` (the watch's server timeout), so every
  managed Deployment is looked at again at least that often: the periodic drift check,
  without a kopf timer — a timer would make kopf hold a finalizer on every EventProducer,
  and ``helm uninstall`` (which deletes the operator's ServiceAccount before custom
  resources) would leave them stuck in deletion;
* deletion → nothing to do: the Deployment's owner reference lets the garbage collector go,
  and no finalizer holds the EventProducer back.

Every step is idempotent (nothing is written when nothing differs), so a restarted operator,
or a resumed one, creates no duplicates. Several replicas are safe through kopf peering:
each draws a distinct priority, the highest works and the others stand by.
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any, Final

import kopf
from kubernetes.client.exceptions import ApiException

from rtdp_operator import kube, manifests, status
from rtdp_operator.manifests import GROUP, KIND, MANAGER, PLURAL, VERSION

DRIFT_SECONDS: Final = float(os.environ.get("RTDP_OPERATOR_DRIFT_SECONDS", "30"))
IMAGE: Final = os.environ.get("RTDP_PRODUCER_IMAGE", manifests.DEFAULT_IMAGE)
_MANAGED: Final = {"app.kubernetes.io/managed-by": MANAGER}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Same priority = every peer pauses; distinct ones = one active, the others standing by.
    settings.peering.priority = random.randint(1, 2**30)
    settings.peering.lifetime = 30
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    # Each watch ends and re-lists every DRIFT_SECONDS: the periodic drift check (see above).
    settings.watching.server_timeout = max(1, round(DRIFT_SECONDS))
    settings.posting.level = logging.WARNING  # no Kubernetes Event per successful handler
    # Namespaced RBAC only: no cluster-wide listing of namespaces and CRDs (the namespace is
    # given with --namespace, the resources are found by API discovery).
    settings.scanning.disabled = True
    kube.configure()


class OwnershipError(Exception):
    """The Deployment of that name belongs to someone else, or cannot be adopted."""


def _check_adoptable(producer: kopf.Body, existing: dict[str, Any]) -> None:
    uid = producer["metadata"]["uid"]
    for ref in existing["metadata"].get("ownerReferences", []):
        if ref.get("controller") and ref.get("uid") != uid:
            raise OwnershipError(f"Deployment {existing['metadata']['name']} is controlled by "
                                 f"{ref['kind']}/{ref['name']}; rename one of them")
    selector = existing["spec"]["selector"]
    wanted = {"matchLabels": manifests.selector_labels(producer["metadata"]["name"])}
    if selector != wanted:
        raise OwnershipError(f"Deployment {existing['metadata']['name']} selects {selector}, "
                             f"not {wanted}, and a selector cannot change: delete it and the "
                             "operator recreates it")


def ensure_deployment(producer: kopf.Body, logger: kopf.Logger) -> dict[str, Any]:
    """Create, adopt or put back the Deployment; return it as the API server has it."""
    desired = manifests.deployment(producer, default_image=IMAGE)
    kopf.adopt(desired, owner=producer)
    name = desired["metadata"]["name"]
    try:
        deployment = kube.get_deployment(desired["metadata"]["namespace"], name)
        if deployment is None or not _owned(producer, deployment):
            if deployment is not None:
                _check_adoptable(producer, deployment)
            deployment, verb = kube.apply_deployment(desired), \
                "created" if deployment is None else "adopted"
            logger.info(f"Deployment {name} {verb}")
        differences = manifests.deployment_drift(desired, deployment)
        if differences:
            logger.info(f"Deployment {name}: putting back {', '.join(differences)}")
            deployment = kube.put_back_deployment(desired)
    except ApiException as exc:
        if exc.status in (400, 403, 422):  # refused as such: retrying will not help
            raise OwnershipError(f"Deployment {name} refused: {exc.reason}: {exc.body}") from exc
        raise kopf.TemporaryError(f"Deployment {name}: {exc.reason}", delay=5) from exc
    return deployment


def _owned(producer: kopf.Body, deployment: dict[str, Any]) -> bool:
    return any(ref.get("uid") == producer["metadata"]["uid"]
               for ref in deployment["metadata"].get("ownerReferences", []))


def publish_status(namespace: str, name: str, uid: str, *, error: str | None = None,
                   generation: int | None = None) -> bool:
    """Write the EventProducer's status from the live Deployment and the live EventProducer
    (never from a watch event's copy: events arrive late and writers race, and reading both
    afresh is what makes the next writer, at worst the next re-list, converge)."""
    producer = kube.get_producer(namespace, name)
    if producer is None or producer["metadata"]["uid"] != uid:
        return False  # gone (the garbage collector follows) or a new object of the same name
    deployment = None if error else kube.get_deployment(namespace, name)
    new = status.status_of(producer, deployment, error=error, generation=generation)
    if not status.changed(producer.get("status"), new):
        return False
    kube.patch_producer_status(namespace, name, new)
    return True


def _reconcile(body: kopf.Body, logger: kopf.Logger, *, fail: bool = True) -> None:
    meta = body["metadata"]
    error: str | None = None
    try:
        ensure_deployment(body, logger)
    except OwnershipError as exc:
        error = str(exc)
    changed = publish_status(meta["namespace"], meta["name"], meta["uid"], error=error,
                             generation=meta.get("generation"))
    if error is not None:
        if fail:  # a change handler: kopf records the failure and stops retrying
            raise kopf.PermanentError(error)
        if changed:  # a drift check: keep checking quietly, it may be resolved by hand
            logger.warning(error)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def reconcile(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    _reconcile(body, logger)


def revert_drift(producer: dict[str, Any], logger: kopf.Logger) -> None:
    meta, observed = producer["metadata"], (producer.get("status") or {}).get(
        "observedGeneration")
    if meta.get("deletionTimestamp") or observed != meta.get("generation"):
        return  # going away, or a spec change is pending: the update handler owns it
    _reconcile(kopf.Body(producer), logger, fail=False)


@kopf.on.event("apps", "v1", "deployments", labels=_MANAGED)
def deployment_changed(body: kopf.Body, event: dict[str, Any], logger: kopf.Logger,
                       **_: Any) -> None:
    """A managed Deployment changed, was deleted, or was listed again: put back what drifted,
    then let the owner's status follow (ready pods, scale-ups, deletion)."""
    owner = next((ref for ref in body["metadata"].get("ownerReferences", [])
                  if ref.get("controller") and ref.get("kind") == KIND), None)
    if owner is None:
        return
    namespace = body["metadata"]["namespace"]
    producer = kube.get_producer(namespace, owner["name"])
    if producer is None or producer["metadata"]["uid"] != owner["uid"]:
        return  # the owner is gone: the garbage collector takes the Deployment
    revert_drift(producer, logger)
    if publish_status(namespace, owner["name"], owner["uid"]):
        logger.debug(f"status of {owner['name']} updated")
