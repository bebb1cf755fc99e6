"""``wa-onboard setup``: refusing bad input before anything runs, the plain-mode prompter and output."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.unit.test_cli import wa
from wa_onboard.commands.setup import LinePrinter, SetupPrompter
from wa_onboard.core.prompts import ConfirmQuestion, HostKeyQuestion, SecretQuestion
from wa_onboard.core.results import StepResult, StepStatus
from wa_onboard.core.setup.plan import StepFinished, StepOutput, StepStarted

HOSTILE = [
    "; rm -rf ~",
    "$(touch /tmp/x)",
    "`id`",
    "it's",
    'say"hi',
    "two\nlines",
    "with spaces",
    "-leading",
    "base",
]


@pytest.mark.parametrize("env", HOSTILE)
def test_hostile_env_names_exit_2_and_nothing_runs(env: str, isolated_home: Path) -> None:
    r = wa("setup", "--no-tui", "--yes", "--no-browser", "--user", "bbadger", f"--env={env}", input="")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("wa-onboard: error: invalid env:") and len(r.stderr.strip().splitlines()) <= 2
    assert not (isolated_home / ".ssh").exists()  # no key, no ssh config
    assert not (isolated_home / ".config").exists()  # no profile saved
    assert not (isolated_home / ".local").exists()  # no lock, no state


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--kernel-name", "a b"),
        ("--display-name", "x\ny"),
        ("--python", "3.11; id"),
        ("--conda-module", "$(id)"),
    ],
)
def test_other_hostile_values_exit_2(flag: str, value: str, isolated_home: Path) -> None:
    r = wa("setup", "--no-tui", "--user", "bbadger", flag, value, input="")
    assert r.returncode == 2 and "invalid" in r.stderr
    assert not (isolated_home / ".ssh").exists()


def test_setup_without_a_user_is_exit_2(isolated_home: Path) -> None:
    r = wa("setup", "--no-tui", "--password-stdin", input="")
    assert r.returncode == 2 and "invalid user: is required" in r.stderr and "--user" in r.stderr


def prompter(stdin: str, *, yes: bool = False) -> SetupPrompter:
    return SetupPrompter(
        password_stdin=True, assume_yes=yes, stdin=io.StringIO(stdin), interactive=False, out=io.StringIO()
    )


def test_password_stdin_is_read_once_and_used_for_both_hops() -> None:
    p = prompter("s3cret\nnot-this\n")
    assert p.secret(SecretQuestion("u@jump's password:", "u@jump")) == "s3cret"
    assert p.secret(SecretQuestion("u@ws's password:", "u@ws")) == "s3cret"
    assert p.stdin.read() == "not-this\n"  # one line, read once
    assert p.secret(SecretQuestion("u@ws's password:", "u@ws", attempt=2)) is None  # never retried
    assert p.secret(SecretQuestion("Verification code:", "u@jump", kind="otp")) is None
    assert not p.stdin_empty


def test_empty_stdin_is_remembered_for_the_error() -> None:
    p = prompter("", yes=True)
    assert p.secret(SecretQuestion("Password:", "u@jump")) is None and p.stdin_empty


def test_password_is_not_read_until_wanted() -> None:
    p = prompter("pw\n", yes=True)
    assert p.confirm(HostKeyQuestion("jump", "ED25519", "SHA256:x"))
    assert p.stdin.tell() == 0


def test_yes_never_answers_a_destructive_question() -> None:
    p = prompter("", yes=True)
    assert p.confirm(ConfirmQuestion("Add an Include line?"))
    assert not p.confirm(ConfirmQuestion("Delete and rebuild the env wa?", destructive=True))


def test_without_yes_and_without_a_terminal_nothing_is_accepted() -> None:
    p = prompter("")
    assert not p.confirm(HostKeyQuestion("jump", "ED25519", "SHA256:x"))
    assert not p.confirm(ConfirmQuestion("Add an Include line?", default=True))


def test_one_line_per_step_with_status_and_time() -> None:
    out = io.StringIO()
    printer = LinePrinter({"profile": "Check the profile", "env": "Create your conda env"}, out)
    printer(StepStarted("env", "Create your conda env"))
    printer(StepOutput("env", "Collecting package metadata"))
    printer(StepFinished(StepResult("env", StepStatus.DONE, "created env wa", seconds=12.34)))
    printer(StepFinished(StepResult("profile", StepStatus.SKIPPED, "already done: x", seconds=0.01)))
    assert out.getvalue().splitlines() == [
        "      | Collecting package metadata",
        "[ 2/2] done     12.3s  Create your conda env: created env wa",
        "[ 1/2] ok        0.0s  Check the profile: already done: x",
    ]
