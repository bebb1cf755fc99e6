"""Run a command as a normal user: the faults of issue 10/11 (chmod of a folder not ours, a folder
that cannot be made) only show without root's powers. As root that user is ``nobody`` (setpriv);
as anyone else it is oneself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]


def _prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("as root this needs setpriv (util-linux) to drop to a normal user")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@contextmanager
def normal_home() -> Iterator[Path]:
    """A HOME the normal user owns, under /tmp (pytest's own tmp dirs are root's 0700)."""
    home = Path(tempfile.mkdtemp(prefix="wa-home-", dir="/tmp"))
    if os.geteuid() == 0:
        os.chown(home, NOBODY, NOBODY)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_as_normal_user(
    argv: list[str], home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``argv`` with ``python`` meaning this interpreter, as the normal user, in ``home``."""
    full = [sys.executable if a == "python" else a for a in argv]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "WA_ONBOARD_"))}
    # this checkout's wa_onboard, whatever the venv's editable install points at
    clean.update({"HOME": str(home), "BROWSER": "true", "PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run(
        [*_prefix(), *full], capture_output=True, text=True, timeout=60, env=clean, cwd=home, check=False
    )
