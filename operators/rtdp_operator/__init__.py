"""The rtdp Kubernetes operator (kopf): EventProducer → one Deployment of `rtdp produce`.

``manifests`` and ``status`` are pure (desired state, derived status), ``kube`` makes the few
API calls, ``handlers`` wires them to kopf.
"""
