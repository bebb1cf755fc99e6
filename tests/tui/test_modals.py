"""Each dialog answers through dismiss(); the prompter blocks a worker thread on that answer."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from tests.tui.scenes import screen_name, wait_for
from wa_onboard.core.profile import Profile, ProfileStore
from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, SecretQuestion, secret_kind
from wa_onboard.tui.app import WaApp, make_app
from wa_onboard.tui.fake import FakeBackend
from wa_onboard.tui.modals import ConfirmModal, HostKeyModal, QuitModal, SaveReportModal, SecretModal

HOP = "bbadger@best-tux.cae.wisc.edu"
PASSWORD = SecretQuestion(f"{HOP}'s password:", HOP)
OTP = SecretQuestion(f"({HOP}) Verification code:", HOP, kind="otp")
HOST_KEY = HostKeyQuestion("best-tux.cae.wisc.edu", "ED25519", "SHA256:abcDEF123")
INCLUDE = ConfirmQuestion(
    "Add one line to your ~/.ssh/config?", "Include ~/.ssh/wa-onboard/config", default=True
)
REBUILD = ConfirmQuestion("Rebuild env 'wa'?", "everything in it is deleted", default=True, destructive=True)


def answer_of(modal: Any, keys: list[str], tmp_path: Path) -> Any:
    """Push ``modal`` on a running app, press ``keys``, return what it dismissed with."""
    answers: list[Any] = []

    async def scenario() -> None:
        app = make_app(FakeBackend(), ProfileStore(tmp_path / "c.toml"), profile=Profile(user="bbadger"))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: screen_name(app) == "DashboardScreen", "the dashboard")
            app.push_screen(modal, answers.append)
            await wait_for(pilot, lambda: app.screen is modal and bool(modal.query("Button")), "the modal")
            await pilot.press(*keys)
            await wait_for(pilot, lambda: bool(answers), "an answer")

    asyncio.run(scenario())
    return answers[0]


def test_password_modal_is_masked_and_names_the_hop(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        app = make_app(FakeBackend(), ProfileStore(tmp_path / "c.toml"), profile=Profile(user="bbadger"))
        async with app.run_test(size=(80, 24)) as pilot:
            modal = SecretModal(PASSWORD)
            app.push_screen(modal)
            await wait_for(pilot, lambda: app.screen is modal and bool(modal.query("Button")), "the modal")
            field = modal.query_one("#secret-input", Input)
            seen["password"] = field.password
            seen["focused"] = app.focused is field
            seen["hop"] = str(modal.query_one("#secret-hop").render())
            seen["prompt"] = str(modal.query_one("#secret-prompt").render())

    asyncio.run(scenario())
    assert seen == {"password": True, "focused": True, "hop": f"asked by {HOP}", "prompt": PASSWORD.prompt}


def test_password_modal_returns_the_text_or_none(tmp_path: Path) -> None:
    assert answer_of(SecretModal(PASSWORD), [*"pa ss", "enter"], tmp_path) == "pa ss"
    assert answer_of(SecretModal(PASSWORD), ["x", "escape"], tmp_path) is None


def test_mfa_prompt_is_shown_as_the_server_wrote_it_and_not_masked(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        app = make_app(FakeBackend(), ProfileStore(tmp_path / "c.toml"), profile=Profile(user="bbadger"))
        async with app.run_test(size=(80, 24)) as pilot:
            modal = SecretModal(OTP)
            app.push_screen(modal)
            await wait_for(pilot, lambda: app.screen is modal and bool(modal.query("Button")), "the modal")
            seen["prompt"] = str(modal.query_one("#secret-prompt").render())
            seen["masked"] = modal.query_one("#secret-input", Input).password
            seen["title"] = modal.query_one("#secret-dialog").border_title

    asyncio.run(scenario())
    assert seen == {"prompt": OTP.prompt, "masked": False, "title": "Verification code"}
    assert answer_of(SecretModal(OTP), [*"123456", "enter"], tmp_path) == "123456"


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["t"], True),
        (["escape"], False),
        (["enter"], False),
        (["tab", "enter"], True),
        (["tab", "tab", "enter"], False),
    ],
)
def test_host_key_modal_trusts_only_on_purpose(keys: list[str], expected: bool, tmp_path: Path) -> None:
    assert answer_of(HostKeyModal(HOST_KEY), keys, tmp_path) is expected


def test_include_consent_defaults_to_yes_and_destructive_to_no(tmp_path: Path) -> None:
    assert answer_of(ConfirmModal(INCLUDE), ["enter"], tmp_path) is True
    assert answer_of(ConfirmModal(INCLUDE), ["n"], tmp_path) is False
    assert answer_of(ConfirmModal(REBUILD), ["enter"], tmp_path) is False
    assert answer_of(ConfirmModal(REBUILD), ["y"], tmp_path) is True


def test_quit_modal_choices(tmp_path: Path) -> None:
    assert answer_of(QuitModal("http://localhost:8000/jupyter/", True), ["k"], tmp_path) == "keep"
    assert answer_of(QuitModal("http://localhost:8000/jupyter/", True), ["s"], tmp_path) == "stop"
    assert answer_of(QuitModal("http://localhost:8000/jupyter/", True), ["escape"], tmp_path) is None
    # a tunnel that cannot outlive the app cannot be kept
    assert answer_of(QuitModal("http://localhost:8000/jupyter/", False), ["k", "enter"], tmp_path) == "stop"


def test_save_report_modal_returns_the_path(tmp_path: Path) -> None:
    modal = SaveReportModal(tmp_path / "r.txt")
    assert answer_of(modal, ["enter"], tmp_path) == tmp_path / "r.txt"


def ask_from_thread(app: WaApp, ask: Any) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(ask(app.prompter)), daemon=True)
    thread.start()
    return thread, box


def test_prompter_blocks_the_worker_until_the_modal_answers(tmp_path: Path) -> None:
    async def scenario() -> list[Any]:
        app = make_app(FakeBackend(), ProfileStore(tmp_path / "c.toml"), profile=Profile(user="bbadger"))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: screen_name(app) == "DashboardScreen", "the dashboard")
            results = []
            for ask, keys in [
                (lambda p: p.secret(PASSWORD), [*"hunter2", "enter"]),
                (lambda p: p.confirm(HOST_KEY), ["t"]),
                (lambda p: p.confirm(INCLUDE), ["n"]),
            ]:
                thread, box = ask_from_thread(app, ask)
                await wait_for(pilot, lambda: screen_name(app).endswith("Modal"), "the question")
                assert thread.is_alive() and not box  # waiting for the member
                await pilot.press(*keys)
                await wait_for(pilot, lambda b=box: bool(b), "the answer")
                results.append(box[0])
            return results

    assert asyncio.run(scenario()) == ["hunter2", True, False]


def test_leaving_the_app_releases_a_waiting_question_with_a_refusal(tmp_path: Path) -> None:
    holder: dict[str, Any] = {}

    async def scenario() -> None:
        app = make_app(FakeBackend(), ProfileStore(tmp_path / "c.toml"), profile=Profile())
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: screen_name(app) == "WelcomeScreen", "welcome")
            thread, box = ask_from_thread(app, lambda p: p.secret(PASSWORD))
            holder.update(thread=thread, box=box)
            await wait_for(pilot, lambda: screen_name(app) == "SecretModal", "the question")
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: app.return_value is not None, "exit")

    asyncio.run(scenario())
    holder["thread"].join(timeout=5)
    assert not holder["thread"].is_alive()
    assert holder["box"] == [None]


def shown(question: SecretQuestion, tmp_path: Path) -> dict[str, Any]:
    """What the secret dialog shows for ``question``: prompt text, masking, title."""
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        app = make_app(FakeBackend(), ProfileStore(tmp_path / "c.toml"), profile=Profile(user="bbadger"))
        async with app.run_test(size=(80, 24)) as pilot:
            modal = SecretModal(question)
            app.push_screen(modal)
            await wait_for(pilot, lambda: app.screen is modal and bool(modal.query("Button")), "the modal")
            prompt = modal.query_one("#secret-prompt")
            seen["prompt"] = str(prompt.render())
            seen["styled"] = [span.style for span in prompt.render().spans]  # type: ignore[attr-defined]
            seen["hop"] = str(modal.query_one("#secret-hop").render())
            seen["masked"] = modal.query_one("#secret-input", Input).password
            seen["title"] = modal.query_one("#secret-dialog").border_title

    asyncio.run(scenario())
    return seen


@pytest.mark.parametrize(
    "prompt", ["Passwort:", "Kennwort:", "Contraseña:", "Enter PIN:", "PIN code:", "Tell me:"]
)
def test_every_secret_looking_or_unknown_prompt_is_masked(prompt: str, tmp_path: Path) -> None:
    """Only "password" prompts were masked: a German password or a PIN was typed in clear."""
    kind = secret_kind(prompt)
    assert shown(SecretQuestion(prompt, HOP, kind), tmp_path)["masked"] is True


def test_server_text_is_shown_literally_without_markup_or_escape_codes(tmp_path: Path) -> None:
    """A server's prompt was read as Textual markup ("[bold red]" styled it) and kept control characters."""
    question = SecretQuestion(
        "[bold red]Password:[/bold red]\x1b[2J\x07", "[b]evil[/b]\x1b[31m@host", "password"
    )
    seen = shown(question, tmp_path)
    assert seen["prompt"] == "[bold red]Password:[/bold red]"
    assert seen["styled"] == []
    assert seen["hop"] == "asked by [b]evil[/b]@host"
