"""A value the member types is shown in the form's error as written, never parsed as markup (a stray
'[/' in the username field crashed the app with MarkupError)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import Label

from tests.tui.scenes import screen_name, wait_for
from wa_onboard.core.profile import ProfileStore
from wa_onboard.tui.app import make_app
from wa_onboard.tui.fake import FakeBackend


def test_a_bracket_typed_in_the_form_is_shown_not_parsed(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(FakeBackend(), ProfileStore(tmp_path / "c.toml"))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: screen_name(app) == "WelcomeScreen", "welcome")
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen_name(app) == "ProfileScreen", "form")
            await pilot.click("#in-user")
            await pilot.press(*"[/]x")
            await pilot.pause()
            shown = str(app.screen.query_one("#err-user", Label).render())
            assert "'[/]x' is not a user name" in shown
            assert screen_name(app) == "ProfileScreen"

    asyncio.run(scenario())
