"""The Lambda image definition and its CodeBuild pipeline, checked without Docker or AWS.

No Docker daemon runs here, so the image itself is not built. What can be checked is: the
package the image installs (rtdp's wheel, with the Snowflake SQL) serves the handler the image
names, and answers the smoke-test event the buildspec sends; the Dockerfile keeps its promises
(pinned base, two stages, nothing but the runtime and the packages in the final one, a non-root
user); and every buildspec command fails the build when it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dockerfiles import dockerfile_stages

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "images" / "lambda" / "Dockerfile"
BUILDSPEC = ROOT / "buildspec.yml"
PINNED_BASE = re.compile(r"public\.ecr\.aws/lambda/python:3\.11\.\d{4}\.\d{2}\.\d{2}\.\d{2}")


def test_dockerfile_is_pinned_multi_stage_and_lean() -> None:
    text = DOCKERFILE.read_text()
    (base,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    assert PINNED_BASE.fullmatch(base), base
    stages = dockerfile_stages(text)
    assert len(stages) >= 2
    assert stages[0][0].endswith(" AS build")
    final = stages[-1]
    # nothing is built or installed in the final stage: it only copies the packages in
    assert not [i for i in final if i.upper().startswith("RUN ")]
    assert any(i.startswith("COPY --from=build ") for i in final)
    (user,) = [i.split()[1] for i in final if i.upper().startswith("USER ")]
    assert user.split(":")[0] not in ("0", "root")
    assert final[-1] == 'CMD ["rtdp.aws_lambda.handler"]'
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:][:3] == ["!pyproject.toml", "!README.md", "!src/"]


def _commands(buildspec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(phase, command) for phase, spec in buildspec["phases"].items()
            for command in spec["commands"]]


def test_buildspec_fails_loudly_and_deploys_an_immutable_image() -> None:
    text = BUILDSPEC.read_text()
    spec = yaml.safe_load(text)
    assert spec["env"]["shell"] == "bash"
    assert "|| true" not in text and ":latest" not in text
    assert all(p.get("on-failure") == "ABORT" for p in spec["phases"].values())
    for phase, command in _commands(spec):
        assert command.startswith("set -euo pipefail\n"), phase
        check = subprocess.run(["bash", "-n"], input=command, text=True, capture_output=True)
        assert check.returncode == 0, (phase, check.stderr)
    build = spec["phases"]["build"]["commands"][0]
    assert 'tag="$CODEBUILD_RESOLVED_SOURCE_VERSION"' in build
    assert "--file images/lambda/Dockerfile" in build
    post = spec["phases"]["post_build"]["commands"][0]
    assert 'docker push "$ECR_REPOSITORY_URI:$tag"' in post
    assert '--image-uri "$ECR_REPOSITORY_URI@$digest"' in post  # by digest, not by tag


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # The image's build context (Dockerfile.dockerignore), built as the Dockerfile does
    # (build isolation: setuptools from PyPI or pip's cache), outside the repository.
    context = tmp_path_factory.mktemp("context")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(ROOT / "src", context / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                           "--wheel-dir", str(out), str(context)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (built,) = out.glob("rtdp-*.whl")
    return built


def test_the_wheel_the_image_installs_serves_the_handler(
    wheel: Path, tmp_path: Path
) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "rtdp/aws_lambda.py" in names
    assert len([n for n in names if re.fullmatch(r"rtdp/snowflake/V\d{3}__\w+\.sql", n)]) == 6
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert re.search(r"Requires-Dist: boto3.*extra == \"aws\"", metadata)

    task_root = tmp_path / "var-task"
    zipfile.ZipFile(wheel).extractall(task_root)
    # As the buildspec's smoke test: the handler the image names, on an empty SQS batch.
    script = (
        "import json, rtdp.aws_lambda as h, rtdp.snowflake.init as s;"
        f"assert h.__file__.startswith({str(task_root)!r}), h.__file__;"
        "assert len(s.sql_files()) == 6;"
        "print(json.dumps(h.handler({'Records': []}, None)))"
    )
    env = {**os.environ, "PYTHONPATH": str(task_root), "RTDP_LAKE_URI": "s3://rtdp-lake/prod",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "x", "AWS_EC2_METADATA_DISABLED": "true",
           "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"batchItemFailures": []}
