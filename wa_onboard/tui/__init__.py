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


def launch_setup(ctx: CommandContext) -> int:
    """``wa-onboard setup`` in a terminal: the wizard, with the command line's flags and values."""
    profile = ctx.load_profile(save_flags=True)
    from wa_onboard.tui.app import make_app
    from wa_onboard.tui.backend import RealBackend

    args = ctx.args
    backend = RealBackend(assume_yes=args.yes, repair=args.repair, no_browser=args.no_browser)
    app = make_app(backend, ctx.store, ctx.profile_name, profile, wizard=True)
    return int(app.run() or 0)
