"""skaffold.yaml against skaffold's own JSON schema (v4beta13, from the skaffold v2.16.1 module
that `go mod download` fetches from the Go module proxy: the skaffold binary itself is not
built here), plus what the schema cannot see: every image has an artifact, every
setValueTemplates key is a value the chart accepts, the Airflow values hold no password."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import jsonschema
import pytest
import yaml

from tests.charts.conftest import CHART, helm

REPO: Final = Path(__file__).resolve().parents[2]
SKAFFOLD_MODULE: Final = "github.com/GoogleContainerTools/skaffold/v2@v2.16.1"
CACHE: Final = Path(os.environ.get("RTDP_SKAFFOLD_CACHE",
                                   Path.home() / ".cache" / "rtdp" / "skaffold-mod"))


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load((REPO / "skaffold.yaml").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def schema(config: dict[str, Any]) -> dict[str, Any]:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    env = {**os.environ, "GOMODCACHE": str(CACHE), "GOFLAGS": "-modcacherw",
           "GOTOOLCHAIN": "local"}
    out = subprocess.run([go, "mod", "download", "-json", SKAFFOLD_MODULE], env=env,
                         capture_output=True, text=True, timeout=600, check=True).stdout
    version = config["apiVersion"].removeprefix("skaffold/")
    path = Path(json.loads(out)["Dir"]) / "docs-v2" / "content" / "en" / "schemas" / \
        f"{version}.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_skaffold_yaml_is_valid_against_skaffolds_schema(config: dict[str, Any],
                                                         schema: dict[str, Any]) -> None:
    jsonschema.validate(config, schema)
    broken = {**config, "deploy": {"helm": {"releases": [{"name": "x", "chartPth": "y"}]}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)  # the schema does reject typos


def test_every_image_is_an_artifact(config: dict[str, Any]) -> None:
    artifacts = {a["image"]: a["docker"]["dockerfile"] for a in config["build"]["artifacts"]}
    images = {f"rtdp-{p.parent.name}": str(p.relative_to(REPO))
              for p in (REPO / "images").glob("*/Dockerfile")}
    assert artifacts == images


def test_profiles_kind_and_eks(config: dict[str, Any]) -> None:
    profiles = {p["name"]: p for p in config["profiles"]}
    assert profiles["kind"]["build"]["local"]["push"] is False
    assert profiles["eks"]["build"]["local"]["push"] is True
    for name, values in (("kind", "values-local.yaml"), ("eks", "values-eks.yaml")):
        [patch] = profiles[name]["patches"]
        assert patch["value"] == [f"charts/rtdp/{values}"]
        assert (REPO / patch["value"][0]).exists()


def test_set_value_templates_are_values_the_charts_accept(config: dict[str, Any]) -> None:
    rtdp, airflow = config["deploy"]["helm"]["releases"]
    assert (rtdp["chartPath"], airflow["remoteChart"]) == ("charts/rtdp", "airflow")
    assert airflow["repo"] == "https://airflow.apache.org"
    assert re.fullmatch(r"\d+\.\d+\.\d+", airflow["version"])
    sets = []
    for key, template in rtdp["setValueTemplates"].items():
        image = re.search(r"_(rtdp_\w+)\}\}", template)
        assert image, template
        fake = "registry.example/rtdp-x:abc1234" if "FULLY_QUALIFIED" in template else (
            "abc1234" if "TAG" in template else "registry.example/rtdp-x")
        sets += ["--set", f"{key}={fake}"]
    # The chart's schema (additionalProperties: false) refuses a key it does not know.
    docs = helm("template", "rtdp", str(CHART), "-f", str(CHART / "values-local.yaml"),
                *sets).stdout
    assert "registry.example/rtdp-x:abc1234" in docs
    values = yaml.safe_load((REPO / "charts" / "airflow" / "values.yaml").read_text())
    for key in airflow["setValueTemplates"]:
        node: Any = values
        for part in re.findall(r"[^.\[\]]+", key):
            node = node[int(part)] if part.isdigit() else node[part]
    env = {e["name"]: e["value"] for e in values["env"]}
    assert list(env)[3:5] == ["RTDP_DBT_IMAGE", "RTDP_DBT_IMAGE_TAG"]


def test_airflow_values(config: dict[str, Any]) -> None:
    values = yaml.safe_load((REPO / "charts" / "airflow" / "values.yaml").read_text())
    pins = (REPO / "requirements" / "airflow.txt").read_text()
    assert f"apache-airflow=={values['airflowVersion']}\n" in pins
    assert values["airflowVersion"].startswith("3.")
    assert values["executor"] in {"LocalExecutor", "KubernetesExecutor"}
    assert values["fernetKeySecretName"] == values["apiSecretKeySecretName"] == "airflow-secrets"
    assert values["data"]["metadataSecretName"] == "airflow-secrets"
    assert values["postgresql"]["auth"]["existingSecret"] == "airflow-secrets"
    assert values["webserver"]["defaultUser"]["enabled"] is False
    text = (REPO / "charts" / "airflow" / "values.yaml").read_text()
    assert not re.search(r"(?im)^\s*(password|fernetKey|apiSecretKey|jwtSecret)\s*:", text)
    rtdp_values = yaml.safe_load((CHART / "values-local.yaml").read_text())
    assert rtdp_values["airflow"]["enabled"] is True
    launcher = [d for d in yaml.safe_load_all(helm(
        "template", "rtdp", str(CHART), "-n", "rtdp", "-f", str(CHART / "values-local.yaml"))
        .stdout) if d and d["kind"] == "RoleBinding" and "launcher" in d["metadata"]["name"]]
    [binding] = launcher
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "airflow-scheduler",
                                    "namespace": "airflow"}]
    assert values["scheduler"]["serviceAccount"]["name"] == "airflow-scheduler"
