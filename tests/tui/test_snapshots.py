"""Snapshots of every screen state (tests/tui/scenes.py), pinned as SVGs in __snapshots__/.

After a deliberate change to the look: ``pytest tests/tui/test_snapshots.py --snapshot-update``, then
look at the report/diff before committing the new references.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.tui.scenes import SCENES, Scene, _diagnostics, failing_row, release


@pytest.mark.parametrize("scene", SCENES, ids=[s.name for s in SCENES])
def test_screen(scene: Scene, snap_compare: Any, tmp_path: Path) -> None:
    app, _ = scene.build(tmp_path)
    assert snap_compare(app, terminal_size=(80, 24), run_before=scene.drive)


def test_the_diagnostics_screen_brings_the_failure_into_view(tmp_path: Path) -> None:
    """With the real registry's checks the failure is below the fold at 80x24; the screen says it
    scrolls there itself once the checks end (before any key is pressed)."""
    scene = next(s for s in SCENES if s.name == "diagnostics")

    async def scenario() -> bool:
        app, fake = scene.build(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await _diagnostics(pilot)
            for _ in range(5):
                await pilot.pause(0.05)
            checks = app.screen.query_one("#checks")
            row = failing_row(app)
            visible = checks.region.contains_region(row.region)
            release(fake)
            return visible

    assert asyncio.run(scenario())
