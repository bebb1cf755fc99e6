"""Every test gets its own HOME and XDG dirs, so nothing touches the real member's files."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

LAB_DIR = Path(__file__).resolve().parent / "lab"


@pytest.fixture(autouse=True)
def isolated_home(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    home.chmod(0o700)
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "WA_ONBOARD_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BROWSER", "true")  # never open a real browser from a test
    assert os.environ["HOME"] == str(home)
    runtime = None
    if LAB_DIR not in Path(str(request.node.path)).resolve().parents:
        # pytest's HOME is too long for a socket path, so control sockets would go to the shared
        # /tmp/wa-onboard-UID, where a lab run's live masters are: a short runtime dir of the test's own.
        runtime = tempfile.mkdtemp(prefix="wa-rt-", dir="/tmp" if Path("/tmp").is_dir() else None)
        monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    yield home
    if runtime is not None:
        shutil.rmtree(runtime, ignore_errors=True)
