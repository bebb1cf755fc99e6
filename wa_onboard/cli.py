"""Command line: parse, dispatch, render. Cheap to start: textual, rich and paramiko load only when used.

Each subcommand lives in ``wa_onboard.commands.<module>`` with a ``run(args, ctx) -> int``; this file
only knows their names, so ``wa-onboard --help`` imports nothing heavy.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from typing import Any

from wa_onboard import __version__
from wa_onboard.context import CommandContext, profile_changes
from wa_onboard.core import validate
from wa_onboard.core.errors import InvalidInput, WaError
from wa_onboard.core.profile import DEFAULT_PROFILE, ProfileStore, UnknownProfile, command_line

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: command name -> module in wa_onboard.commands that implements it
COMMANDS = {
    "setup": "setup",
    "connect": "tunnel",
    "status": "tunnel",
    "disconnect": "tunnel",
    "open": "tunnel",
    "doctor": "doctor",
}

_DESCRIPTION = """\
Get onto the lab's JupyterHub: an SSH tunnel through the campus jump host to the workstation,
your own conda env with the "WA" kernel, and the browser at http://127.0.0.1:8000/jupyter.

Run with no command for the guided app (the setup wizard the first time, then the dashboard).
Every day after that:  wa-onboard connect
"""

_EPILOG = """\
exit codes: 0 success, 1 a step or check failed (the message says what to do),
            2 invalid input, 130 interrupted.
"""


class UsageError(Exception):
    """argparse's complaint, raised instead of printed so ``main`` can retry or say it in one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised as ``UsageError``: ``main`` prints it as one line, exit 2."""

    def error(self, message: str) -> Any:  # argparse's signature returns NoReturn
        raise UsageError(message)


def _add_profile_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("profile (given values are validated and saved to the profile)")
    g.add_argument("--user", help="your CAE username (the same on both hosts)")
    g.add_argument("--jump", metavar="HOST[:PORT]", help="jump host (default best-tux.cae.wisc.edu)")
    g.add_argument("--host", metavar="HOST[:PORT]", help="workstation (default carproject-06.engr.wisc.edu)")
    g.add_argument("--local-port", metavar="PORT", help="port on this laptop (default 8000)")
    g.add_argument("--remote-port", metavar="PORT", help="hub port on the workstation (default 8000)")
    g.add_argument("--base-url", metavar="PATH", help="hub URL prefix (default /jupyter)")
    g.add_argument("--env", metavar="NAME", help="your conda env (default wa)")
    g.add_argument("--kernel-name", metavar="NAME", help="kernel name (default WA)")
    g.add_argument("--display-name", metavar="TEXT", help="name the Launcher shows (default WA)")
    g.add_argument("--python", metavar="X.Y", help="Python version for a new env (default 3.11)")
    g.add_argument("--conda-module", metavar="NAME", help="module that provides conda (default anaconda)")
    g.add_argument(
        "--engine",
        choices=validate.ENGINES,
        help="how to talk SSH (default openssh; paramiko on Windows)",
    )


def _add_profile_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a value given before the subcommand is not overwritten by the subparser's default.
    parser.add_argument(
        "--profile", metavar="NAME", default=argparse.SUPPRESS, help="profile to use (default: default)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wa-onboard",
        usage="wa-onboard [-h] [--version] [--profile NAME] [COMMAND [OPTIONS]]",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wa-onboard {__version__}")
    _add_profile_option(parser)
    # not required: the bare command is the app, so the usage line shows it in brackets
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, prog="wa-onboard")

    def command(name: str, help_text: str, description: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=description or help_text)
        _add_profile_option(p)
        return p

    p = command(
        "setup",
        "first run: key, login, conda env, WA kernel, tunnel, browser",
        "Onboard this laptop: make a key, log in once with your campus password (and MFA code), "
        "install the key, create your conda env with ipykernel, register the WA kernel, start the "
        "tunnel and open the browser. Safe to run again: finished steps are skipped.",
    )
    _add_profile_flags(p)
    p.add_argument("--no-tui", action="store_true", help="plain text progress instead of the app")
    p.add_argument("--yes", action="store_true", help="accept new host keys and the ~/.ssh/config line")
    p.add_argument("--password-stdin", action="store_true", help="read the password from one stdin line")
    p.add_argument("--no-browser", action="store_true", help="print the URL, do not open a browser")
    p.add_argument("--repair", action="store_true", help="offer to rebuild a broken env (asks first)")

    p = command(
        "connect",
        "daily: bring the tunnel up (no prompts) and keep it up",
        "Start the tunnel to the hub and keep it alive, reconnecting after Wi-Fi changes and sleep.",
    )
    _add_profile_flags(p)
    p.add_argument("--no-tui", action="store_true", help="log state changes as text; Ctrl-C stops")
    p.add_argument("--detach", action="store_true", help="keep the tunnel running in the background")
    p.add_argument("--yes", action="store_true", help="accept a new host key")
    p.add_argument("--no-browser", action="store_true", help="do not open the browser")

    p = command("status", "is the tunnel up? (checked, not just remembered)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--log", action="store_true", help="the last day's drops and how long each took to recover"
    )
    command("disconnect", "stop this profile's background tunnel")
    p = command(
        "doctor",
        "find which layer is broken and what to do about it",
        "Check the laptop, the network, SSH, the workstation and the tunnel, layer by layer; each "
        "failure comes with the fix. Exit 0 when nothing failed.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--report", metavar="FILE", help="write a redacted report to send to the lab admins")
    command("open", "open the hub in the browser (starting the tunnel first if needed)")
    return parser


