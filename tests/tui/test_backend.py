"""The real backend's wiring to the core, and its honest answer when a core module is missing."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import NoPrompter
from wa_onboard.core.results import StepResult, StepStatus, TunnelState, TunnelStatus
from wa_onboard.core.setup.plan import SetupOutcome
from wa_onboard.tui.backend import RealBackend, UnavailableTunnel


def test_real_backend_lists_the_core_plan() -> None:
    steps = RealBackend().setup_steps("default", Profile(user="bbadger"))
    ids = [s.id for s in steps]
    assert ids[0] == "profile" and ids[-1] == "browser"
    assert {"login", "env", "kernel", "tunnel"} <= set(ids)
    assert all(s.title for s in steps)


def test_a_tunnel_that_cannot_start_is_down_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from wa_onboard.tui import backend

    def refuse(*args: object) -> None:
        raise WaError("the state directory is not writable", "fix the permissions of ~/.local/state")

    monkeypatch.setattr(backend, "tui_session", refuse)
    session = RealBackend().tunnel("default", Profile(user="bbadger"), NoPrompter())
    assert isinstance(session, UnavailableTunnel) and not session.can_detach
    (status,) = list(session.statuses())
    assert status.state is TunnelState.DOWN
    assert "not writable" in status.message and status.hint


def test_r_without_a_tunnel_session_starts_the_tunnel_or_says_why_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """r (and o's "connect now") on the fallback did nothing: it now asks again for a session, which
    starts the background tunnel as connect --detach does, or raises what the app shows."""
    from wa_onboard.tui import backend
    from wa_onboard.tui.fake import FakeTunnel, status

    def refuse(*args: object) -> None:
        raise WaError("the state directory is not writable", "fix the permissions of ~/.local/state")

    monkeypatch.setattr(backend, "tui_session", refuse)
    session = RealBackend().tunnel("default", Profile(user="bbadger"), NoPrompter())
    assert isinstance(session, UnavailableTunnel)
    with pytest.raises(WaError) as caught:
        session.reconnect()
    assert "cannot start the tunnel" in caught.value.message and "not writable" in caught.value.message
    assert caught.value.hint == "fix the permissions of ~/.local/state"

    up = status(TunnelState.UP)
    started = FakeTunnel([up])
    monkeypatch.setattr(backend, "tui_session", lambda *args: started)
    session.reconnect()
    assert session.can_detach
    watched = session.statuses()
    assert next(watched) == up
    session.stop()
    assert [s.state for s in watched] == [TunnelState.DOWN] and started.calls == ["stop"]


def test_setup_outcome_knows_success_from_a_stop() -> None:
    done = StepResult("a", StepStatus.DONE, "")
    failed = StepResult("b", StepStatus.FAILED, "boom")
    assert SetupOutcome((done, done), 2, "u").succeeded
    assert not SetupOutcome((done,), 2, "u").succeeded
    outcome = SetupOutcome((done, failed), 3, "u")
    assert not outcome.succeeded and outcome.failed is failed


def test_a_broken_config_file_is_one_line_before_any_screen(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[profiles.default\n")
    env = {"WA_ONBOARD_CONFIG": str(config), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "wa_onboard"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("wa-onboard: error: config file") and "Traceback" not in proc.stderr
    assert proc.stdout == ""  # no screen was drawn


def test_setup_flags_reach_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """--yes, --repair and --no-browser given to `setup` reach the core through the app's backend."""
    from wa_onboard.core.setup import run

    seen: dict[str, object] = {}

    def fake_setup(profile, options, prompter, emit, cancel):  # type: ignore[no-untyped-def]
        seen.update(
            yes=options.assume_yes,
            repair=options.repair,
            no_browser=options.no_browser,
            name=options.profile_name,
        )
        return SetupOutcome((), 11, profile.url)

    monkeypatch.setattr(run, "setup", fake_setup)
    backend = RealBackend(assume_yes=True, repair=True, no_browser=True)
    backend.run_setup("ws7", Profile(user="bbadger"), NoPrompter(), lambda e: None, threading.Event())
    assert seen == {"yes": True, "repair": True, "no_browser": True, "name": "ws7"}
    RealBackend().run_setup(
        "default", Profile(user="bbadger"), NoPrompter(), lambda e: None, threading.Event()
    )
    assert seen == {"yes": False, "repair": False, "no_browser": False, "name": "default"}


def test_setup_yes_reaches_the_apps_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """`wa-onboard setup --yes` in a terminal opens the app with a backend that answers --yes."""
    import argparse

    import wa_onboard.tui as tui
    from wa_onboard.tui import app

    made: list[RealBackend] = []

    def fake_make_app(backend, store, name, profile, wizard=False):  # type: ignore[no-untyped-def]
        made.append(backend)
        return None

    class Ctx:
        args = argparse.Namespace(yes=True, repair=False, no_browser=True)
        store = None
        profile_name = "default"

        def load_profile(self, save_flags: bool = False) -> Profile:
            return Profile(user="bbadger")

    monkeypatch.setattr(app, "make_app", fake_make_app)
    monkeypatch.setattr(tui, "run_app", lambda a: 0)
    assert tui.launch_setup(Ctx()) == 0  # type: ignore[arg-type]
    (backend,) = made
    assert (backend.assume_yes, backend.repair, backend.no_browser) == (True, False, True)


def test_the_tui_session_ends_a_stop_on_down_and_comes_back_on_reconnect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dashboard shows the last snapshot it got: after x (stop) that must be DOWN, not the UP
    from before; and r after x starts the tunnel again."""
    from wa_onboard.core.tunnel import daemon
    from wa_onboard.tui.backend import BackgroundSession

    profile = Profile(user="bbadger")
    started: list[str] = []
    stopped: list[str] = []
    up = TunnelStatus("default", TunnelState.UP, url=profile.url, pid=4242, since=1.0)
    monkeypatch.setattr(daemon, "start_detached", lambda profile, name: started.append(name))
    monkeypatch.setattr(daemon, "stop_supervisor", lambda name: stopped.append(name))
    monkeypatch.setattr(daemon, "verify_status", lambda name, profile=None: up)
    session = BackgroundSession("default", profile)

    def watch() -> list[TunnelStatus]:
        seen: list[TunnelStatus] = []
        for status in session.statuses():
            seen.append(status)
            if status.state is TunnelState.UP:
                session.stop()  # as x does, from another thread in the app; here between polls
        return seen

    seen = watch()
    assert [s.state for s in seen] == [TunnelState.CONNECTING, TunnelState.UP, TunnelState.DOWN]
    assert seen[-1].message == "stopped" and seen[-1].since is None and seen[-1].pid is None
    assert started == ["default"] and stopped == ["default"]

    session.reconnect()
    again = watch()
    assert [s.state for s in again] == [TunnelState.CONNECTING, TunnelState.UP, TunnelState.DOWN]
    assert started == ["default", "default"]
