"""The app on a real pseudo-terminal: it draws, and Ctrl-C / ctrl+q leave the terminal as it was.

The full real-terminal test (tmux in the lab's laptop namespace, the real core, keystrokes to the
done screen) belongs to the lab integration pass: see tests/tui/README.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

ROOT = Path(__file__).resolve().parents[2]
LEAVE_ALT_SCREEN = "\x1b[?1049l"
SHOW_CURSOR = "\x1b[?25h"
MOUSE_OFF = "\x1b[?1000l"


def spawn(mode: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "tests.tui.run_fake_app", mode],
        cwd=str(ROOT),
        dimensions=(24, 80),
        env={"TERM": "xterm-256color", "PATH": "/usr/bin:/bin", "HOME": "/tmp", "BROWSER": "true"},
        encoding="utf-8",
        codec_errors="replace",
        timeout=30,
    )


@pytest.mark.parametrize(("mode", "shown", "keys", "code"), [
    ("wizard", "Welcome!", ["\x03"], 130),                 # Ctrl-C on the welcome screen: interrupted
    ("wizard", "Welcome!", ["\x11"], 0),                   # ctrl+q
    ("dashboard", "connected", ["\x03", "\x03"], 130),     # Ctrl-C twice: the tunnel question, then leave
    ("dashboard", "connected", ["q", "s"], 0),             # quit, stop the tunnel
])  # fmt: skip
def test_leaves_a_clean_terminal(mode: str, shown: str, keys: list[str], code: int) -> None:
    child = spawn(mode)
    child.expect_exact(shown)
    for key in keys:
        child.send(key)
        child.expect(
            [r"Keep running|Stop it", pexpect.EOF] if len(keys) > 1 and key == keys[0] else [pexpect.EOF]
        )
    if child.isalive():
        child.expect(pexpect.EOF)
    child.close()
    tail = child.before or ""
    assert child.exitstatus == code, tail[-500:]
    assert LEAVE_ALT_SCREEN in tail and SHOW_CURSOR in tail and MOUSE_OFF in tail
    assert "Traceback" not in tail


def test_a_crash_in_the_app_does_not_exit_0() -> None:
    child = spawn("crash")
    child.expect(pexpect.EOF)
    child.close()
    assert "a bug in the app" in (child.before or "")
    assert child.exitstatus == 1


def test_setup_in_a_terminal_opens_the_wizard(tmp_path: Path) -> None:
    """`wa-onboard setup` with a terminal shows the wizard (flags already saved), and leaves cleanly."""
    env = {"TERM": "xterm-256color", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BROWSER": "true"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "wa_onboard", "setup", "--user", "bbadger", "--env", "robots"],
        cwd=str(ROOT), dimensions=(24, 80), env=env, encoding="utf-8", codec_errors="replace", timeout=30,
    )  # fmt: skip
    child.expect_exact("Welcome!")
    child.send("\x11")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert 'env = "robots"' in (tmp_path / ".config" / "wa-onboard" / "config.toml").read_text()


@pytest.mark.parametrize("set_up", [False, True])
def test_without_a_terminal_the_bare_command_says_what_to_run_and_exits_2(
    tmp_path: Path, set_up: bool
) -> None:
    """`wa-onboard </dev/null >out` used to draw escape codes into the file forever."""
    config = tmp_path / "c.toml"
    if set_up:
        from wa_onboard.core.profile import Profile, ProfileStore

        ProfileStore(config).save(Profile(user="bbadger"))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TERM": "xterm-256color",
           "WA_ONBOARD_CONFIG": str(config)}  # fmt: skip
    out = tmp_path / "out"
    with open(os.devnull) as stdin, out.open("w") as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "wa_onboard"], cwd=ROOT, env=env, stdin=stdin, stdout=stdout,
            stderr=subprocess.PIPE, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert out.read_text() == ""
    lines = done.stderr.splitlines()
    assert "needs a terminal" in lines[0]
    assert ("wa-onboard connect --detach" if set_up else "wa-onboard setup --no-tui --user") in lines[1]


def test_with_stderr_redirected_the_bare_command_does_not_draw_into_the_file(tmp_path: Path) -> None:
    """Textual draws on stderr: `wa-onboard 2>log` in a terminal would paint the app into the log."""
    log = tmp_path / "log"
    child = pexpect.spawn(
        "/bin/sh", ["-c", f"{sys.executable} -m wa_onboard 2>{log}; echo EXIT=$?"],
        cwd=str(ROOT), dimensions=(24, 80), encoding="utf-8", timeout=30,
        env={"TERM": "xterm-256color", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    child.expect(r"EXIT=(\d+)")
    assert child.match.group(1) == "2"
    assert "needs a terminal" in log.read_text()
