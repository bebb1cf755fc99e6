"""The wizard end to end with the fake backend: welcome, form, questions, steps, done or failure."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

from textual.widgets import Collapsible, Input, Label, RichLog

from tests.tui.scenes import (
    answer_confirm,
    answer_host_key,
    answer_password,
    row_status,
    screen_name,
    through_form,
    wait_for,
)
from wa_onboard.core.profile import Profile, ProfileStore
from wa_onboard.core.prompts import ConfirmQuestion, SecretQuestion
from wa_onboard.core.results import StepStatus
from wa_onboard.tui import exit_status, say_goodbye
from wa_onboard.tui.app import make_app
from wa_onboard.tui.fake import FakeBackend, FakeStep, demo_steps
from wa_onboard.tui.wizard import check_field


def plain_steps() -> list[FakeStep]:
    steps = demo_steps()
    for step in steps:
        step.questions = []
    return steps


def test_first_run_goes_from_welcome_to_done_and_saves_the_profile(tmp_path: Path) -> None:
    fake = FakeBackend()
    store = ProfileStore(tmp_path / "config.toml")

    async def scenario() -> None:
        app = make_app(fake, store)
        async with app.run_test(size=(80, 24)) as pilot:
            await through_form(pilot, "bbadger")
            assert any(type(s).__name__ == "RunScreen" for s in app.screen_stack)
            await answer_confirm(pilot, "y")
            await answer_host_key(pilot)
            await answer_password(pilot, "s3cret-pw")
            await wait_for(pilot, lambda: screen_name(app) == "DoneScreen", "the done screen")
            screen = app.screen
            assert "http://127.0.0.1:8000/jupyter/" in str(screen.query_one("#done-url").render())
            assert "open in your browser" in str(screen.query_one("#done-browser").render())
            assert "wa-onboard connect" in str(screen.query_one("#done-tomorrow").render())
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen_name(app) == "DashboardScreen", "the dashboard")

    asyncio.run(scenario())
    login = next(s for s in fake.steps if s.id == "login")
    config = next(s for s in fake.steps if s.id == "key")
    assert login.answers == [True, "s3cret-pw"]  # the host key trusted, the typed password passed on
    assert config.answers == [True]
    assert fake.setup_runs == 1
    assert fake.opened == ["http://127.0.0.1:8000/jupyter/"]
    saved = store.load("default")
    assert saved is not None and saved.user == "bbadger"
    assert "s3cret-pw" not in store.path.read_text()


def test_setup_yes_answers_in_the_app_what_it_answers_on_the_command_line(tmp_path: Path) -> None:
    """`setup --yes` in the app: the host key and the ~/.ssh/config line are answered yes with no
    dialog (each answer said in the log), as the command line's --yes does; the password and a
    destructive question still ask the member."""
    steps = demo_steps()
    env = next(s for s in steps if s.id == "env")
    env.questions = [ConfirmQuestion("Delete and rebuild the env wa?", "It is broken.", destructive=True)]
    fake = FakeBackend(steps=steps, assume_yes=True)
    dialogs = ("SecretModal", "HostKeyModal", "ConfirmModal")

    async def scenario() -> None:
        app = make_app(fake, ProfileStore(tmp_path / "config.toml"))
        async with app.run_test(size=(80, 24)) as pilot:
            await through_form(pilot, "bbadger")
            await wait_for(pilot, lambda: screen_name(app) in dialogs, "the first dialog")
            assert screen_name(app) == "SecretModal"  # no host-key or ~/.ssh/config dialog before it
            await answer_password(pilot, "s3cret-pw")
            await wait_for(pilot, lambda: screen_name(app) in dialogs, "the destructive question")
            assert screen_name(app) == "ConfirmModal" and app.screen.question.destructive  # type: ignore[attr-defined]
            run = next(s for s in app.screen_stack if type(s).__name__ == "RunScreen")
            log = "\n".join(line.text for line in run.query_one("#log", RichLog).lines)
            assert "Add an Include line to" in log and "yes (--yes)" in log
            assert "trusted the host key of best-tux.cae.wisc.edu (--yes): ED25519 SHA256:" in log
            await pilot.press("y")
            await wait_for(pilot, lambda: screen_name(app) == "DoneScreen", "the done screen")

    asyncio.run(scenario())
    answers = {s.id: s.answers for s in fake.steps if s.answers}
    assert answers == {"key": [True], "login": [True, "s3cret-pw"], "env": [True]}


def test_every_step_is_listed_and_ends_done_with_its_time(tmp_path: Path) -> None:
    fake = FakeBackend(steps=plain_steps())
    fake.steps[1].skip = "key exists"

    async def scenario() -> None:
        app = make_app(fake, ProfileStore(tmp_path / "c.toml"), profile=Profile())
        async with app.run_test(size=(80, 24)) as pilot:
            await through_form(pilot)
            await wait_for(pilot, lambda: screen_name(app) == "DoneScreen", "the done screen")

    async def watch_rows() -> None:
        hold = threading.Event()
        fake.steps[-1].hold = hold
        app = make_app(fake, ProfileStore(tmp_path / "d.toml"))
        async with app.run_test(size=(80, 24)) as pilot:
            await through_form(pilot)
            await wait_for(pilot, lambda: row_status(app, "browser") is StepStatus.RUNNING, "the last step")
            statuses = {step.id: row_status(app, step.id) for step in fake.steps}
            assert statuses["key"] is StepStatus.SKIPPED
            assert statuses["ipykernel"] is StepStatus.SKIPPED  # not needed: the env came with it
            assert all(
                statuses[s.id] is StepStatus.DONE
                for s in fake.steps[2:-1]
                if s.skip is None and s.not_needed is None
            )
            row = app.screen.query_one("#step-key")
            assert "already done: key exists" in str(row.query(Label)[1].render())
            assert str(row.query(Label)[2].render()) == "<1s"
            log = app.screen.query_one("#log", RichLog)
            text = "\n".join(line.text for line in log.lines)
            assert "Collecting package metadata (repodata.json): done" in text
            hold.set()
            await wait_for(pilot, lambda: screen_name(app) == "DoneScreen", "the done screen")

    asyncio.run(scenario())
    asyncio.run(watch_rows())


def test_progress_shows_while_the_env_is_created(tmp_path: Path) -> None:
    fake = FakeBackend(steps=plain_steps())
    env = next(s for s in fake.steps if s.id == "env")
    env.hold = threading.Event()

    async def scenario() -> None:
        app = make_app(fake, ProfileStore(tmp_path / "c.toml"))
        async with app.run_test(size=(80, 24)) as pilot:
            await through_form(pilot)
            await wait_for(pilot, lambda: row_status(app, "env") is StepStatus.RUNNING, "the env step")
            await wait_for(
                pilot, lambda: not app.screen.query_one("#progress").has_class("hidden"), "progress"
            )
            # as the core streams conda: its last line is the message, with no fraction to show
            assert env.output[-1] in str(app.screen.query_one("#progress-message").render())
            assert app.screen.query_one("#progress-bar").percentage is None
            env.hold.set()
            await wait_for(pilot, lambda: screen_name(app) == "DoneScreen", "the done screen")

    asyncio.run(scenario())


def test_form_shows_the_core_validators_errors_next_to_the_field(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "c.toml")

    async def scenario() -> None:
        app = make_app(FakeBackend(), store)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: screen_name(app) == "WelcomeScreen", "welcome")
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen_name(app) == "ProfileScreen", "form")
            screen = app.screen
            # submitting without a username: required, and nothing runs
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "is required" in str(screen.query_one("#err-user", Label).render())
            assert screen_name(app) == "ProfileScreen"
            await pilot.press(*"b badger")
            await pilot.pause()
            error = screen.query_one("#err-user", Label)
            assert "is not a user name" in str(error.render()) and error.has_class("-shown")
            assert screen.query_one("#in-user", Input).has_class("-invalid")
            screen.query_one("#in-user", Input).value = "bbadger"
            await pilot.pause()
            assert not screen.query_one("#err-user", Label).has_class("-shown")
            # an advanced field: the section opens and the field gets focus on submit
            assert screen.query_one("#advanced", Collapsible).collapsed
            screen.query_one("#in-local_port", Input).value = "99999"
            screen.query_one("#in-env", Input).value = "base"
            await pilot.pause()
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "read-only" in str(screen.query_one("#err-env", Label).render())
            assert "not a port number" in str(screen.query_one("#err-local_port", Label).render())
            assert app.focused is screen.query_one("#in-env", Input)
            screen.query_one("#in-env", Input).value = "robots"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert not screen.query_one("#advanced", Collapsible).collapsed
            assert app.focused is screen.query_one("#in-local_port", Input)
            assert screen_name(app) == "ProfileScreen"

    asyncio.run(scenario())
    assert store.load("default") is None  # nothing saved while the form is invalid


def test_check_field_uses_the_core_rules() -> None:
    assert check_field("user", "bbadger") == ("bbadger", None)
    assert check_field("local_port", "8001") == (8001, None)
    assert check_field("jump", "best-tux.cae.wisc.edu:2222") == ("best-tux.cae.wisc.edu:2222", None)
    for name, bad in [("env", "a;b"), ("kernel_name", "W A"), ("python", "2.7"), ("host", "-oProxy")]:
        value, error = check_field(name, bad)
        assert value is None and error, (name, bad)


def test_a_failed_step_shows_error_hint_and_retry_finishes(tmp_path: Path) -> None:
    fake = FakeBackend(steps=plain_steps())
    env = next(s for s in fake.steps if s.id == "env")
    env.fail = (
        "conda could not create env 'wa'",
        "free some space, then retry",
        "errno 122 Disk quota exceeded",
    )

    async def scenario() -> None:
        app = make_app(fake, ProfileStore(tmp_path / "c.toml"))
        async with app.run_test(size=(80, 24)) as pilot:
            await through_form(pilot)
            await wait_for(pilot, lambda: not app.screen.query_one("#failure").has_class("hidden"), "failure")
            screen = app.screen
            assert "Create your conda env" in str(screen.query_one("#failure-title").render())
            assert "conda could not create env 'wa'" in str(screen.query_one("#failure-error").render())
            assert "Disk quota exceeded" in str(screen.query_one("#failure-detail").render())
            assert "free some space, then retry" in str(screen.query_one("#failure-hint").render())
            assert row_status(app, "env") is StepStatus.FAILED
            assert row_status(app, "kernel") is StepStatus.PENDING
            assert app.screen.query_one("#progress").has_class("hidden")
            assert app.exit_code == 1
            await pilot.press("r")
            await wait_for(pilot, lambda: screen_name(app) == "DoneScreen", "the done screen after retry")
            assert app.exit_code == 0

    asyncio.run(scenario())
    assert fake.setup_runs == 2 and env.runs == 2


def test_failure_offers_diagnostics_and_quit(tmp_path: Path) -> None:
    fake = FakeBackend(steps=plain_steps())
    fake.steps[2].fail = ("the jump host does not answer", "check the network", "")

    async def scenario() -> int | None:
        app = make_app(fake, ProfileStore(tmp_path / "c.toml"))
        async with app.run_test(size=(80, 24)) as pilot:
            await through_form(pilot)
            await wait_for(pilot, lambda: not app.screen.query_one("#failure").has_class("hidden"), "failure")
            assert app.screen.query_one("#failure-detail").has_class("hidden")
            await pilot.press("d")
            await wait_for(pilot, lambda: screen_name(app) == "DiagnosticsScreen", "diagnostics")
            await wait_for(pilot, lambda: not app.screen.running, "the checks")
            await pilot.press("escape")
            await wait_for(pilot, lambda: screen_name(app) == "RunScreen", "back to the run")
            await pilot.press("q")
            await wait_for(pilot, lambda: app.return_value is not None, "the app to exit")
        return app.return_value

    assert asyncio.run(scenario()) == 1
    assert fake.doctor_runs == 1


def test_quitting_a_failed_setup_says_what_failed_and_how_to_resume(tmp_path: Path) -> None:
    """The app's screen is gone after it exits: the failure and the resume command stay in the terminal."""
    fake = FakeBackend(steps=plain_steps())
    fake.steps[2].fail = ("the jump host does not answer", "check the network", "")
    out = io.StringIO()

    async def scenario() -> int:
        app = make_app(fake, ProfileStore(tmp_path / "c.toml"), profile_name="ws7")
        async with app.run_test(size=(80, 24)) as pilot:
            await through_form(pilot)
            await wait_for(pilot, lambda: not app.screen.query_one("#failure").has_class("hidden"), "failure")
            await pilot.press("q")
            await wait_for(pilot, lambda: app.return_value is not None, "the app to exit")
        say_goodbye(app, out)
        return exit_status(app, app.return_value)

    assert asyncio.run(scenario()) == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("wa-onboard: Failed: ") and "the jump host does not answer" in lines[0]
    assert lines[1].endswith("wa-onboard --profile ws7 setup")


