"""The Textual app. Imported only when the app runs, so the CLI stays fast."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import Profile, command_line

if TYPE_CHECKING:
    from wa_onboard.context import CommandContext
    from wa_onboard.tui.app import WaApp


class NoTerminal(WaError):
    """``wa-onboard`` alone with stdin or stdout not a terminal: the app would draw into a file or
    wait forever on keys that never come. Bad invocation, so exit 2."""

    exit_code = 2


def require_terminal(profile_name: str, profile: Profile | None) -> None:
    """Refuse to start the app without a terminal, naming the plain command to run instead."""
    # the app reads keys from stdin and draws on stderr (Textual's choice); stdout as `setup` checks it
    if all(stream is not None and stream.isatty() for stream in (sys.stdin, sys.stdout, sys.stderr)):
        return
    if profile is not None and profile.is_complete:
        hint = (
            f"run {command_line(profile_name, 'connect --detach')} (or status, open, doctor); "
            "the app needs a terminal"
        )
    else:
        hint = f"run {command_line(profile_name, 'setup --no-tui --user YOUR_CAE_USERNAME')}"
    raise NoTerminal("wa-onboard alone opens an app, which needs a terminal (stdin, stdout and stderr)", hint)


def exit_status(app: WaApp, result: int | None) -> int:
    """The process's exit code once the app has ended, as the README promises (0, 1, 130).

    A crash leaves ``result`` None and Textual's ``return_code`` non-zero: that must not read as 0."""
    if app.return_code:
        return app.return_code
    return int(result or 0)


def say_goodbye(app: WaApp, out: TextIO | None = None) -> None:
    """After the terminal is restored: what the member must know on leaving (a failed setup's
    one line and the command that resumes it), as plain text that stays in the scrollback."""
    stream = out or sys.stderr
    for line in app.farewell:
        stream.write(line + "\n")
    stream.flush()


def run_app(app: WaApp) -> int:
    """Run the app in this terminal; its exit code, after any parting words."""
    result = app.run()
    say_goodbye(app)
    return exit_status(app, result)


def launch(ctx: CommandContext) -> int:
    """``wa-onboard`` alone: the wizard when the profile is missing or incomplete, else the dashboard."""
    profile = ctx.load_profile()  # a bad config file is a one-line error before any screen opens
    require_terminal(ctx.profile_name, profile)
    from wa_onboard.tui.app import make_app

    app = make_app(store=ctx.store, profile_name=ctx.profile_name, profile=profile)
    return run_app(app)


def launch_setup(ctx: CommandContext) -> int:
    """``wa-onboard setup`` in a terminal: the wizard, with the command line's flags and values."""
    profile = ctx.load_profile(save_flags=True)
    from wa_onboard.tui.app import make_app
    from wa_onboard.tui.backend import RealBackend

    args = ctx.args
    backend = RealBackend(assume_yes=args.yes, repair=args.repair, no_browser=args.no_browser)
    app = make_app(backend, ctx.store, ctx.profile_name, profile, wizard=True)
    return run_app(app)
