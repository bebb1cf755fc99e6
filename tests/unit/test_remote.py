"""Marker parsing and the script runner, against a local login bash standing in for the ssh hop."""

from __future__ import annotations

from wa_onboard.core.remote import MarkerParser, SubprocessShell, wrap

# argv that behaves like `ssh host CMD`: a chatty login shell that then runs CMD
CHATTY = ["sh", "-c", "echo 'Welcome to CAE'; echo; eval \"$1\"", "ssh-like"]


def test_output_between_markers_only_and_exit_code() -> None:
    seen: list[str] = []
    r = SubprocessShell(CHATTY).run("echo one; echo; echo two; exit 3", on_line=seen.append)
    assert r.exit_code == 3
    assert r.stdout == "one\n\ntwo\n"
    assert seen == ["one", "", "two"]
    assert "Welcome to CAE" in r.noise


def test_script_cannot_swallow_its_own_stdin() -> None:
    r = SubprocessShell(CHATTY).run("cat; echo after")
    assert r.ok and r.stdout == "after\n"


def test_timeout_is_minus_one_and_prompt() -> None:
    r = SubprocessShell(CHATTY).run("sleep 30", timeout=0.5)
    assert r.exit_code == -1 and not r.reached_script
    assert r.seconds < 10


def test_connection_failure_is_255() -> None:
    r = SubprocessShell(
        ["sh", "-c", "echo 'ssh: connect to host x port 22: No route to host' >&2; exit 255"]
    ).run("true")
    assert r.exit_code == 255 and not r.reached_script
    assert "No route to host" in r.stderr


def test_parser_ignores_fake_markers_from_other_runs() -> None:
    w = wrap("true")
    p = MarkerParser(w)
    for line in [
        "__WA_ONBOARD_BEGIN_deadbeef__",
        w.begin,
        "x",
        "__WA_ONBOARD_END_deadbeef__ 0",
        "",
        f"{w.end} 0",
    ]:
        p.feed(line)
    assert p.exit_code == 0
    assert p.lines == ["x", "__WA_ONBOARD_END_deadbeef__ 0"]
