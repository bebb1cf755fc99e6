"""One setup run, as both front ends start it: ``setup()`` takes the per-profile lock, runs the eleven
steps (each checks first, so a rerun skips what is finished and resumes where the last run stopped),
records how far it got, closes what it opened, and returns a ``SetupOutcome``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from wa_onboard.core import filelock, paths
from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, Prompter, SecretQuestion
from wa_onboard.core.setup import progress as setup_progress
from wa_onboard.core.setup.plan import EventSink, SetupOptions, SetupOutcome, Step, StepContext, run_plan
from wa_onboard.core.setup.shell import close
from wa_onboard.core.setup.steps_conda import (
    CreateEnv,
    EnsureIpykernel,
    FindConda,
    RegisterKernel,
    VerifyKernel,
)
from wa_onboard.core.setup.steps_finish import OpenBrowser, StartTunnel
from wa_onboard.core.setup.steps_ssh import InstallKey, Login, MakeKey, ValidateProfile


def build_plan() -> list[Step]:
    """The eleven steps, in order."""
    return [
        ValidateProfile(),
        MakeKey(),
        Login(),
        InstallKey(),
        FindConda(),
        CreateEnv(),
        EnsureIpykernel(),
        RegisterKernel(),
        VerifyKernel(),
        StartTunnel(),
        OpenBrowser(),
    ]


# --------------------------------------------------------------------------------------------- the lock


class SetupBusy(WaError):
    """Another setup for the same profile is running."""


def lock_path(profile_name: str) -> Path:
    return paths.state_dir() / f"setup-{profile_name}.lock"


@contextlib.contextmanager
def setup_lock(profile_name: str) -> Iterator[None]:
    """One setup per profile at a time: a second one would race the first on the key and the env."""
    path = lock_path(profile_name)
    handle = paths.open_private(path)
    try:
        if not filelock.try_lock(handle):
            handle.seek(0)
            try:
                holder = handle.read().strip() or "another process"
            except OSError:  # Windows: another handle cannot read the locked byte
                holder = "another process"
            raise SetupBusy(
                f"another setup for profile {profile_name!r} is running (pid {holder})",
                "wait for it to finish, then run setup again (finished steps are skipped)",
            )
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


# --------------------------------------------------------------------------------------------- --yes


class AssumeYes:
    """``--yes`` in front of a prompter that asks in dialogs: a new host key and every non-destructive
    question are answered yes, each answer said through ``say``; a destructive question and every
    secret still go to the member."""

    def __init__(self, prompter: Prompter, say: Callable[[str], None]) -> None:
        self.prompter = prompter
        self.say = say

    def secret(self, question: SecretQuestion) -> str | None:
        return self.prompter.secret(question)

    def confirm(self, question: HostKeyQuestion | ConfirmQuestion) -> bool:
        if isinstance(question, HostKeyQuestion):
            self.say(
                f"trusted the host key of {question.host} (--yes): {question.key_type} {question.fingerprint}"
            )
            return True
        if question.destructive:
            return self.prompter.confirm(question)
        self.say(f"{question.title} yes (--yes)")
        return True


# --------------------------------------------------------------------------------------------- the run


def new_context(
    profile: Profile,
    options: SetupOptions,
    prompter: Prompter,
    emit: EventSink,
    cancel: threading.Event | None = None,
) -> StepContext:
    """The context the steps of one run share, with ``--yes`` (``options.assume_yes``) in front of
    the prompter."""
    ctx = StepContext(profile=profile, options=options, prompter=prompter, emit=emit)
    if cancel is not None:
        ctx.cancel = cancel
    if options.assume_yes:
        ctx.prompter = AssumeYes(prompter, ctx.output)
    return ctx


def setup(
    profile: Profile,
    options: SetupOptions,
    prompter: Prompter,
    emit: EventSink = lambda event: None,
    cancel: threading.Event | None = None,
    *,
    steps: Sequence[Step] | None = None,
) -> SetupOutcome:
    """The whole run for a front end: the per-profile lock, the plan (``steps`` or ``build_plan()``),
    the progress record, and closing what it opened. Progress goes to ``emit``, questions to
    ``prompter``; ``cancel`` stops it between two steps (or two lines of conda's output)."""
    ctx = new_context(profile, options, prompter, emit, cancel)
    plan = list(steps) if steps is not None else build_plan()
    with setup_lock(options.profile_name):
        try:
            results = setup_progress.tracked(options.profile_name, len(plan), lambda: run_plan(plan, ctx))
        finally:
            close(ctx)
    return SetupOutcome(tuple(results), len(plan), ctx.run.url or profile.url, ctx.run.browser_opened)
