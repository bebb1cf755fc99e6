"""One plan of steps for both front ends: the TUI wizard and ``setup --no-tui`` run the same objects.

A step knows whether it is already done (then it is skipped), how to do its work, how to verify it,
and what to tell the member when it fails. Progress reaches the front end as events through one
callback; the runner never prints. The steps of a run share one ``StepContext``: the front end's
``SetupOptions`` and a typed ``SetupRun`` of what earlier steps found.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wa_onboard.core.errors import Cancelled, WaError
from wa_onboard.core.profile import DEFAULT_PROFILE, Profile
from wa_onboard.core.prompts import NoPrompter, Prompter
from wa_onboard.core.results import StepResult, StepStatus

if TYPE_CHECKING:
    from wa_onboard.core.remote import RemoteShell
    from wa_onboard.core.setup.conda_scripts import CondaLocation
    from wa_onboard.core.setup.env_scripts import EnvState
    from wa_onboard.core.setup.kernel_scripts import KernelState
    from wa_onboard.core.tunnel import Engine


class StepError(WaError):
    """A step failed: what failed, the output excerpt that shows it, and the fix."""

    def __init__(self, message: str, hint: str = "", detail: str = "") -> None:
        super().__init__(message, hint)
        self.detail = detail


@dataclass(frozen=True)
class StepStarted:
    step_id: str
    title: str


@dataclass(frozen=True)
class StepOutput:
    """A line of output from the work (ssh, conda), for a log pane."""

    step_id: str
    line: str


@dataclass(frozen=True)
class StepProgress:
    """Progress of slow work; a newer one replaces an older one for the same step."""

    step_id: str
    message: str
    fraction: float | None = None


@dataclass(frozen=True)
class StepFinished:
    result: StepResult


@dataclass(frozen=True)
class NotNeeded:
    """``done``'s answer when there is nothing to do but not because an earlier run did it (the member
    said --no-browser; the env this run created came with ipykernel): skipped, never "already done"."""

    reason: str


PlanEvent = StepStarted | StepOutput | StepProgress | StepFinished
EventSink = Callable[[PlanEvent], None]


EngineFactory = Callable[["Profile", str], "Engine"]


@dataclass(frozen=True)
class SetupOptions:
    """What the front end decided for this run (beyond the profile)."""

    profile_name: str = DEFAULT_PROFILE
    no_browser: bool = False
    assume_yes: bool = False
    """``--yes`` for a front end whose prompter asks in dialogs (the app): new host keys and
    non-destructive questions are answered yes before they reach it, each answer said in the step's
    output. The command line's prompter answers ``--yes`` itself (and prints each answer)."""
    repair: bool = False
    """``--repair``: a broken env may be rebuilt, still only with the member's consent."""
    engine_factory: EngineFactory | None = None
    """Builds an engine for the profile; the default picks OpenSSH or paramiko by ``profile.engine``."""
    open_url: Callable[[str], bool] | None = None
    """Opens the browser; the default is ``core.browser.open_url`` (which honours $BROWSER)."""
    start_tunnel: Callable[[Profile, str], str] | None = None
    """Starts the background tunnel and returns a summary; the default is the supervisor's."""
    tunnel_up: Callable[[Profile, str], str | None] | None = None
    """A summary when the tunnel already runs (the step is then done); the default asks the supervisor."""


@dataclass
class SetupRun:
    """What the steps of one run learn and later steps use."""

    engine: Engine | None = None
    """The logged-in connection the steps share (``close`` ends it)."""
    workstation: RemoteShell | None = None
    """The workstation's shell: the engine's, or one a test put here."""
    key_login: bool = False
    """The key alone logs in to both hosts (proved this run)."""
    conda: CondaLocation | None = None
    env: EnvState | None = None
    """The member's env as last looked at."""
    env_created: bool = False
    """This run created the env (so the ipykernel in it is not "already done")."""
    conda_seconds: float | None = None
    """How long conda itself took to create the env."""
    kernel: KernelState | None = None
    """The kernelspec as last looked at."""
    url: str = ""
    """The hub's URL through the tunnel (the tunnel's own port once it is up)."""
    browser_opened: bool = False


@dataclass
class StepContext:
    """Shared by the steps of one run: the profile, the front end's options, the prompter, and what
    earlier steps found (``run``)."""

    profile: Profile = field(default_factory=Profile)
    options: SetupOptions = field(default_factory=SetupOptions)
    prompter: Prompter = field(default_factory=NoPrompter)
    emit: EventSink = lambda event: None
    cancel: threading.Event = field(default_factory=threading.Event)
    run: SetupRun = field(default_factory=SetupRun)
    current: str = ""

    def output(self, line: str) -> None:
        self.emit(StepOutput(self.current, line))

    def progress(self, message: str, fraction: float | None = None) -> None:
        self.emit(StepProgress(self.current, message, fraction))

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()


class Step:
    """Base class: override ``done``, ``run`` and ``verify``."""

    id: str = ""
    title: str = ""

    def done(self, ctx: StepContext) -> str | NotNeeded | None:
        """If an earlier run already did the work, say what is there in a few words; the step is then
        skipped and reported "already done". A check that runs every time is ``run``, not this."""
        return None

    def run(self, ctx: StepContext) -> str:
        """Do the work; return a one-line summary. Raise StepError on failure."""
        raise NotImplementedError

    def verify(self, ctx: StepContext) -> None:
        """Prove the work took effect; raise StepError if not."""


def run_step(step: Step, ctx: StepContext) -> StepResult:
    ctx.current = step.id
    ctx.emit(StepStarted(step.id, step.title))
    started = time.monotonic()

    def finish(status: StepStatus, summary: str, detail: str = "", hint: str = "") -> StepResult:
        result = StepResult(step.id, status, summary, detail, hint, time.monotonic() - started)
        ctx.emit(StepFinished(result))
        return result

    try:
        ctx.check_cancelled()
        already = step.done(ctx)
        if isinstance(already, NotNeeded):
            return finish(StepStatus.SKIPPED, already.reason)
        if already is not None:
            return finish(StepStatus.SKIPPED, f"already done: {already}")
        summary = step.run(ctx)
        step.verify(ctx)
    except StepError as exc:
        return finish(StepStatus.FAILED, exc.message, exc.detail, exc.hint)
    except Cancelled:
        finish(StepStatus.FAILED, "cancelled", hint="run the same command again to finish")
        raise
    except WaError as exc:
        return finish(StepStatus.FAILED, exc.message, hint=exc.hint)
    return finish(StepStatus.DONE, summary)


def run_plan(steps: Sequence[Step], ctx: StepContext) -> list[StepResult]:
    """Run the steps in order and stop at the first failure; the rest stay pending."""
    results: list[StepResult] = []
    for step in steps:
        result = run_step(step, ctx)
        results.append(result)
        if result.status is StepStatus.FAILED:
            break
    return results


def plan_succeeded(results: Sequence[StepResult], steps: Sequence[Step]) -> bool:
    return len(results) == len(steps) and all(
        r.status in (StepStatus.DONE, StepStatus.SKIPPED) for r in results
    )


@dataclass(frozen=True)
class SetupOutcome:
    """How a setup run ended: the results so far, and what the front end says at the end."""

    results: tuple[StepResult, ...]
    total: int
    url: str
    """Where the hub is: through the tunnel's own port once it is up."""
    browser_opened: bool = False

    @property
    def failed(self) -> StepResult | None:
        return next((r for r in self.results if r.status is StepStatus.FAILED), None)

    @property
    def succeeded(self) -> bool:
        return self.failed is None and len(self.results) == self.total
