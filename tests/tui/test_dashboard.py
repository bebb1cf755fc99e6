"""The dashboard follows the supervisor's snapshots and drives the tunnel; quitting asks about it."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual.widgets import Label

from tests.tui.scenes import NOW, SINCE, screen_name, wait_for
from wa_onboard.core.profile import Profile, ProfileStore
from wa_onboard.core.prompts import SecretQuestion
from wa_onboard.core.results import TunnelState
from wa_onboard.core.setup import progress as setup_progress
from wa_onboard.tui.app import WaApp, make_app
from wa_onboard.tui.fake import FakeBackend, FakeTunnel, status

MEMBER = Profile(user="bbadger")


def fact(app: WaApp, key: str) -> str:
    return str(app.screen.query_one(f"#f-{key}", Label).render())


def state_text(app: WaApp) -> str:
    return str(app.screen.query_one("#state", Label).render()).strip()


def dashboard_app(tmp_path: Path, tunnel: FakeTunnel, store: ProfileStore | None = None) -> WaApp:
    store = store or ProfileStore(tmp_path / "c.toml")
    return make_app(FakeBackend(tunnel_session=tunnel), store, profile=MEMBER, clock=lambda: NOW)


def test_dashboard_follows_up_lost_reconnecting_and_back(tmp_path: Path) -> None:
    tunnel = FakeTunnel([status(TunnelState.CONNECTING), status(TunnelState.UP)])
    seen: list[tuple[str, ...]] = []

    async def scenario() -> None:
        app = dashboard_app(tmp_path, tunnel)
        async with app.run_test(size=(80, 24)) as pilot:

            async def reach(state: TunnelState) -> None:
                await wait_for(
                    pilot, lambda: app.last_status is not None and app.last_status.state is state, state
                )
                await pilot.pause()
                state_label = app.screen.query_one("#state", Label)
                seen.append(
                    (
                        state_text(app),
                        f"-{state.name.lower()}" if state_label.has_class(f"-{state.name.lower()}") else "",
                        fact(app, "uptime"),
                        fact(app, "reconnects"),
                        str(app.screen.query_one("#tunnel-message").render()),
                    )
                )

            await reach(TunnelState.UP)
            assert fact(app, "url") == "http://localhost:8000/jupyter/"
            assert fact(app, "port") == "8000 (127.0.0.1 only)"
            assert fact(app, "latency") == "23 ms"
            assert fact(app, "hub") == "JupyterHub 5.2.1"
            assert fact(app, "route") == "bbadger@best-tux.cae.wisc.edu → carproject-06.engr.wisc.edu"
            lost = status(
                TunnelState.DOWN, message="connection to the jump host lost", hint="waiting for network"
            )
            tunnel.push(lost)
            await reach(TunnelState.DOWN)
            tunnel.push(status(TunnelState.RECONNECTING, reconnects=0))
            await reach(TunnelState.RECONNECTING)
            tunnel.push(status(TunnelState.UP, reconnects=1, since=NOW - 5))
            await reach(TunnelState.UP)

    asyncio.run(scenario())
    assert seen == [
        ("● connected", "-up", "1h 02m", "0", ""),
        ("○ down", "-down", "-", "0", "connection to the jump host lost\n→ waiting for network"),
        ("◐ reconnecting", "-reconnecting", "-", "0", ""),
        ("● connected", "-up", "5s", "1", ""),
    ]


def test_keys_reconnect_disconnect_and_open(tmp_path: Path) -> None:
    tunnel = FakeTunnel([status(TunnelState.UP)])
    fake_holder: dict[str, Any] = {}

    async def scenario() -> None:
        app = dashboard_app(tmp_path, tunnel)
        fake_holder["fake"] = app.backend
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.last_status is not None and app.last_status.connected, "up")
            await pilot.press("r")
            await wait_for(pilot, lambda: app.last_status.reconnects == 1, "the reconnect")
            assert app.last_status.state is TunnelState.UP
            await pilot.press("o")
            await wait_for(pilot, lambda: bool(fake_holder["fake"].opened), "the browser")
            await pilot.press("x")
            await wait_for(pilot, lambda: app.last_status.state is TunnelState.DOWN, "down after disconnect")
            await wait_for(pilot, lambda: not app.watching, "the watcher to end")
            assert state_text(app) == "○ down"
            # down: quitting asks nothing
            await pilot.press("q")
            await wait_for(pilot, lambda: app.return_value is not None, "exit")

    asyncio.run(scenario())
    assert tunnel.calls == ["reconnect", "stop"]
    assert fake_holder["fake"].opened == ["http://localhost:8000/jupyter/"]


def test_reconnect_after_a_stop_starts_watching_again(tmp_path: Path) -> None:
    tunnel = FakeTunnel([status(TunnelState.UP)])

    async def scenario() -> None:
        app = dashboard_app(tmp_path, tunnel)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.last_status is not None and app.last_status.connected, "up")
            await pilot.press("x")
            await wait_for(
                pilot, lambda: not app.watching and app.last_status.state is TunnelState.DOWN, "down"
            )
            await pilot.press("r")
            await wait_for(pilot, lambda: app.last_status.state is TunnelState.UP, "up again")
            assert app.watching

    asyncio.run(scenario())


def quit_with(tmp_path: Path, keys: list[str]) -> tuple[FakeTunnel, Any, list[str]]:
    tunnel = FakeTunnel([status(TunnelState.UP)])

    async def scenario() -> Any:
        app = dashboard_app(tmp_path, tunnel)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.last_status is not None and app.last_status.connected, "up")
            await pilot.press("q")
            await wait_for(pilot, lambda: screen_name(app) == "QuitModal", "the quit question")
            await pilot.press(*keys)
            await wait_for(
                pilot, lambda: app.return_value is not None or screen_name(app) != "QuitModal", "answer"
            )
            await pilot.pause()
            calls_while_running.extend(tunnel.calls)
            return app.return_value

    calls_while_running: list[str] = []
    return tunnel, asyncio.run(scenario()), calls_while_running


def test_quit_with_a_live_tunnel_can_keep_it_running(tmp_path: Path) -> None:
    tunnel, code, _ = quit_with(tmp_path, ["k"])
    assert code == 0 and tunnel.calls == ["detach"]


def test_quit_with_a_live_tunnel_can_stop_it(tmp_path: Path) -> None:
    tunnel, code, _ = quit_with(tmp_path, ["s"])
    assert code == 0 and tunnel.calls == ["stop"]


def test_quit_question_can_be_escaped(tmp_path: Path) -> None:
    tunnel, code, calls = quit_with(tmp_path, ["escape"])
    assert code is None and calls == []  # still running, nothing done to the tunnel
    assert tunnel.calls == ["detach"]  # the test harness closing the app leaves it running


def test_ctrl_c_twice_leaves_and_keeps_the_tunnel(tmp_path: Path) -> None:
    tunnel = FakeTunnel([status(TunnelState.UP)])

    async def scenario() -> Any:
        app = dashboard_app(tmp_path, tunnel)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.last_status is not None and app.last_status.connected, "up")
            await pilot.press("ctrl+c")
            await wait_for(pilot, lambda: screen_name(app) == "QuitModal", "the quit question")
            await pilot.press("ctrl+c")
            await wait_for(pilot, lambda: app.return_value is not None, "exit")
            return app.return_value

    assert asyncio.run(scenario()) == 130  # interrupted, as the README says
    assert tunnel.calls == ["detach"]


def test_switch_profile_detaches_and_shows_the_other_profile(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "c.toml")
    store.save(MEMBER, "default")
    store.save(Profile(user="bbadger", host="carproject-07.engr.wisc.edu"), "ws7")
    tunnel = FakeTunnel([status(TunnelState.UP)])

    async def scenario() -> tuple[str, str]:
        app = dashboard_app(tmp_path, tunnel, store)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.last_status is not None and app.last_status.connected, "up")
            await pilot.press("p")
            await wait_for(pilot, lambda: screen_name(app) == "ProfilePicker", "the picker")
            await pilot.press("down", "enter")
            await wait_for(pilot, lambda: app.profile_name == "ws7", "the switch")
            await wait_for(pilot, lambda: screen_name(app) == "DashboardScreen", "the new dashboard")
            await pilot.pause()
            return fact(app, "route"), app.profile.host

    route, host = asyncio.run(scenario())
    assert host == "carproject-07.engr.wisc.edu" and route.endswith("carproject-07.engr.wisc.edu")
    assert tunnel.calls[0] == "detach"


def test_new_profile_from_the_picker_opens_the_wizard(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "c.toml")
    store.save(MEMBER, "default")

    async def scenario() -> tuple[str, str]:
        app = dashboard_app(tmp_path, FakeTunnel([status(TunnelState.UP)]), store)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: screen_name(app) == "DashboardScreen", "dashboard")
            await pilot.press("p")
            await wait_for(pilot, lambda: screen_name(app) == "ProfilePicker", "the picker")
            await pilot.press("down", "enter")
            await pilot.press(*"bad name", "enter")
            await pilot.pause()
            error = str(app.screen.query_one("#new-name-error").render())
            assert "not a profile name" in error
            for _ in "bad name":
                await pilot.press("backspace")
            await pilot.press(*"laptop2", "enter")
            await wait_for(pilot, lambda: screen_name(app) == "WelcomeScreen", "the wizard")
            return app.profile_name, screen_name(app)

    assert asyncio.run(scenario()) == ("laptop2", "WelcomeScreen")


def test_help_lists_the_screens_keys(tmp_path: Path) -> None:
    async def scenario() -> str:
        app = dashboard_app(tmp_path, FakeTunnel([status(TunnelState.UP)]))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: screen_name(app) == "DashboardScreen", "dashboard")
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: screen_name(app) == "HelpScreen", "help")
            text = "\n".join(str(label.render()) for label in app.screen.query(Label))
            await pilot.press("escape")
            await wait_for(pilot, lambda: screen_name(app) == "DashboardScreen", "back")
            return text

    text = asyncio.run(scenario())
    assert "q, ^c, ^q" in text and "Copy" not in text and "Focus" not in text
    expected = [("o", "browser"), ("r", "up again"), ("x", "stop"), ("d", "every layer"), ("p", "profile")]
    for key, word in expected:
        assert any(line.strip().startswith(key) and word in line for line in text.splitlines()), (key, text)


def test_theme_toggle(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        app = dashboard_app(tmp_path, FakeTunnel([status(TunnelState.UP)]))
        async with app.run_test(size=(80, 24)) as pilot:
            themes = [app.theme]
            await pilot.press("ctrl+t")
            themes.append(app.theme)
            await pilot.press("ctrl+t")
            themes.append(app.theme)
            return themes

    assert asyncio.run(scenario()) == ["textual-dark", "textual-light", "textual-dark"]


def test_uptime_counts_from_since(tmp_path: Path) -> None:
    clock = [SINCE + 59.0]
    tunnel = FakeTunnel([replace(status(TunnelState.UP), since=SINCE)])

    async def scenario() -> list[str]:
        app = make_app(FakeBackend(tunnel_session=tunnel), ProfileStore(tmp_path / "c.toml"), profile=MEMBER,
                       clock=lambda: clock[0])  # fmt: skip
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.last_status is not None, "up")
            await pilot.pause()
            shown = [fact(app, "uptime")]
            clock[0] = SINCE + 7260
            app.screen._tick()  # type: ignore[attr-defined]
            shown.append(fact(app, "uptime"))
            return shown

    assert asyncio.run(scenario()) == ["59s", "2h 01m"]


def test_open_with_the_tunnel_down_says_so_and_offers_to_connect(tmp_path: Path) -> None:
    """`o` said "Go to http://localhost:8000/jupyter/" while nothing listened there."""
    tunnel = FakeTunnel([status(TunnelState.DOWN, message="not running", pid=None, since=None)])
    holder: dict[str, Any] = {}

    async def scenario() -> None:
        app = dashboard_app(tmp_path, tunnel)
        fake = holder["fake"] = app.backend
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.last_status is not None, "the first status")
            await pilot.press("o")
            await wait_for(pilot, lambda: screen_name(app) == "ConfirmModal", "the offer to connect")
            assert "tunnel is down" in str(app.screen.query_one(".dialog-title").render())
            assert fake.opened == []  # nothing opened on a dead URL
            await pilot.press("enter")  # yes is the default
            await wait_for(pilot, lambda: bool(fake.opened), "the browser once the tunnel is up")
            assert app.last_status is not None and app.last_status.state is TunnelState.UP

    asyncio.run(scenario())
    assert tunnel.calls[0] == "reconnect"  # (then "detach": the test app leaves)
    assert holder["fake"].opened == ["http://localhost:8000/jupyter/"]


def test_an_unfinished_setup_reopens_the_wizard_where_it_stopped(tmp_path: Path) -> None:
    """A failed first run left a complete profile: the next start opened the dashboard, not the wizard."""
    setup_progress.record("default", setup_progress.SetupProgress(False, "env", "conda could not create env"))
    fake = FakeBackend()
    for step in fake.steps:
        step.questions = []

    async def scenario() -> None:
        app = make_app(fake, ProfileStore(tmp_path / "c.toml"), profile=MEMBER)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: screen_name(app) == "WelcomeScreen", "the wizard")
            notice = str(app.screen.query_one("#welcome-resume").render())
            assert "did not finish" in notice and "conda could not create env" in notice
            await pilot.press("enter")  # straight on with the run: the profile is complete
            await wait_for(pilot, lambda: screen_name(app) == "DoneScreen", "the done screen")

    asyncio.run(scenario())
    assert fake.setup_runs == 1


def test_a_finished_or_unrecorded_setup_opens_the_dashboard(tmp_path: Path) -> None:
    async def first_screen() -> str:
        app = make_app(FakeBackend(), ProfileStore(tmp_path / "c.toml"), profile=MEMBER)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: screen_name(app) != "Screen", "a screen")
            return screen_name(app)

    assert asyncio.run(first_screen()) == "DashboardScreen"  # set up before the record existed
    setup_progress.record("default", setup_progress.SetupProgress(True))
    assert asyncio.run(first_screen()) == "DashboardScreen"


def test_cancelling_the_login_dialog_on_the_dashboard_hints_the_reconnect_key(tmp_path: Path) -> None:
    """The core's hint ("run wa-onboard setup in a terminal, or --password-stdin") is for the command line."""
    tunnel = FakeTunnel([status(TunnelState.CONNECTING)])
    cli_hint = "run wa-onboard setup in a terminal, or give it with --password-stdin"

    async def scenario() -> str:
        app = dashboard_app(tmp_path, tunnel)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.last_status is not None, "the first status")
            question = SecretQuestion("Password:", "bbadger@best-tux.cae.wisc.edu")
            asker = threading.Thread(target=app.prompter.secret, args=(question,), daemon=True)
            asker.start()
            await wait_for(pilot, lambda: screen_name(app) == "SecretModal", "the login dialog")
            await pilot.press("escape")
            asker.join(timeout=5)
            tunnel.push(status(TunnelState.DOWN, message="a password is needed", hint=cli_hint))
            await wait_for(pilot, lambda: app.last_status.state is TunnelState.DOWN, "down")
            await pilot.pause()
            return str(app.screen.query_one("#tunnel-message").render())

    message = asyncio.run(scenario())
    assert "press r to connect again" in message and "--password-stdin" not in message
