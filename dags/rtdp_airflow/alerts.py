"""Failure alerts: an ERROR log line always, and a JSON POST to a webhook when one is set."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Final

log = logging.getLogger(__name__)
_TIMEOUT_SECONDS: Final = 10


def alert_payload(context: Mapping[str, Any]) -> dict[str, Any]:
    """What failed, from a task's or a DAG run's callback context."""
    ti = context.get("task_instance") or context.get("ti")
    dag_run = context.get("dag_run")
    error = context.get("exception") or context.get("reason")
    return {
        "dag_id": getattr(dag_run, "dag_id", None) or getattr(ti, "dag_id", None),
        "run_id": getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
        "error": None if error is None else str(error)[-2000:],
        "log_url": getattr(ti, "log_url", None),
    }


def failure_callback(webhook_url: str | None) -> Callable[[Mapping[str, Any]], None]:
    """An ``on_failure_callback`` that logs the failure and posts it to ``webhook_url``.

    The alert never raises: a broken webhook must not hide the failure it reports."""

    def alert_on_failure(context: Mapping[str, Any]) -> None:
        payload = alert_payload(context)
        log.error("rtdp dbt workflow failed: %s", json.dumps(payload, default=str))
        if not webhook_url:
            return
        request = urllib.request.Request(
            webhook_url, data=json.dumps(payload, default=str).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response:
                response.read()
        except OSError:
            log.exception("could not post the failure alert to the webhook")

    return alert_on_failure