def test_declining_the_host_key_fails_the_login_step(tmp_path: Path) -> None:
    fake = FakeBackend()

    async def scenario() -> None:
        app = make_app(fake, ProfileStore(tmp_path / "c.toml"))
        async with app.run_test(size=(80, 24)) as pilot:
            await through_form(pilot)
            await answer_confirm(pilot, "n")
            await wait_for(pilot, lambda: screen_name(app) == "HostKeyModal", "host key")
            await pilot.press("enter")  # the focused button is Cancel: Enter never trusts by accident
            await wait_for(pilot, lambda: not app.screen.query_one("#failure").has_class("hidden"), "failure")
            assert "not trusted" in str(app.screen.query_one("#failure-error").render())

    asyncio.run(scenario())
    assert next(s for s in fake.steps if s.id == "login").answers == []


def test_wrong_password_is_asked_again_with_the_attempt_shown(tmp_path: Path) -> None:
    hop = "bbadger@best-tux.cae.wisc.edu"
    steps = [
        FakeStep(
            "login",
            "Log in",
            questions=[
                SecretQuestion(f"{hop}'s password:", hop),
                SecretQuestion(f"{hop}'s password:", hop, attempt=2),
            ],
        )
    ]
    fake = FakeBackend(steps=steps)

    async def scenario() -> None:
        app = make_app(fake, ProfileStore(tmp_path / "c.toml"))
        async with app.run_test(size=(80, 24)) as pilot:
            await through_form(pilot)
            await answer_password(pilot, "wrong")
            await wait_for(
                pilot,
                lambda: screen_name(app) == "SecretModal" and app.screen.question.attempt == 2,
                "2nd ask",
            )
            assert "attempt 2 of 3" in str(app.screen.query_one("#secret-retry").render())
            await pilot.press(*"right", "enter")
            await wait_for(pilot, lambda: screen_name(app) == "DoneScreen", "done")

    asyncio.run(scenario())
    assert steps[0].answers == ["wrong", "right"]