def require_known_profile(ctx: CommandContext) -> None:
    """Every command but setup works on a profile that exists: a mistyped ``--profile`` is said,
    never turned into a new profile with the default hosts.

    The one exception is a laptop with no profile at all, where nothing can be mistyped: status,
    doctor and disconnect say themselves what is missing, and ``connect --user ...`` (with a key
    already in place) saves the profile it was given, and says so.
    """
    command = ctx.args.command
    if command in (None, "setup"):
        return  # the bare command opens the wizard for a profile it does not know: that is setup
    names = ctx.store.names()
    name = ctx.profile_name
    if name in names:
        return
    if not names and (
        command in ("status", "doctor", "disconnect") or (command == "connect" and ctx.args.user)
    ):
        return
    setup = command_line(name, "setup --user YOUR_CAE_USERNAME")
    if names:
        raise UnknownProfile(
            f"no profile named {validate.shown(name)} (known: {', '.join(map(_shown_name, names))})",
            f"pick one with --profile NAME, or create this one with: {setup}",
        )
    raise UnknownProfile(
        f"this laptop is not set up yet (no profile {validate.shown(name)})", f"run: {setup}"
    )


def _shown_name(name: str) -> str:
    """A profile name from the config file as a message shows it: bare when valid, else quoted with its
    control characters visible (a hand-edited file may hold anything)."""
    try:
        return validate.profile_name(name)
    except InvalidInput:
        return validate.shown(name)


def _print_error(exc: WaError) -> None:
    sys.stderr.write(f"wa-onboard: error: {exc.message}\n")
    if exc.hint:
        sys.stderr.write(f"  hint: {exc.hint}\n")


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse; a flag's value that starts with '-' (``--user -oX``) is read as ``--user=-oX``.

    argparse takes such a value for an option and prints its usage; read as the flag's value, it
    meets the same validation, and the same one-line error, as when written with '='.
    """
    words = list(argv)
    while True:
        try:
            return parser.parse_args(words)
        except UsageError as exc:
            match = re.fullmatch(r"argument (--[a-z-]+)(?:/\S+)?: expected one argument", str(exc))
            at = next(
                (i for i, w in enumerate(words[:-1]) if match and w == match[1] and words[i + 1][:1] == "-"),
                None,
            )
            if at is None:
                raise
            words[at : at + 2] = [f"{words[at]}={words[at + 1]}"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse(parser, words)
    except UsageError as exc:
        command = next((w for w in words if w in COMMANDS), "")
        sys.stderr.write(
            f"wa-onboard: error: {exc} (see: wa-onboard {command + ' ' if command else ''}--help)\n"
        )
        return EXIT_USAGE
    try:
        ctx = CommandContext(
            profile_name=validate.profile_name(getattr(args, "profile", DEFAULT_PROFILE)),
            store=ProfileStore(),
            args=args,
        )
        profile_changes(args)  # a bad value is said first, whatever else is wrong
        require_known_profile(ctx)
        if args.command is None:
            from wa_onboard.tui import launch

            return launch(ctx)
        module = importlib.import_module(f"wa_onboard.commands.{COMMANDS[args.command]}")
        return int(module.run(args.command, ctx))
    except InvalidInput as exc:
        _print_error(exc)
        return EXIT_USAGE
    except WaError as exc:
        _print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("wa-onboard: interrupted\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
