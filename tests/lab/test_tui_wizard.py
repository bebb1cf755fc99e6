"""The app on a real terminal in the lab: ``wa-onboard`` in tmux inside the laptop namespace, the wizard
driven with keystrokes to the done screen, against the real core (OpenSSH engine, sshd/PAM, lmod, the
conda stand-in, JupyterHub). Then the dashboard, and quitting with the tunnel stopped.

Run (root, provisioned lab):  flock /tmp/wa-lab.lock python3 -m pytest tests/lab/test_tui_wizard.py -x -q
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from lab import Lab, Member
from lab_helpers import wa_argv

from wa_onboard.core.profile import Profile, ProfileStore

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")


PANES = itertools.count()


class Pane:
    """One tmux pane on a private server (its own socket), 80x24, running argv."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.socket = f"wa-tui-{os.getpid()}-{next(PANES)}"  # its own server: panes can overlap
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        command = f"cd {shlex.quote(str(ROOT))} && env {exports} {shlex.join(argv)}; echo EXIT=$?; sleep 600"
        self._tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", "wa", command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "wa")

    def keys(self, *keys: str, literal: bool = False) -> None:
        self._tmux("send-keys", "-t", "wa", *(["-l"] if literal else []), *keys)

    def wait_for(self, *texts: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            for text in texts:
                if text in shown:
                    return text
            time.sleep(0.3)
        raise AssertionError(f"none of {texts} on screen after {timeout}s:\n{self.screen()}")

    def wait_gone(self, text: str, timeout: float = 10) -> None:
        """Until ``text`` leaves the screen (a dialog closed), or ``timeout``."""
        deadline = time.monotonic() + timeout
        while text in self.screen() and time.monotonic() < deadline:
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


PaneFactory = Callable[[list[str], dict[str, str]], Pane]


@pytest.fixture
def pane_factory(lab: Lab, laptop_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PaneFactory]:
    panes: list[Pane] = []

    def make(argv: list[str], env: dict[str, str]) -> Pane:
        pane = Pane(argv, env)
        panes.append(pane)
        return pane

    yield make
    for pane in panes:
        pane.close()
    monkeypatch.setenv("HOME", str(laptop_home))
    from wa_onboard.core.tunnel import daemon

    daemon.stop_supervisor("default")


def start_wizard(
    lab: Lab,
    member: Member,
    laptop_home: Path,
    pane_factory: PaneFactory,
    args: Sequence[str] = (),
    **fields: str,
) -> tuple[Pane, Path, Profile]:
    """``wa-onboard [ARGS]`` with the lab's hosts stored (as ``setup --host ...`` would) and no user yet,
    so it opens the wizard; the member types only their username."""
    config = laptop_home / ".config" / "wa-onboard" / "config.toml"
    lab_profile = Profile(
        jump=lab.jump_host, host=lab.ws_host, remote_port=lab.hub_port, base_url=lab.base_url
    ).updated(**fields)
    ProfileStore(config).save(lab_profile)
    env = {
        "HOME": str(laptop_home),
        "BROWSER": "true",
        "TERM": "xterm-256color",
        "WA_ONBOARD_CONFIG": str(config),
    }
    pane = pane_factory(lab.laptop_cmd(wa_argv(*args)), env)

    pane.wait_for("Welcome!", timeout=30)
    pane.keys("Enter")
    pane.wait_for("CAE username")
    for _ in range(5):  # keys sent before the form has focused its first field are lost: type again
        pane.keys(member.name, literal=True)
        try:
            pane.wait_for(member.name, timeout=3)
            break
        except AssertionError:
            continue
    pane.keys("Enter")
    return pane, config, lab_profile


def answer_until_done(pane: Pane, member: Member) -> list[str]:
    """Answer every dialog as the member would, up to the done screen; the dialogs seen, in order."""
    answered: list[str] = []
    while True:
        seen = pane.wait_for(
            "New host", "Campus password", "Verification code", "Your consent", "You're set up.", "Failed:",
            "Setup could not run", timeout=600,
        )  # fmt: skip
        if seen in ("Failed:", "Setup could not run"):
            raise AssertionError(f"setup failed in the app:\n{pane.screen()}")
        if seen == "You're set up.":
            return answered
        answered.append(seen)
        if seen == "New host":
            pane.keys("t")
        elif seen == "Campus password":
            pane.keys(member.password, literal=True)
            pane.keys("Enter")
        elif seen == "Verification code":
            pane.keys(member.totp_code(), literal=True)
            pane.keys("Enter")
        else:
            pane.keys("y")
        pane.wait_gone(seen)  # the dialog closes before the next question can open


def test_wizard_on_a_real_terminal_to_the_done_screen(
    lab: Lab, member: Member, laptop_home: Path, pane_factory: PaneFactory
) -> None:
    pane, config, lab_profile = start_wizard(lab, member, laptop_home, pane_factory)
    answered = answer_until_done(pane, member)

    done = pane.screen()
    assert "wa-onboard connect" in done and f"http://127.0.0.1:{lab_profile.local_port}" in done
    assert "Campus password" in answered
    stored = ProfileStore(config).load()
    assert stored is not None and stored.user == member.name and stored.host == lab.ws_host

    # the kernel is there for the member's JupyterLab
    specs = lab.hub_login_kernelspecs(member)
    assert any(s["spec"]["display_name"] == "WA" for s in specs["kernelspecs"].values()), specs

    # the dashboard shows the background tunnel; quitting asks, and "stop" stops it
    pane.keys("Enter")
    pane.wait_for("connected", timeout=60)
    pane.keys("q")
    pane.wait_for("Keep running")
    pane.keys("s")
    pane.wait_for("EXIT=0", timeout=60)

    for path in laptop_home.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert member.password.encode() not in path.read_bytes(), path


def test_the_paramiko_engine_in_the_app_asks_the_password_once(
    lab: Lab, mfa_member: Member, laptop_home: Path, pane_factory: PaneFactory
) -> None:
    """The jump host asks password + code, the workstation the password again: the app used to open a
    second password dialog with the paramiko engine (the reuse lived in the OpenSSH engine only)."""
    pane, _, _ = start_wizard(lab, mfa_member, laptop_home, pane_factory, engine="paramiko")
    answered = answer_until_done(pane, mfa_member)
    assert answered.count("Campus password") == 1, answered
    assert "Verification code" in answered
    pane.keys("q")
    pane.wait_for("EXIT=0", timeout=60)


def test_setup_yes_in_the_app_answers_what_it_answers_on_the_command_line(
    lab: Lab, member: Member, laptop_home: Path, pane_factory: PaneFactory
) -> None:
    """``wa-onboard setup --yes`` at a terminal opens the app: the new host keys and the ~/.ssh/config
    line are answered yes with no dialog, as ``setup --no-tui --yes`` does; the password is still asked."""
    pane, _, _ = start_wizard(lab, member, laptop_home, pane_factory, ("setup", "--yes"))
    answered = answer_until_done(pane, member)
    assert answered == ["Campus password"], answered
    assert "Include " in (laptop_home / ".ssh" / "config").read_text()  # the consent --yes gave
    pane.keys("q")
    pane.wait_for("EXIT=0", timeout=60)


def test_a_cancelled_first_run_says_how_to_resume_and_the_next_start_resumes_it(
    lab: Lab, member: Member, laptop_home: Path, pane_factory: PaneFactory
) -> None:
    """Cancel the password dialog: the app's hint is its retry key; quitting prints the failure and
    the command to resume and exits 1; the next ``wa-onboard`` reopens the wizard, not the dashboard."""
    pane, config, _ = start_wizard(lab, member, laptop_home, pane_factory)
    while True:
        seen = pane.wait_for("New host", "Your consent", "Campus password", timeout=120)
        if seen == "Campus password":
            break
        pane.keys("t" if seen == "New host" else "y")
        pane.wait_gone(seen)
    pane.keys("Escape")
    pane.wait_for("Failed:", timeout=60)
    assert "press r to be asked again" in pane.screen()
    assert "password-stdin" not in pane.screen()
    pane.keys("q")
    pane.wait_for("EXIT=", timeout=60)
    after = pane.screen()
    assert "EXIT=1" in after, after
    assert "wa-onboard: Failed:" in after and "go on where it stopped with: wa-onboard setup" in after

    env = {
        "HOME": str(laptop_home),
        "BROWSER": "true",
        "TERM": "xterm-256color",
        "WA_ONBOARD_CONFIG": str(config),
    }
    again = pane_factory(lab.laptop_cmd(wa_argv()), env)
    again.wait_for("Setup did not finish", "○ down", timeout=30)
    assert "Setup did not finish" in again.screen(), again.screen()
    again.keys("Enter")
    assert answer_until_done(again, member).count("Campus password") == 1