def test_incomplete_profile_opens_the_wizard_complete_one_the_dashboard(tmp_path: Path) -> None:
    async def first(profile: Profile | None) -> str:
        app = make_app(FakeBackend(), ProfileStore(tmp_path / "c.toml"), profile=profile)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: screen_name(app) != "Screen", "the first screen")
            return screen_name(app)

    assert asyncio.run(first(None)) == "WelcomeScreen"
    assert asyncio.run(first(Profile())) == "WelcomeScreen"
    assert asyncio.run(first(Profile(user="bbadger"))) == "DashboardScreen"


def test_the_mouse_works_too(tmp_path: Path) -> None:
    fake = FakeBackend(steps=plain_steps())

    async def scenario() -> None:
        app = make_app(fake, ProfileStore(tmp_path / "c.toml"))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: screen_name(app) == "WelcomeScreen", "welcome")
            await pilot.click("#start")
            await wait_for(pilot, lambda: screen_name(app) == "ProfileScreen", "the form")
            await pilot.click("#in-user")
            await pilot.press(*"bbadger")
            await pilot.click("#advanced CollapsibleTitle")
            await wait_for(
                pilot, lambda: not app.screen.query_one("#advanced", Collapsible).collapsed, "advanced"
            )
            await pilot.wait_for_scheduled_animations()  # the form scrolls as it opens: let it settle
            await pilot.pause()
            await pilot.click("#advanced CollapsibleTitle")  # and closed again: Continue is in view
            await wait_for(pilot, lambda: app.screen.query_one("#advanced", Collapsible).collapsed, "closed")
            await pilot.pause()
            await pilot.click("#submit")
            await wait_for(pilot, lambda: screen_name(app) == "DoneScreen", "done")
            await pilot.click("#dashboard")
            await wait_for(pilot, lambda: screen_name(app) == "DashboardScreen", "dashboard")

    asyncio.run(scenario())
    assert fake.setup_runs == 1


