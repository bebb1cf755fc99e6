"""The command-line contract, run as a member would run it: a subprocess, exit codes, stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wa_onboard.core.profile import ProfileStore


def wa(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wa_onboard", *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=60,
        env=os.environ.copy(),
    )


def test_help_lists_every_command() -> None:
    r = wa("--help")
    assert r.returncode == 0
    for command in ("setup", "connect", "status", "disconnect", "doctor", "open"):
        assert command in r.stdout


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("setup", ["--no-tui", "--yes", "--password-stdin", "--no-browser", "--engine", "--repair"]),
        ("connect", ["--no-tui", "--detach", "--yes", "--no-browser", "--engine"]),
        ("status", ["--json"]),
        ("doctor", ["--json", "--report"]),
    ],
)
def test_subcommand_help_describes_its_flags(command: str, flags: list[str]) -> None:
    r = wa(command, "--help")
    assert r.returncode == 0
    profile_flags = [
        "--user",
        "--jump",
        "--host",
        "--local-port",
        "--remote-port",
        "--base-url",
        "--env",
        "--kernel-name",
        "--display-name",
        "--python",
        "--conda-module",
    ]
    for flag in flags + (profile_flags if command in ("setup", "connect") else []) + ["--profile"]:
        assert flag in r.stdout, f"{command} --help lacks {flag}"


def test_version() -> None:
    from wa_onboard import __version__

    r = wa("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"wa-onboard {__version__}"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["setup", "--user", "x", "--env", "$(reboot)"], "env"),
        (["setup", "--user", "x", "--env=-rf"], "env"),
        (["connect", "--local-port", "70000"], "local-port"),
        (["setup", "--user", "bad user"], "user"),
        (["setup", "--jump=-oProxyCommand=sh"], "jump"),
        (["setup", "--display-name", "a\x1bb"], "display-name"),
        (["--profile", "../x", "status"], "profile"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], field: str) -> None:
    r = wa(*args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith("wa-onboard: error: invalid ") and field in first


def test_bad_input_saves_nothing(isolated_home: Path) -> None:
    wa("setup", "--user", "ok", "--env", "a b")
    assert not ProfileStore().path.exists()


def test_unknown_flag_is_usage_error() -> None:
    r = wa("connect", "--frobnicate")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_corrupt_config_is_exit_2_naming_file(isolated_home: Path) -> None:
    path = ProfileStore().path
    path.parent.mkdir(parents=True)
    path.write_text("[profiles.default\n")
    r = wa("status")
    assert r.returncode == 2
    assert str(path) in r.stderr and "line 1" in r.stderr and "Traceback" not in r.stderr


def test_profile_flags_given_to_setup_are_saved(isolated_home: Path) -> None:
    wa("--profile", "ws7", "setup", "--user", "bbadger", "--host", "carproject-07.engr.wisc.edu", "--no-tui")
    profile = ProfileStore().load("ws7")
    assert profile is not None
    assert (profile.user, profile.host) == ("bbadger", "carproject-07.engr.wisc.edu")
    assert ProfileStore().load("default") is None
