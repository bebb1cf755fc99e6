"""Every test gets its own HOME and XDG dirs, so nothing touches the real member's files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    home.chmod(0o700)
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "WA_ONBOARD_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BROWSER", "true")  # never open a real browser from a test
    assert os.environ["HOME"] == str(home)
    return home
