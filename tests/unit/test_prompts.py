"""The prompts every front end shares: one password for both hops, and server text made safe to show."""

from __future__ import annotations

import io

import pytest

from wa_onboard.commands.prompter_cli import CliPrompter
from wa_onboard.core.prompts import PasswordOnce, SecretQuestion, echo_allowed, secret_kind, server_text

JUMP, WS = "bbadger@best-tux.cae.wisc.edu", "bbadger@carproject-06.engr.wisc.edu"


class Member:
    """Answers from a list, and records what it was asked."""

    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers)
        self.asked: list[SecretQuestion] = []

    def __call__(self, question: SecretQuestion) -> str | None:
        self.asked.append(question)
        return self.answers.pop(0)


def test_the_password_typed_for_one_hop_answers_the_other_once() -> None:
    member = Member("pw", "123456")
    once = PasswordOnce(member)
    assert once.secret(SecretQuestion("Password:", JUMP)) == "pw"
    assert once.secret(SecretQuestion("Verification code:", JUMP, "otp")) == "123456"
    assert once.secret(SecretQuestion("Password:", WS)) == "pw"
    assert [q.hop for q in member.asked] == [JUMP, JUMP]  # the workstation's password was not asked


def test_a_refused_password_is_asked_again_and_the_new_one_is_offered_next() -> None:
    member = Member("typo", "right", "again")
    once = PasswordOnce(member)
    assert once.secret(SecretQuestion("Password:", JUMP)) == "typo"
    assert once.secret(SecretQuestion("Password:", JUMP, attempt=2)) == "right"
    assert once.secret(SecretQuestion("Password:", WS)) == "right"
    assert once.secret(SecretQuestion("Password:", WS, attempt=2)) == "again"  # refused there: ask
    assert len(member.asked) == 3


def test_a_declined_question_is_not_remembered_and_forget_drops_the_password() -> None:
    member = Member(None, "pw", "pw2")
    once = PasswordOnce(member)
    assert once.secret(SecretQuestion("Password:", JUMP)) is None
    assert once.secret(SecretQuestion("Password:", JUMP)) == "pw"
    once.forget()
    assert once.secret(SecretQuestion("Password:", WS)) == "pw2"


def test_the_password_is_not_kept_past_its_age() -> None:
    now = [0.0]
    member = Member("pw", "pw2")
    once = PasswordOnce(member, max_age=60, clock=lambda: now[0])
    once.secret(SecretQuestion("Password:", JUMP))
    now[0] = 61
    assert once.secret(SecretQuestion("Password:", WS)) == "pw2"


def test_codes_are_never_reused() -> None:
    member = Member("111111", "222222")
    once = PasswordOnce(member)
    once.secret(SecretQuestion("Verification code:", JUMP, "otp"))
    assert once.secret(SecretQuestion("Verification code:", WS, "otp")) == "222222"


@pytest.mark.parametrize("prompt", ["Passwort:", "Kennwort:", "Contraseña:", "Mot de passe :"])
def test_passwords_in_other_languages_are_passwords(prompt: str) -> None:
    assert secret_kind(prompt) == "password"
    assert not echo_allowed(prompt)


@pytest.mark.parametrize("prompt", ["Enter PIN:", "PIN code:", "Secret code:", "Tell me:", "Antwort:"])
def test_pins_and_unknown_prompts_are_masked(prompt: str) -> None:
    assert not echo_allowed(prompt)


def test_only_a_plain_one_time_code_is_echoed() -> None:
    assert echo_allowed("Verification code:") and echo_allowed("(u@h) Verification code:")


def test_server_text_drops_escape_sequences_and_control_characters() -> None:
    raw = "Hi\x1b[2J\x1b[31mred\x1b[0m\x1b]0;title\x07\r\nline\ttwo\x08\x00\u202eend\x9b1m"
    assert server_text(raw) == "Hired\nline twoend"


def test_cli_prints_keyboard_interactive_instructions_without_control_characters() -> None:
    out = io.StringIO()
    typed: list[str] = []

    def ask(prompt: str) -> str:
        typed.append(prompt)
        return "pw"

    prompter = CliPrompter(out=out, ask_secret=ask, interactive=True)
    question = SecretQuestion("Duo says:\x1b[2J\x1b[1;1Hwelcome\x07\nPassword:\x1b[8m", JUMP, "password")
    assert prompter.secret(question) == "pw"
    assert out.getvalue() == "  Duo says:welcome\n"
    assert typed == [f"[{JUMP}] Password: "]


def test_cli_password_stdin_answers_both_hops() -> None:
    prompter = CliPrompter(password_stdin=True, stdin=io.StringIO("pw\n"), interactive=False)
    assert prompter.secret(SecretQuestion("Password:", JUMP)) == "pw"
    assert prompter.secret(SecretQuestion("Password:", WS)) == "pw"
