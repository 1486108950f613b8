"""The dbt image the pods run (images/dbt), checked without Docker: the Dockerfile keeps its
promises (pinned base, two stages, non-root user the pods expect, the environment the pods
rely on), and its requirements resolve from PyPI with wheels only to the same dbt that
rtdp's .venv runs in the tests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.dags.conftest import DAGS, REPO
from tests.dockerfiles import dockerfile_stages

IMAGE = REPO / "images" / "dbt"
sys.path.insert(0, str(DAGS))
from rtdp_airflow import pods  # noqa: E402  (the DAG's helper package lives in dags/)


def _env(stage: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", instruction))
    return env


def test_dockerfile_is_pinned_two_stage_and_non_root() -> None:
    text = (IMAGE / "Dockerfile").read_text()
    (base,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base  # exact patch and suite
    stages = dockerfile_stages(text)
    assert len(stages) == 2
    assert stages[0][0] == "FROM ${BASE_IMAGE} AS build"
    assert "--only-binary=:all:" in " ".join(stages[0])
    final = stages[-1]
    assert any(i.startswith("COPY --from=build /opt/dbt ") for i in final)
    assert not [i for i in final if "pip " in i]  # nothing installed in the final stage
    (user,) = [i.split()[1] for i in final if i.startswith("USER ")]
    assert user == f"{pods.UID}:{pods.UID}"  # the pods' runAsUser / fsGroup
    assert final[-2:] == ['ENTRYPOINT ["dbt"]', 'CMD ["--version"]']


def test_image_environment_matches_what_the_pods_expect() -> None:
    env = _env(dockerfile_stages((IMAGE / "Dockerfile").read_text())[-1])
    # dbt finds the project and profiles without flags: the pods pass dbt's arguments only
    assert env["DBT_PROJECT_DIR"] == env["DBT_PROFILES_DIR"] == "/app/dbt"
    assert env["PATH"].startswith("/opt/dbt/bin:")
    # everything dbt writes is under the pod's writable emptyDir
    for name in ("HOME", "DBT_TARGET_PATH", "DBT_LOG_PATH", "RTDP_HOME"):
        assert (env[name] + "/").startswith(pods.TMP_DIR + "/"), name
    assert env["RTDP_DBT_TARGET"] == "snowflake"
    assert env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"


def test_build_context_is_only_the_dbt_project() -> None:
    lines = [line for line in (IMAGE / "Dockerfile.dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "*"
    assert sorted(line for line in lines if line.startswith("!")) == [
        "!dbt/", "!images/dbt/requirements.txt"]


def test_requirements_resolve_to_wheels_of_the_dbt_the_tests_run(tmp_path: Path) -> None:
    requirements = IMAGE / "requirements.txt"
    pins = dict(re.findall(r"^([\w-]+)==(\S+)$", requirements.read_text(), re.MULTILINE))
    assert {"dbt-core", "dbt-duckdb", "dbt-snowflake"} <= set(pins)
    assert pins["dbt-core"].startswith("1.11.")  # dbt_project.yml: require-dbt-version < 1.12
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                    "--only-binary=:all:", "--quiet", "--report", str(report),
                    "-r", str(requirements)], check=True, timeout=300)
    resolved = {i["metadata"]["name"].lower(): i["metadata"]["version"]
                for i in json.loads(report.read_text())["install"]}
    for name, version in pins.items():
        assert resolved[name] == version
    # rtdp's .venv (where the local-mode tests ran dbt) has the same dbt-core and DuckDB
    venv_python = REPO / ".venv" / "bin" / "python"
    code = ("import json, importlib.metadata as m; "
            "print(json.dumps({n: m.version(n) for n in ('dbt-core', 'dbt-duckdb', 'duckdb')}))")
    local = json.loads(subprocess.run([str(venv_python), "-c", code], capture_output=True,
                                      text=True, check=True).stdout)
    assert {name: resolved[name] for name in local} == local
