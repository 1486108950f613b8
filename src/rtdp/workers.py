"""``rtdp`` commands as separate processes, as the platform runs them in production.

The demo and the freshness benchmark start the producer, converter and loader this way, so
they cross the same process boundaries (queue file, lake directory, warehouse lock) as a
deployment does.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

from rtdp.exceptions import RtdpError

STOP_TIMEOUT_SECONDS: Final = 120


def rtdp_executable() -> str:
    """The ``rtdp`` beside this Python (the same venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("rtdp")
    return str(beside) if beside.is_file() else (shutil.which("rtdp") or "rtdp")


class Worker:
    """One ``rtdp`` subprocess with its JSON summary line captured."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [rtdp_executable(), *args, "--json"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )

    def running(self) -> bool:
        return self.proc.poll() is None

    def finish(self, *, terminate: bool) -> dict[str, Any]:
        """Wait for the summary; with ``terminate``, SIGTERM first (workers flush, then exit)."""
        if terminate and self.running():
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=STOP_TIMEOUT_SECONDS)
        if self.proc.returncode != 0:
            raise RtdpError(f"rtdp {self.name} failed ({self.proc.returncode}): {err.strip()}")
        lines = out.strip().splitlines()
        summary: dict[str, Any] = json.loads(lines[-1]) if lines else {}
        return summary

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait()
