"""An EventProducer's status, derived from its Deployment: pure functions.

``replicas`` and ``selector`` feed the scale subresource (``kubectl scale``, HPAs). One
condition, ``Ready``, says whether every desired replica is up, and why not; its
``lastTransitionTime`` moves only when its status does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rtdp_operator.manifests import selector_string


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready_condition(producer: Mapping[str, Any], deployment: Mapping[str, Any] | None,
                    error: str | None = None, generation: int | None = None) -> dict[str, Any]:
    desired = int((producer.get("spec") or {}).get("replicas", 1))
    observed = (deployment or {}).get("status") or {}
    ready = int(observed.get("readyReplicas", 0) or 0)
    current = int(observed.get("replicas", 0) or 0)
    rolled_out = deployment is not None and (
        observed.get("observedGeneration") == deployment.get("metadata", {}).get("generation")
        and int(observed.get("updatedReplicas", 0) or 0) == desired)
    if error:
        status, reason, message = "False", "ReconcileFailed", error
    elif deployment is None:
        status, reason, message = "False", "DeploymentMissing", "the Deployment does not exist yet"
    elif ready == desired == current and (rolled_out or desired == 0):
        status, reason, message = "True", "AllReplicasReady", f"{ready}/{desired} replicas ready"
    else:
        verb = "ScalingDown" if current > desired else "ScalingUp" if ready < desired \
            else "RollingOut"
        status, reason, message = "False", verb, f"{ready}/{desired} replicas ready"
    if generation is None:
        generation = producer.get("metadata", {}).get("generation")
    return {"type": "Ready", "status": status, "reason": reason, "message": message,
            "observedGeneration": generation}


def _with_transition(new: dict[str, Any], old: list[Mapping[str, Any]] | None) -> dict[str, Any]:
    previous = next((c for c in old or [] if c.get("type") == new["type"]), None)
    if previous and previous.get("status") == new["status"] and "lastTransitionTime" in previous:
        return {**new, "lastTransitionTime": previous["lastTransitionTime"]}
    return {**new, "lastTransitionTime": _now()}


def status_of(producer: Mapping[str, Any], deployment: Mapping[str, Any] | None,
              error: str | None = None, generation: int | None = None) -> dict[str, Any]:
    """The status fields the operator owns. ``generation``: the ``metadata.generation`` just
    reconciled, written as ``observedGeneration`` (only a reconcile of the spec may claim
    it; a status refresh leaves it as it is)."""
    name = producer["metadata"]["name"]
    observed = (deployment or {}).get("status") or {}
    old = (producer.get("status") or {}).get("conditions")
    new = {
        "replicas": int(observed.get("replicas", 0) or 0),
        "readyReplicas": int(observed.get("readyReplicas", 0) or 0),
        "selector": selector_string(name),
        "deployment": name,
        "conditions": [_with_transition(
            ready_condition(producer, deployment, error, generation), old)],
    }
    if generation is not None:
        new["observedGeneration"] = generation
    return new


def changed(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` would change ``current`` (ignoring transition times)."""
    def strip(status: Mapping[str, Any] | None) -> dict[str, Any]:
        status = dict(status or {})
        status["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                                for c in status.get("conditions") or []]
        return {k: status.get(k) for k in new}
    return strip(current) != strip(new)
