"""Snapshots of every screen state (tests/tui/scenes.py), pinned as SVGs in __snapshots__/.

After a deliberate change to the look: ``pytest tests/tui/test_snapshots.py --snapshot-update``, then
look at the report/diff before committing the new references.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.tui.scenes import SCENES, Scene


@pytest.mark.parametrize("scene", SCENES, ids=[s.name for s in SCENES])
def test_screen(scene: Scene, snap_compare: Any, tmp_path: Path) -> None:
    app, _ = scene.build(tmp_path)
    assert snap_compare(app, terminal_size=(80, 24), run_before=scene.drive)
