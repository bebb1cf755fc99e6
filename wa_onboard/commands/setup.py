"""``wa-onboard setup``: the onboarding plan, as the TUI wizard or as plain lines (``--no-tui``).

Plain mode prints one line per step with its status and time, conda's own output indented under
the step that runs it, and on failure the error, the output excerpt and the hint. Exit 0 only when
every step is done (or already was) and verified.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from wa_onboard.commands.prompter_cli import CliPrompter
from wa_onboard.core.prompts import SecretQuestion
from wa_onboard.core.results import StepResult, StepStatus
from wa_onboard.core.setup.plan import PlanEvent, StepFinished, StepOutput, StepStarted

if TYPE_CHECKING:
    from wa_onboard.context import CommandContext

_MARK = {StepStatus.DONE: "done", StepStatus.SKIPPED: "ok", StepStatus.FAILED: "FAILED"}


class SetupPrompter(CliPrompter):
    """The command line's prompter, plus two things setup needs.

    The campus password is asked (or read from stdin) once and offered, in memory only, to the
    other hop's first password question (the paramiko engine asks each hop). And it remembers
    when ``--password-stdin`` had no password to give, so the failure can say so.
    """

    _password: str | None = None
    stdin_empty = False

    def secret(self, question: SecretQuestion) -> str | None:
        if question.kind == "password" and question.attempt == 1 and self._password is not None:
            return self._password
        answer = super().secret(question)
        if question.kind == "password":
            if answer is not None:
                self._password = answer
            elif self.password_stdin and self._password is None:
                self.stdin_empty = True
        return answer


class LinePrinter:
    """Renders plan events as plain lines."""

    def __init__(self, titles: dict[str, str], out: TextIO | None = None) -> None:
        self.titles = titles
        self.order = {step_id: n for n, step_id in enumerate(titles, 1)}
        self.out = out or sys.stdout

    def __call__(self, event: PlanEvent) -> None:
        if isinstance(event, StepStarted):
            return
        if isinstance(event, StepOutput):
            self._write(f"      | {event.line}")
        elif isinstance(event, StepFinished):
            r = event.result
            n = self.order.get(r.step_id, 0)
            self._write(
                f"[{n:2}/{len(self.titles)}] {_MARK.get(r.status, r.status.value):6} {r.seconds:6.1f}s  "
                f"{self.titles.get(r.step_id, r.step_id)}: {r.summary}"
            )

    def _write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


def _wants_wizard(args: argparse.Namespace) -> bool:
    """The app unless --no-tui, a password on stdin, or no terminal to draw it on."""
    return not (args.no_tui or args.password_stdin) and sys.stdin.isatty() and sys.stdout.isatty()


def _report_failure(failed: StepResult, titles: dict[str, str], prompter: SetupPrompter) -> None:
    message, hint = failed.summary, failed.hint
    if failed.step_id == "login" and prompter.stdin_empty:
        message = "a password is needed (the key does not log in yet) but nothing came on stdin"
        hint = "pipe the campus password in: printf '%s\\n' \"$PW\" | wa-onboard setup --password-stdin ..."
    err = sys.stderr
    err.write(f"wa-onboard: setup failed at '{titles.get(failed.step_id, failed.step_id)}': {message}\n")
    if failed.detail:
        err.write("".join(f"  | {line}\n" for line in failed.detail.splitlines()))
    if hint:
        err.write(f"  hint: {hint}\n")


def run(command: str, ctx: CommandContext) -> int:
    from wa_onboard.core import setup as setup_core

    args = ctx.args
    if _wants_wizard(args):
        from wa_onboard.tui import launch_setup

        return launch_setup(ctx)
    profile = ctx.load_profile(save_flags=True)
    profile.require_complete()
    # --yes goes to this prompter, which prints each answer it gives (the app's goes through options)
    prompter = SetupPrompter(password_stdin=args.password_stdin, assume_yes=args.yes)
    steps = setup_core.build_plan()
    titles = {step.id: step.title for step in steps}
    options = setup_core.SetupOptions(
        profile_name=ctx.profile_name, no_browser=args.no_browser, repair=args.repair
    )
    outcome = setup_core.setup(profile, options, prompter, LinePrinter(titles), steps=steps)
    if outcome.succeeded:
        print(f"setup finished: open {outcome.url} and pick the {profile.display_name!r} kernel")
        return 0
    if outcome.failed is not None:
        _report_failure(outcome.failed, titles, prompter)
    return 1
