from __future__ import annotations

import pytest

from wa_onboard.core.errors import Cancelled
from wa_onboard.core.results import StepStatus
from wa_onboard.core.setup.plan import (
    NotNeeded,
    PlanEvent,
    Step,
    StepContext,
    StepError,
    StepFinished,
    StepStarted,
    plan_succeeded,
    run_plan,
)


class Recorder(Step):
    def __init__(self, sid: str, *, done: str | None = None, fail: bool = False, verify_fails: bool = False):
        self.id, self.title = sid, sid.title()
        self._done, self._fail, self._verify_fails, self.ran = done, fail, verify_fails, False

    def done(self, ctx: StepContext) -> str | None:
        return self._done

    def run(self, ctx: StepContext) -> str:
        self.ran = True
        ctx.output(f"{self.id} working")
        if self._fail:
            raise StepError("it broke", hint="do the fix", detail="the log line")
        return f"{self.id} ok"

    def verify(self, ctx: StepContext) -> None:
        if self._verify_fails:
            raise StepError("not there after all")


def test_done_steps_skip_and_failure_stops_the_plan() -> None:
    events: list[PlanEvent] = []
    steps = [Recorder("a", done="key exists"), Recorder("b"), Recorder("c", fail=True), Recorder("d")]
    results = run_plan(steps, StepContext(emit=events.append))
    assert [r.status for r in results] == [StepStatus.SKIPPED, StepStatus.DONE, StepStatus.FAILED]
    assert results[0].summary == "already done: key exists" and not steps[0].ran
    assert (results[2].hint, results[2].detail) == ("do the fix", "the log line")
    assert not steps[3].ran and not plan_succeeded(results, steps)
    assert isinstance(events[0], StepStarted) and isinstance(events[-1], StepFinished)


def test_verify_failure_fails_the_step() -> None:
    steps = [Recorder("a", verify_fails=True)]
    results = run_plan(steps, StepContext())
    assert results[0].status is StepStatus.FAILED and results[0].summary == "not there after all"


def test_all_done_is_success() -> None:
    steps = [Recorder("a"), Recorder("b", done="yes")]
    assert plan_succeeded(run_plan(steps, StepContext()), steps)


def test_cancel_stops_before_the_next_step() -> None:
    ctx = StepContext()
    ctx.cancel.set()
    with pytest.raises(Cancelled):
        run_plan([Recorder("a")], ctx)


def test_not_needed_is_skipped_without_saying_already_done() -> None:
    """Only work an earlier run did is "already done"; a step with nothing to do this time says why."""

    class NoBrowser(Recorder):
        def done(self, ctx: StepContext) -> NotNeeded:
            return NotNeeded("not opening a browser (--no-browser)")

    step = NoBrowser("browser")
    (result,) = run_plan([step], StepContext())
    assert result.status is StepStatus.SKIPPED and not step.ran
    assert result.summary == "not opening a browser (--no-browser)"
