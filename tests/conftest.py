"""Shared fixtures: an isolated RTDP_HOME per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "rtdp-home"
    monkeypatch.setenv("RTDP_HOME", str(home))
    for var in ("RTDP_QUEUE_URL", "RTDP_LAKE_URI"):
        monkeypatch.delenv(var, raising=False)
    return home
