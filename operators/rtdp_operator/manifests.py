"""Desired state, as pure functions: an EventProducer → the Deployment running `rtdp produce`.

Nothing here talks to the API server, so the mapping is tested without one. The Deployment is
named after its EventProducer and selected by two labels (name and instance), like every rtdp
chart object; ``drift`` compares only what this module sets, so the defaults the API server
adds (``defaultMode``, ``terminationMessagePath``, …) never count as drift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

GROUP: Final = "rtdp.io"
VERSION: Final = "v1"
PLURAL: Final = "eventproducers"
KIND: Final = "EventProducer"

MANAGER: Final = "rtdp-operator"  # app.kubernetes.io/managed-by and the apply field manager
APP_NAME: Final = "rtdp-producer"
CONTAINER: Final = "producer"
DEFAULT_IMAGE: Final = "rtdp:0.1.0"
DEFAULT_RATE: Final = 100.0
HOME_DIR: Final = "/var/lib/rtdp"  # RTDP_HOME: the producer's ledger, per pod
SEEDS_DIR: Final = "/etc/rtdp/seeds"

# spec.mix key → `rtdp produce` flag. Unset keys keep the producer's own defaults.
RATIO_FLAGS: Final = (
    ("epochRatio", "--epoch-ratio"),
    ("caseRatio", "--case-ratio"),
    ("duplicateRatio", "--duplicate-ratio"),
    ("lateRatio", "--late-ratio"),
    ("malformedRatio", "--malformed-ratio"),
)

Manifest = dict[str, Any]


def selector_labels(name: str) -> dict[str, str]:
    """The pods' selector: immutable once the Deployment exists, so name and instance only."""
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": name}


def selector_string(name: str) -> str:
    """``status.selector`` in the form the scale subresource and HPAs read."""
    return ",".join(f"{key}={value}" for key, value in sorted(selector_labels(name).items()))


def _labels(name: str) -> dict[str, str]:
    return {
        **selector_labels(name),
        "app.kubernetes.io/component": "producer",
        "app.kubernetes.io/part-of": "rtdp",
        "app.kubernetes.io/managed-by": MANAGER,
    }


def _number(value: float) -> str:
    """Flag text for a number: ``100`` not ``100.0``, ``0.05`` as is."""
    return f"{value:g}" if float(value) != int(value) else str(int(value))


def producer_args(spec: Mapping[str, Any]) -> list[str]:
    """``rtdp produce`` arguments: paced rate, dirty-data mix, optional seed."""
    args = ["produce", "--rate", _number(spec.get("ratePerReplica", DEFAULT_RATE)), "--json"]
    mix = spec.get("mix") or {}
    if mix.get("clean"):
        args.append("--clean")
    else:
        for key, flag in RATIO_FLAGS:
            if key in mix:
                args += [flag, _number(mix[key])]
    if "seed" in spec:
        args += ["--seed", str(int(spec["seed"]))]
    return args


def producer_env(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The queue (inline or from a Secret), the seeds directory and the per-pod home."""
    queue = spec.get("queue") or {}
    if "secretKeyRef" in queue:
        ref = queue["secretKeyRef"]
        url: dict[str, Any] = {
            "name": "RTDP_QUEUE_URL",
            "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": ref["key"]}},
        }
    else:
        url = {"name": "RTDP_QUEUE_URL", "value": str(queue.get("url", ""))}
    env = [url, {"name": "RTDP_HOME", "value": HOME_DIR}]
    if (spec.get("seeds") or {}).get("configMapName"):
        env.append({"name": "RTDP_SEEDS_DIR", "value": SEEDS_DIR})
    return env


def _volumes(spec: Mapping[str, Any]) -> tuple[list[Manifest], list[Manifest]]:
    # The root filesystem is read-only: the ledger's home and /tmp are the pod's own.
    volumes: list[Manifest] = [{"name": "home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    mounts: list[Manifest] = [{"name": "home", "mountPath": HOME_DIR},
                              {"name": "tmp", "mountPath": "/tmp"}]
    seeds = (spec.get("seeds") or {}).get("configMapName")
    if seeds:
        volumes.append({"name": "seeds", "configMap": {"name": seeds}})
        mounts.append({"name": "seeds", "mountPath": SEEDS_DIR, "readOnly": True})
    return volumes, mounts


def deployment(producer: Mapping[str, Any], *, default_image: str = DEFAULT_IMAGE) -> Manifest:
    """The Deployment for one EventProducer, without owner references (``kopf.adopt`` adds
    them, with the namespace)."""
    name = producer["metadata"]["name"]
    spec = producer.get("spec") or {}
    volumes, mounts = _volumes(spec)
    pod: Manifest = {
        # Producers never call the API server; an IRSA token is projected separately.
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 30,  # SIGTERM: the producer flushes, then exits
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": CONTAINER,
            "image": spec.get("image") or default_image,
            "command": ["rtdp"],
            "args": producer_args(spec),
            "env": producer_env(spec),
            "volumeMounts": mounts,
            "securityContext": {
                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
        }],
        "volumes": volumes,
    }
    if spec.get("serviceAccountName"):
        pod["serviceAccountName"] = spec["serviceAccountName"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "replicas": int(spec.get("replicas", 1)),
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector_labels(name)},
            "template": {"metadata": {"labels": _labels(name)}, "spec": pod},
        },
    }


def drift(desired: Any, actual: Any, path: str = "") -> list[str]:
    """Paths where ``actual`` departs from ``desired``: every key of a desired mapping must
    hold the same value (keys only in ``actual`` are the API server's defaults or someone
    else's fields), and a desired list must match element by element, length included (an
    env var added by hand is drift)."""
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return [path or "."]
        return [p for key, value in desired.items()
                for p in drift(value, actual.get(key), f"{path}.{key}")]
    if isinstance(desired, Sequence) and not isinstance(desired, str):
        if not isinstance(actual, Sequence) or isinstance(actual, str) \
                or len(actual) != len(desired):
            return [path]
        return [p for i, (d, a) in enumerate(zip(desired, actual, strict=True))
                for p in drift(d, a, f"{path}[{i}]")]
    return [] if desired == actual else [path]


def deployment_drift(desired: Manifest, actual: Mapping[str, Any]) -> list[str]:
    """Drift of the fields the operator owns: the labels and the whole spec."""
    return (drift(desired["metadata"]["labels"], actual.get("metadata", {}).get("labels"),
                  ".metadata.labels")
            + drift(desired["spec"], actual.get("spec"), ".spec"))