def test_escape_cancels_a_running_setup_and_retry_goes_on(tmp_path: Path) -> None:
    fake = FakeBackend(steps=plain_steps())
    env = next(s for s in fake.steps if s.id == "env")
    env.hold = threading.Event()

    async def scenario() -> None:
        app = make_app(fake, ProfileStore(tmp_path / "c.toml"))
        async with app.run_test(size=(80, 24)) as pilot:
            await through_form(pilot)
            await wait_for(pilot, lambda: row_status(app, "env") is StepStatus.RUNNING, "the env step")
            await pilot.press("escape")
            await wait_for(pilot, lambda: not app.screen.query_one("#failure").has_class("hidden"), "stopped")
            assert "Setup stopped" in str(app.screen.query_one("#failure-title").render())
            assert row_status(app, "env") is StepStatus.FAILED
            assert env.hold is not None
            env.hold.set()
            await pilot.press("r")
            await wait_for(pilot, lambda: screen_name(app) == "DoneScreen", "done after the retry")

    asyncio.run(scenario())
    assert fake.setup_runs == 2


def test_setup_opens_the_wizard_even_for_a_complete_profile(tmp_path: Path) -> None:
    """`wa-onboard setup` in a terminal is a rerun or a repair: the wizard, not the dashboard."""
    store = ProfileStore(tmp_path / "config.toml")
    done: list[str] = []

    async def scenario() -> None:
        for wizard in (True, False):
            app = make_app(FakeBackend(), store, profile=Profile(user="bbadger"), wizard=wizard)
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                done.append(screen_name(app))

    asyncio.run(scenario())
    assert done == ["WelcomeScreen", "DashboardScreen"]


