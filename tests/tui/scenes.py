"""Every screen state worth looking at, built from the real app and the fake backend.

One list serves the snapshot tests (test_snapshots.py) and the screenshot script
(make_screenshots.py), so what the README shows is what the tests pin.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from textual.pilot import Pilot
from textual.widget import Widget

from wa_onboard.core.profile import Profile, ProfileStore
from wa_onboard.core.results import CheckStatus, StepStatus, TunnelState, TunnelStatus
from wa_onboard.core.tunnel.engines import classify, hops
from wa_onboard.tui.app import WaApp, make_app
from wa_onboard.tui.fake import (
    FakeBackend,
    FakeStep,
    FakeTunnel,
    conda_failure,
    demo_steps,
    mfa_question,
    status,
)

SINCE = 1_700_000_000.0
NOW = SINCE + 3723  # uptime 1h 02m
MEMBER = Profile(user="bbadger")


async def wait_for(pilot: Pilot[int], condition: Callable[[], bool], what: str, tries: int = 500) -> None:
    """Let the app run until ``condition`` holds (workers and messages need a few turns)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def screen_name(app: WaApp) -> str:
    return type(app.screen).__name__


async def through_form(pilot: Pilot[int], user: str = "bbadger") -> None:
    """Welcome -> form -> type the username -> continue."""
    app = pilot.app
    await wait_for(pilot, lambda: screen_name(app) == "WelcomeScreen", "the welcome screen")
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen_name(app) == "ProfileScreen", "the profile form")
    await pilot.press(*user, "enter")
    await wait_for(pilot, lambda: screen_name(app) != "ProfileScreen", "the form to submit")


async def answer_host_key(pilot: Pilot[int]) -> None:
    await wait_for(pilot, lambda: screen_name(pilot.app) == "HostKeyModal", "the host-key question")
    await pilot.press("t")


async def answer_password(pilot: Pilot[int], password: str = "hunter2") -> None:
    await wait_for(pilot, lambda: screen_name(pilot.app) == "SecretModal", "the password question")
    await pilot.press(*password, "enter")


async def answer_confirm(pilot: Pilot[int], key: str = "y") -> None:
    await wait_for(pilot, lambda: screen_name(pilot.app) == "ConfirmModal", "the ~/.ssh/config question")
    await pilot.press(key)


def row_status(app: WaApp, step_id: str) -> StepStatus:
    from wa_onboard.tui.widgets import StepRow, widget_id

    return app.screen.query_one(f"#{widget_id('step', step_id)}", StepRow).status


@dataclass
class Scene:
    """An app in a known state: how to build it and the keys/waits that get it there."""

    name: str
    title: str
    profile: Profile | None = None
    backend: Callable[[], FakeBackend] = FakeBackend
    drive: Callable[[Pilot[int]], Awaitable[None]] | None = None
    theme: str = "textual-dark"
    holds: list[threading.Event] = field(default_factory=list)

    def build(self, home: Path) -> tuple[WaApp, FakeBackend]:
        fake = self.backend()
        store = ProfileStore(home / "config.toml")
        if self.profile is not None:
            store.save(self.profile)
        app = make_app(fake, store, profile=self.profile, clock=lambda: NOW)
        app.theme = self.theme
        # the indeterminate progress bar (conda gives no fraction) moves with the clock: hold it still
        app.animation_level = "none"
        return app, fake


# -- the wizard --------------------------------------------------------------------------------


async def _welcome(pilot: Pilot[int]) -> None:
    await wait_for(pilot, lambda: screen_name(pilot.app) == "WelcomeScreen", "the welcome screen")


async def _form_error(pilot: Pilot[int]) -> None:
    await _welcome(pilot)
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen_name(pilot.app) == "ProfileScreen", "the profile form")
    await pilot.press(*"b badger")
    await pilot.pause()


def _held_env_backend() -> FakeBackend:
    fake = FakeBackend()
    for step in fake.steps:
        if step.id == "env":
            step.hold = threading.Event()
    return fake


