"""Fixtures of the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.fake_workstation import Workstation, make_workstation


@pytest.fixture
def ws(tmp_path: Path) -> Workstation:
    """A workstation on this machine: a login bash with its own HOME and a fake conda."""
    return make_workstation(tmp_path)