def test_cancelling_the_password_dialog_hints_the_retry_key_not_the_command_line(tmp_path: Path) -> None:
    """The core's hint is for a terminal ("run wa-onboard setup in a terminal, or --password-stdin")."""
    question = SecretQuestion("Password:", "bbadger@best-tux.cae.wisc.edu")
    login = FakeStep("login", "Log in", questions=[question], summary="logged in")
    fake = FakeBackend(steps=[login])

    async def scenario() -> None:
        app = make_app(fake, ProfileStore(tmp_path / "c.toml"))
        async with app.run_test(size=(80, 24)) as pilot:
            await through_form(pilot)
            await wait_for(pilot, lambda: screen_name(app) == "SecretModal", "the password dialog")
            await pilot.press("escape")
            await wait_for(pilot, lambda: not app.screen.query_one("#failure").has_class("hidden"), "failure")
            hint = str(app.screen.query_one("#failure-hint").render())
            assert "press r to be asked again" in hint and "setup" not in hint
            await pilot.press("r")
            await answer_password(pilot, "pw")
            await wait_for(pilot, lambda: screen_name(app) == "DoneScreen", "the done screen")

    asyncio.run(scenario())
    assert login.answers == ["pw"]


def test_the_log_shows_what_each_step_reports_and_long_summaries_end_in_an_ellipsis(tmp_path: Path) -> None:
    """The log showed only the step headers; a summary wider than the row was cut with no "…"."""
    long = "a summary longer than any terminal row " * 6
    steps = [
        FakeStep(
            "env", "Create your conda env", progress=[("Solving environment", None)], summary="env made"
        ),
        FakeStep("kernel", "Register the kernel", summary=long.strip()),
        FakeStep("broken", "Fail", fail=("it broke", "fix it", "tool said: \x1b[31mno\x1b[0m")),
    ]
    fake = FakeBackend(steps=steps)

    async def scenario() -> tuple[str, str]:
        app = make_app(fake, ProfileStore(tmp_path / "c.toml"))
        async with app.run_test(size=(120, 30)) as pilot:
            await through_form(pilot)
            await wait_for(pilot, lambda: not app.screen.query_one("#failure").has_class("hidden"), "failure")
            await pilot.pause()
            log = app.screen.query_one("#log", RichLog)
            return "\n".join(line.text for line in log.lines), app.export_screenshot()

    text, screenshot = asyncio.run(scenario())
    assert "Solving environment" in text
    assert "✓ env made" in text
    assert "✗ it broke" in text and "  tool said: no" in text and "\x1b" not in text
    assert "…" in screenshot or "&#8230;" in screenshot