async def _steps_running(pilot: Pilot[int]) -> None:
    await through_form(pilot)
    await answer_confirm(pilot)
    await answer_host_key(pilot)
    await answer_password(pilot)
    await wait_for(pilot, lambda: row_status(pilot.app, "env") is StepStatus.RUNNING, "the env step")
    await wait_for(pilot, lambda: not pilot.app.screen.query_one("#progress").has_class("hidden"), "progress")
    await pilot.pause()


async def _host_key(pilot: Pilot[int]) -> None:
    await through_form(pilot)
    await answer_confirm(pilot)
    await wait_for(pilot, lambda: screen_name(pilot.app) == "HostKeyModal", "the host-key question")


async def _password(pilot: Pilot[int]) -> None:
    await through_form(pilot)
    await answer_confirm(pilot)
    await answer_host_key(pilot)
    await wait_for(pilot, lambda: screen_name(pilot.app) == "SecretModal", "the password question")
    await pilot.press(*"hunter2")


def _mfa_backend() -> FakeBackend:
    fake = FakeBackend()
    login = next(s for s in fake.steps if s.id == "login")
    login.questions = [mfa_question()]
    return fake


async def _mfa(pilot: Pilot[int]) -> None:
    await through_form(pilot)
    await answer_confirm(pilot)
    await wait_for(pilot, lambda: screen_name(pilot.app) == "SecretModal", "the MFA question")
    await pilot.press(*"123456")


async def _include_consent(pilot: Pilot[int]) -> None:
    await through_form(pilot)
    await wait_for(pilot, lambda: screen_name(pilot.app) == "ConfirmModal", "the ~/.ssh/config question")


async def _done(pilot: Pilot[int]) -> None:
    await through_form(pilot)
    await answer_confirm(pilot)
    await answer_host_key(pilot)
    await answer_password(pilot)
    await wait_for(pilot, lambda: screen_name(pilot.app) == "DoneScreen", "the done screen")


def _conda_fails_backend() -> FakeBackend:
    fake = FakeBackend()
    for step in fake.steps:
        step.questions = []
        if step.id == "env":
            step.fail = conda_failure("3.99")
    return fake


async def _failed(pilot: Pilot[int]) -> None:
    await through_form(pilot)
    await wait_for(pilot, lambda: not pilot.app.screen.query_one("#failure").has_class("hidden"), "failure")
    await pilot.app.workers.wait_for_complete()
    log = pilot.app.screen.query_one("#log")
    await wait_for(pilot, lambda: log.scroll_y == log.max_scroll_y, "the log to show its end")  # type: ignore[attr-defined]
    await pilot.pause()


# -- dashboard and diagnostics -----------------------------------------------------------------


def _tunnel_backend(*statuses: TunnelState, **changes: object) -> Callable[[], FakeBackend]:
    def build() -> FakeBackend:
        return FakeBackend(tunnel_session=FakeTunnel([status(s, **changes) for s in statuses]))

    return build


def _showing(state: TunnelState) -> Callable[[Pilot[int]], Awaitable[None]]:
    async def drive(pilot: Pilot[int]) -> None:
        app = pilot.app
        await wait_for(pilot, lambda: screen_name(app) == "DashboardScreen", "the dashboard")
        await wait_for(
            pilot, lambda: app.last_status is not None and app.last_status.state is state, state.value
        )
        await pilot.pause()

    return drive


async def _quit_modal(pilot: Pilot[int]) -> None:
    await _showing(TunnelState.UP)(pilot)
    await pilot.press("q")
    await wait_for(pilot, lambda: screen_name(pilot.app) == "QuitModal", "the quit question")


async def _help(pilot: Pilot[int]) -> None:
    await _showing(TunnelState.UP)(pilot)
    await pilot.press("question_mark")
    await wait_for(pilot, lambda: screen_name(pilot.app) == "HelpScreen", "the help screen")


async def _diagnostics(pilot: Pilot[int]) -> None:
    await _showing(TunnelState.UP)(pilot)
    await pilot.press("d")
    await wait_for(pilot, lambda: screen_name(pilot.app) == "DiagnosticsScreen", "diagnostics")
    await wait_for(pilot, lambda: pilot.app.screen.settled, "the checks to finish")  # type: ignore[attr-defined]
    await pilot.pause()


