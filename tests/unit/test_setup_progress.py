"""The record that tells a finished setup from one that failed or was killed."""

from __future__ import annotations

import stat

import pytest

from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import NoPrompter
from wa_onboard.core.setup import progress as setup_progress, setup
from wa_onboard.core.setup.plan import SetupOptions, Step, StepContext, StepError


class Ok(Step):
    id = "ok"
    title = "works"

    def run(self, ctx: StepContext) -> str:
        return "fine"


class Broken(Step):
    id = "broken"
    title = "breaks"

    def run(self, ctx: StepContext) -> str:
        raise StepError("it broke", "fix it")


class Killed(Step):
    id = "killed"
    title = "the process dies here"

    def run(self, ctx: StepContext) -> str:
        raise KeyboardInterrupt


def run(*steps: Step) -> None:
    setup(Profile(user="bbadger"), SetupOptions(profile_name="default"), NoPrompter(), steps=steps)


def test_no_record_claims_nothing() -> None:
    assert setup_progress.load("default") is None and setup_progress.unfinished("default") is None


def test_a_failed_run_is_unfinished_at_the_failing_step_and_a_good_rerun_finishes() -> None:
    run(Ok(), Broken())
    assert setup_progress.unfinished("default") == setup_progress.SetupProgress(False, "broken", "it broke")
    path = setup_progress.progress_path("default")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    run(Ok())
    assert setup_progress.load("default") == setup_progress.SetupProgress(True)


def test_a_run_killed_midway_stays_unfinished() -> None:
    with pytest.raises(KeyboardInterrupt):
        run(Ok(), Killed())
    progress = setup_progress.unfinished("default")
    assert progress is not None and "interrupted" in progress.message
