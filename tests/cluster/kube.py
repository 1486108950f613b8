"""The test control plane from Python: start it (``tests/cluster/up``), drive it with the real
kubectl, stop it. Used by the pytest fixtures in ``tests/operators/conftest.py``.

``RTDP_K8S_RUN=DIR`` reuses a control plane already up in DIR (``tests/cluster/up DIR``) and
leaves it running, for a fast edit-test loop; otherwise each test session starts its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

HERE: Final = Path(__file__).resolve().parent
REPO: Final = HERE.parents[1]
T = TypeVar("T")


class KubectlError(RuntimeError):
    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"kubectl {' '.join(args)} exited {result.returncode}: "
                         f"{result.stderr.strip() or result.stdout.strip()}")
        self.stderr = result.stderr


@dataclass(frozen=True)
class Cluster:
    dir: Path
    kubeconfig: Path
    bin: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"}

    def run(self, tool: str, *args: str, input: str | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / tool), *args]
        result = subprocess.run(argv, input=input, capture_output=True, text=True,
                                env=env or self.env, timeout=120, check=False)
        if check and result.returncode != 0:
            raise KubectlError(list(args), result)
        return result

    def kubectl(self, *args: str, input: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, input=input, check=check)

    def get(self, *args: str) -> Any:
        """``kubectl get ARGS -o json``, parsed; None when the object does not exist."""
        result = self.kubectl("get", *args, "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise KubectlError(list(args), result)
        return json.loads(result.stdout)

    def apply(self, manifest: dict[str, Any] | str, *extra: str,
              check: bool = True) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.kubectl("apply", "-f", "-", *extra, input=text, check=check)


def eventually(probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.25,
               what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout:g} s (last: {last!r})")
        time.sleep(interval)


@contextmanager
def control_plane(run_dir: Path) -> Iterator[Cluster]:
    """A running control plane: the one in ``$RTDP_K8S_RUN`` if up, else a new one in
    ``run_dir``, stopped on exit (and by a watchdog if this process dies first)."""
    reuse = os.environ.get("RTDP_K8S_RUN")
    if reuse and subprocess.run([HERE / "down", "--check", reuse], check=False).returncode == 0:
        yield _cluster(Path(reuse))
        return
    env = {**os.environ, "RTDP_K8S_WATCH_PID": str(os.getpid())}
    result = subprocess.run([HERE / "up", str(run_dir)], env=env, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"tests/cluster/up failed:\n{result.stderr[-4000:]}")
    try:
        yield _cluster(Path(result.stdout.strip().splitlines()[-1]))
    finally:
        subprocess.run([HERE / "down", str(run_dir)], check=False)


def _cluster(run_dir: Path) -> Cluster:
    env = dict(line.removeprefix("export ").split("=", 1)
               for line in (run_dir / "env").read_text().splitlines() if line)
    bin_dir = Path(env["PATH"].strip('"').split(":", 1)[0])
    return Cluster(dir=run_dir, kubeconfig=run_dir / "kubeconfig", bin=bin_dir)
