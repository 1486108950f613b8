"""A static security scan of the chart as rendered per profile with checkov (PyPI). Every
skipped check has its reason in charts/rtdp/.checkov.yaml; any other failure fails the test.

checkov pins packages that clash with .venv's, so it lives in a venv of its own: $RTDP_CHECKOV,
else ~/.cache/rtdp/checkov-venv/bin/checkov (python3.11 -m venv …; pip install checkov)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.charts.conftest import CHART, PROFILES, helm

CHECKOV = Path(os.environ.get("RTDP_CHECKOV", Path.home() / ".cache" / "rtdp" /
                              "checkov-venv" / "bin" / "checkov"))


@pytest.mark.skipif(not CHECKOV.exists(), reason=f"checkov not installed at {CHECKOV}")
def test_checkov_finds_nothing_unexplained(tmp_path: Path) -> None:
    for profile in ("local", "eks"):
        rendered = helm("template", "rtdp", str(CHART), "-n", "rtdp", *PROFILES[profile]).stdout
        (tmp_path / f"{profile}.yaml").write_text(rendered)
    result = subprocess.run([CHECKOV, "-d", str(tmp_path), "--config-file",
                             str(CHART / ".checkov.yaml"), "-o", "json"],
                            capture_output=True, text=True, timeout=600)
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{f['check_id']} {f['resource']}" for r in reports
              for f in r["results"]["failed_checks"]]
    assert failed == []
    assert sum(r["summary"]["passed"] for r in reports) > 300
