"""Fixtures for the lab tests (tests/lab): a real three-host campus built by lab.Lab.

- `lab` (session): the running lab. Skips the lab tests with the reason when not root or not provisioned.
- `member` (function): a fresh, never-onboarded account (password only), deleted after the test.
- `mfa_member` (function): the same with TOTP on the jump host.
- `laptop_home` (function): an empty 0700 folder to use as HOME for the product on the laptop.

Every test in tests/lab gets the `lab` marker, so `pytest -m "not lab"` leaves them out.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import Lab, Member

LAB_DIR = Path(__file__).resolve().parent
HOW_TO_RUN = "sudo bash tests/run.sh"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "lab: needs root; runs against the three-host lab (real sshd, JupyterHub, lmod)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if LAB_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip(f"lab tests need root (run as root: {HOW_TO_RUN})")
    missing = Lab.preflight()
    if missing:
        pytest.skip(
            "lab not provisioned (run as root: sudo bash tests/lab/provision.sh); missing: "
            + ", ".join(missing)
        )
    with Lab() as running:
        yield running


@pytest.fixture
def member(lab: Lab) -> Iterator[Member]:
    m = lab.new_member()
    yield m
    lab.remove_member(m)


@pytest.fixture
def mfa_member(lab: Lab) -> Iterator[Member]:
    m = lab.new_member(mfa=True)
    yield m
    lab.remove_member(m)


@pytest.fixture
def laptop_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chmod(home, 0o700)
    return home
