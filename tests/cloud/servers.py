"""Local stand-ins for AWS and Snowflake, started and stopped by the tests themselves.

Every server binds 127.0.0.1 on a free port and logs to a file beside the test's temp dir.

- moto's server (PyPI ``moto[server]``): SQS and S3, always available; slow (tens of
  messages per second), so tests on it keep volumes small.
- ElasticMQ (Maven Central) for SQS and MinIO (Go module proxy) for S3: real servers,
  installed into a cache outside the repository by ``tests/cloud/emulators/install.sh``
  (``make test`` runs it). When one is not there, :func:`unavailable` says why and the tests
  that need it skip with that reason.
- fakesnow's server mode (PyPI ``fakesnow[server]``): Snowflake's HTTP API over DuckDB.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final

INSTALL_SCRIPT: Final = Path(__file__).parent / "emulators" / "install.sh"
ACCESS_KEY: Final = "rtdptest"
SECRET_KEY: Final = "rtdptest-secret-key"
REGION: Final = "us-east-1"
START_TIMEOUT_SECONDS: Final = 90.0


def _pinned(name: str) -> str:
    match = re.search(rf'^{name}="([^"]+)"', INSTALL_SCRIPT.read_text(), re.MULTILINE)
    assert match, f"{name} not found in {INSTALL_SCRIPT}"
    return match.group(1)


def cache_dir() -> Path:
    configured = os.environ.get("RTDP_EMULATOR_CACHE")
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rtdp" / "emulators"
    return Path(configured) if configured else base


def elasticmq_classpath() -> Path:
    return cache_dir() / f"elasticmq-{_pinned('ELASTICMQ_VERSION')}" / "lib"


def minio_binary() -> Path:
    return cache_dir() / f"minio-{_pinned('MINIO_VERSION')}" / "bin" / "minio"


def unavailable(name: str) -> str | None:
    """Why the emulator ``name`` cannot run here, or None if it can."""
    hint = "run tests/cloud/emulators/install.sh (make test does)"
    if name == "elasticmq":
        if shutil.which("java") is None:
            return "ElasticMQ needs java on PATH"
        if not any(elasticmq_classpath().glob("elasticmq-server_*.jar")):
            return f"ElasticMQ is not installed in {elasticmq_classpath()}: {hint}"
    elif name == "minio" and not minio_binary().is_file():
        return f"MinIO is not installed at {minio_binary()}: {hint}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


def _wait_until_ready(server: Server, probe_url: str) -> Server:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n"
                               f"{server.log_tail()}")
        try:
            with urllib.request.urlopen(probe_url, timeout=2):
                return server
        except urllib.error.HTTPError:
            return server  # it answers: up (an error status is fine for a probe)
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{server.name} not ready in {START_TIMEOUT_SECONDS:.0f}s:\n"
                       f"{server.log_tail()}")


def _spawn(name: str, command: list[str], log_dir: Path,
           env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    log = log_dir / f"{name}.log"
    with open(log, "wb") as fh:
        process = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    return process, log


def start_moto(log_dir: Path) -> Server:
    port = free_port()
    process, log = _spawn("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                   "-p", str(port)], log_dir)
    endpoint = f"http://127.0.0.1:{port}"
    return _wait_until_ready(Server("moto", endpoint, process, log), f"{endpoint}/moto-api/")


def start_elasticmq(log_dir: Path) -> Server:
    port = free_port()
    conf = log_dir / "elasticmq.conf"
    conf.write_text(
        'include classpath("application.conf")\n'
        f'node-address {{ protocol = "http", host = "127.0.0.1", port = {port},'
        ' context-path = "" }\n'
        f'rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "127.0.0.1",'
        ' sqs-limits = strict }\n'
        "rest-stats { enabled = false }\n"
        f'aws {{ region = "{REGION}", accountId = "000000000000" }}\n'
    )
    process, log = _spawn("elasticmq", [
        "java", "-Xmx256m", f"-Dconfig.file={conf}",
        "-cp", f"{elasticmq_classpath()}/*", "org.elasticmq.server.Main",
    ], log_dir)
    endpoint = f"http://127.0.0.1:{port}"
    return _wait_until_ready(Server("elasticmq", endpoint, process, log), f"{endpoint}/")


def start_minio(log_dir: Path) -> Server:
    port, console = free_port(), free_port()
    data = log_dir / "minio-data"
    data.mkdir(exist_ok=True)
    process, log = _spawn("minio", [
        str(minio_binary()), "server", str(data), "--quiet",
        "--address", f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{console}",
    ], log_dir, env={"MINIO_ROOT_USER": ACCESS_KEY, "MINIO_ROOT_PASSWORD": SECRET_KEY,
                     "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"})
    endpoint = f"http://127.0.0.1:{port}"
    return _wait_until_ready(Server("minio", endpoint, process, log),
                             f"{endpoint}/minio/health/ready")


def start_fakesnow(log_dir: Path) -> Server:
    port = free_port()
    process, log = _spawn("fakesnow", [sys.executable, "-m", "fakesnow", "-s", "--host",
                                       "127.0.0.1", "-p", str(port)], log_dir)
    endpoint = f"http://127.0.0.1:{port}"
    return _wait_until_ready(Server("fakesnow", endpoint, process, log), f"{endpoint}/")


def aws_environment() -> dict[str, str]:
    """Credentials and region for every emulator; no file or metadata service consulted."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


AWS_VARIABLES_TO_CLEAR: Final = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                                 "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_S3",
                                 "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
