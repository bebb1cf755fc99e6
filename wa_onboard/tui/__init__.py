"""The Textual app. Imported only when the app runs, so the CLI stays fast."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wa_onboard.cli import CommandContext


def launch(ctx: CommandContext) -> int:
    """``wa-onboard`` alone: the wizard when the profile is missing or incomplete, else the dashboard."""
    profile = ctx.load_profile()  # a bad config file is a one-line error before any screen opens
    from wa_onboard.tui.app import make_app

    app = make_app(store=ctx.store, profile_name=ctx.profile_name, profile=profile)
    code = app.run()
    return int(code or 0)
