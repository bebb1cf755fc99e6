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


# ------------------------------------------------------------------ profiles: only setup makes one


def _two_profiles() -> ProfileStore:
    from wa_onboard.core.profile import Profile

    store = ProfileStore()
    store.save(Profile(user="bbadger", jump="127.0.0.1:1", host="127.0.0.1:2"))
    store.save(Profile(user="bbadger", jump="127.0.0.1:1", host="127.0.0.1:2"), "ws7")
    return store


@pytest.mark.parametrize(
    "args",
    [["status"], ["status", "--json"], ["connect", "--no-browser"], ["open"], ["disconnect"], ["doctor"]],
)
def test_a_mistyped_profile_is_an_error_naming_the_known_ones(isolated_home: Path, args: list[str]) -> None:
    store = _two_profiles()
    before = store.path.read_bytes()
    r = wa("--profile", "nosuch", *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr
    error, hint = r.stderr.splitlines()
    assert error == "wa-onboard: error: no profile named 'nosuch' (known: default, ws7)"
    assert "wa-onboard --profile nosuch setup --user" in hint
    assert store.path.read_bytes() == before, "a command other than setup made a profile"


def test_connect_on_a_fresh_laptop_without_a_user_says_run_setup(isolated_home: Path) -> None:
    r = wa("connect", "--jump", "127.0.0.1:1", "--host", "127.0.0.1:2", "--no-browser")
    assert r.returncode == 2, r.stdout + r.stderr
    error, hint = r.stderr.splitlines()
    assert error == "wa-onboard: error: this laptop is not set up yet (no profile 'default')"
    assert hint == "  hint: run: wa-onboard setup --user YOUR_CAE_USERNAME"
    assert not ProfileStore().path.exists()


def test_setup_may_make_a_new_profile_and_the_bare_flags_still_validate_first(isolated_home: Path) -> None:
    _two_profiles()
    r = wa("--profile", "nosuch", "connect", "--local-port", "70000")
    assert r.returncode == 2 and "invalid local-port" in r.stderr  # bad input first, as before
    wa(
        "--profile",
        "new",
        "setup",
        "--user",
        "bbadger",
        "--host",
        "127.0.0.1:2",
        "--no-tui",
        "--jump",
        "127.0.0.1:1",
    )
    assert "new" in ProfileStore().names()


# ------------------------------------------------------------------ --engine is a profile flag


@pytest.mark.parametrize("command", ["setup", "connect"])
def test_engine_is_listed_with_the_profile_flags(command: str) -> None:
    text = wa(command, "--help").stdout
    group = text[text.index("profile (given values are validated and saved") :]
    group = group[: group.index("\n\n")] if "\n\n" in group else group
    assert "--engine" in group
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "| `--engine` | `engine` |" in readme


def test_a_changed_profile_value_is_said_when_saved(
    isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wa_onboard.cli import CommandContext, build_parser, parse

    store = _two_profiles()
    args = parse(build_parser(), ["connect", "--engine", "paramiko", "--local-port", "8001"])
    ctx = CommandContext("default", store, args)
    assert ctx.load_profile(save_flags=True).engine == "paramiko"
    saved = store.load()
    assert saved is not None and (saved.engine, saved.local_port) == ("paramiko", 8001)
    err = capsys.readouterr().err
    assert err.startswith("wa-onboard: saved to profile default in ")
    assert "engine paramiko (was openssh)" in err and "local_port 8001 (was 8000)" in err
    ctx.load_profile(save_flags=True)  # the same values again: nothing changes, nothing said
    assert capsys.readouterr().err == ""
    CommandContext("ws8", store, args).load_profile(save_flags=True)  # no user: nothing worth keeping
    assert capsys.readouterr().err == "" and store.load("ws8") is None
    with_user = parse(build_parser(), ["connect", "--user", "bb", "--engine", "paramiko"])
    CommandContext("ws8", store, with_user).load_profile(save_flags=True)
    assert capsys.readouterr().err == f"wa-onboard: saved the new profile ws8 in {store.path}\n"


# ------------------------------------------------------------------ usage errors: one line, exit 2


def test_a_value_that_starts_with_a_dash_gets_the_same_one_line_error() -> None:
    spaced = wa("setup", "--user", "-oProxyCommand=x")
    joined = wa("setup", "--user=-oProxyCommand=x")
    assert spaced.returncode == joined.returncode == 2
    assert spaced.stderr == joined.stderr
    assert spaced.stderr.startswith("wa-onboard: error: invalid user: '-oProxyCommand=x'")
    assert "usage:" not in spaced.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["connect", "--frobnicate"],
        ["--user=-x", "setup"],
        ["status", "--profile"],
        ["setup", "--engine", "ssh"],
    ],
)
def test_every_usage_error_is_one_line(args: list[str]) -> None:
    r = wa(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("wa-onboard: error: "), r.stderr
    assert "--help" in r.stderr


def test_the_usage_line_shows_the_command_is_optional() -> None:
    usage = wa("--help").stdout.splitlines()[0]
    assert usage == "usage: wa-onboard [-h] [--version] [--profile NAME] [COMMAND [OPTIONS]]"


# ------------------------------------------------------------------ doctor --report: checked first


def test_report_to_a_folder_or_missing_folder_is_said_before_any_check(isolated_home: Path) -> None:
    (isolated_home / "somedir").mkdir()
    for target, problem in [
        (isolated_home / "somedir", f"{isolated_home}/somedir is a folder, not a file"),
        (isolated_home / "nope" / "r.txt", f"the folder {isolated_home}/nope does not exist"),
    ]:
        r = wa("doctor", "--report", str(target))
        assert r.returncode == 2, r.stderr
        assert r.stdout == "", "checks ran before the report path was checked"
        assert r.stderr.splitlines()[0] == f"wa-onboard: error: invalid --report: {problem}"
    assert not (isolated_home / "nope").exists()


def test_report_to_a_folder_a_normal_user_cannot_write() -> None:
    from tests.unit.normal_user import normal_home, run_as_normal_user

    with normal_home() as home:
        r = run_as_normal_user(["python", "-m", "wa_onboard", "doctor", "--report", "/r.txt"], home)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines()[0] == "wa-onboard: error: invalid --report: you cannot write in the folder /"


def test_config_folder_that_cannot_be_made_is_one_line_no_traceback() -> None:
    from tests.unit.normal_user import normal_home, run_as_normal_user

    with normal_home() as home:
        r = run_as_normal_user(
            ["python", "-m", "wa_onboard", "setup", "--no-tui", "--user", "bbadger"],
            home,
            {"WA_ONBOARD_CONFIG": "/nonexistent/dir/c.toml"},
        )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    error, hint = r.stderr.splitlines()
    assert error == "wa-onboard: error: cannot make the folder /nonexistent: Permission denied"
    assert (
        hint
        == "  hint: WA_ONBOARD_CONFIG names /nonexistent/dir/c.toml: point it at a file in a folder you can write, or unset it"
    )


@pytest.mark.parametrize("kind", ["folder", "not-utf8"])
def test_a_config_path_that_is_a_folder_or_not_utf8_is_named(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    target = isolated_home / "c.toml"
    if kind == "folder":
        target.mkdir()
    else:
        target.write_bytes(b'[profiles.default]\nuser = "b\xe9"\n')  # latin-1, as an old editor saves it
    monkeypatch.setenv("WA_ONBOARD_CONFIG", str(target))
    r = wa("status")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    error, hint = r.stderr.splitlines()
    assert "permission" not in (error + hint).lower()
    expected = {
        "folder": f"config path {target} is a folder, not a file",
        "not-utf8": f"config file {target} is not UTF-8 text (byte 0xe9 at offset 28)",
    }[kind]
    assert error == f"wa-onboard: error: {expected}"


def test_status_on_a_laptop_not_set_up_points_to_setup_not_connect() -> None:
    """'start it with: wa-onboard connect' was circular: connect then says the laptop is not set up."""
    r = wa("status")
    assert r.returncode == 1
    assert "setup --user" in r.stdout and "start it with" not in r.stdout, r.stdout


def test_a_profile_name_with_escape_codes_in_the_config_is_shown_harmlessly(isolated_home: Path) -> None:
    from wa_onboard.core import paths

    config = paths.config_file()
    config.parent.mkdir(parents=True)
    config.write_text('[profiles."x\\u001b[2J"]\nuser = "bb"\n')
    r = wa("--profile", "nosuch", "status")
    assert r.returncode == 2 and "\x1b" not in r.stderr and "\\x1b" in r.stderr, r.stderr