def failing_row(app: WaApp) -> Widget:
    """The first failed check's row on the diagnostics screen."""
    from wa_onboard.tui.widgets import CheckRow

    return next(r for r in app.screen.query(CheckRow) if r.result.status is CheckStatus.FAIL)


async def _diagnostics_failure(pilot: Pilot[int]) -> None:
    """The checks done, and the first failure in view (where the member looks first)."""
    await _diagnostics(pilot)
    pilot.app.screen.query_one("#checks").scroll_to_widget(failing_row(pilot.app), animate=False)
    await pilot.pause()


async def _diagnostics_scrolled(pilot: Pilot[int]) -> None:
    await _diagnostics(pilot)
    await pilot.press("end")
    pilot.app.screen.query_one("#checks").scroll_end(animate=False)
    await pilot.pause()


def _down_backend() -> FakeBackend:
    """The dashboard after the supervisor lost the jump host: its words are the OpenSSH engine's own,
    classified from what ssh prints when the host does not answer."""
    jump = hops(MEMBER)[0]
    lost = classify(
        f"ssh: connect to host {jump.host} port {jump.port}: Connection timed out\r\n", jump, jump
    )
    # what backend.BackgroundSession yields when start_detached raises
    down = TunnelStatus("default", TunnelState.DOWN, url=MEMBER.url, message=lost.message, hint=lost.hint)
    return FakeBackend(tunnel_session=FakeTunnel([down]))


SCENES = [
    Scene("welcome", "Welcome", drive=_welcome),
    Scene("profile-form-error", "Profile form with a validation error", drive=_form_error),
    Scene("host-key-modal", "Host key: trust or cancel", backend=FakeBackend, drive=_host_key),
    Scene("password-modal", "Password, masked, with the hop that asks", drive=_password),
    Scene("mfa-modal", "MFA code, as the server asks it", backend=_mfa_backend, drive=_mfa),
    Scene("include-consent", "Consent for the ~/.ssh/config line", drive=_include_consent),
    Scene("steps-running", "Setup steps running", backend=_held_env_backend, drive=_steps_running),
    Scene("setup-failed", "A step failed: error, hint, retry", backend=_conda_fails_backend, drive=_failed),
    Scene("done", "Done", drive=_done),
    Scene("dashboard", "Dashboard: connected", profile=MEMBER, drive=_showing(TunnelState.UP)),
    Scene(
        "dashboard-reconnecting",
        "Dashboard: reconnecting",
        profile=MEMBER,
        backend=_tunnel_backend(TunnelState.UP, TunnelState.RECONNECTING, reconnects=2),
        drive=_showing(TunnelState.RECONNECTING),
    ),
    Scene(
        "dashboard-down",
        "Dashboard: down",
        profile=MEMBER,
        backend=_down_backend,
        drive=_showing(TunnelState.DOWN),
    ),
    Scene(
        "dashboard-light",
        "Dashboard, light theme",
        profile=MEMBER,
        drive=_showing(TunnelState.UP),
        theme="textual-light",
    ),
    Scene("quit-modal", "Quit with a live tunnel", profile=MEMBER, drive=_quit_modal),
    Scene("help", "Help", profile=MEMBER, drive=_help),
    Scene("diagnostics", "Diagnostics with a failure", profile=MEMBER, drive=_diagnostics_failure),
    Scene(
        "diagnostics-end", "Diagnostics, scrolled to the failure", profile=MEMBER, drive=_diagnostics_scrolled
    ),
]


def release(fake: FakeBackend) -> None:
    """Let every held step and check go, so the app can exit."""
    for step in fake.steps:
        if step.hold is not None:
            step.hold.set()
    if fake.check_hold is not None:
        fake.check_hold.set()


def steps_without_questions() -> list[FakeStep]:
    steps = demo_steps()
    for step in steps:
        step.questions = []
    return steps
