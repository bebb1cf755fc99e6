"""Every screen and every key of the app, against the real backend: ``wa-onboard`` in tmux inside the
lab's laptop namespace (real OpenSSH, sshd/PAM with an MFA code, lmod, the conda stand-in, JupyterHub).

The tests share one MFA member and one laptop home and run in file order, as a member's days would:
the first run (every wizard key and dialog, failures, retry, cancel), setup again to the dashboard and
its keys, the ways out, the diagnostics (healthy, then with the hub down), and a declined repair. Which
test presses which key is registered in tests/lab/tui_keys.py; tests/tui/test_binding_coverage.py
fails when the app has a key no test here drives, and the last test here fails when a registered key
was not pressed.

Run (root, provisioned lab):  python -m pytest tests/lab/test_tui_real.py -x -q
"""

from __future__ import annotations

import re
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tui_keys
from lab import Lab, Member
from lab_helpers import wa, wa_argv
from test_tui_wizard import Pane

from wa_onboard.core.profile import Profile, ProfileStore
from wa_onboard.tui import fake

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")

#: tmux names of the app's keys (single characters are sent as they are)
TMUX_KEYS = {
    "enter": "Enter",
    "escape": "Escape",
    "ctrl+q": "C-q",
    "ctrl+c": "C-c",
    "ctrl+t": "C-t",
    "ctrl+s": "C-s",
    "f1": "F1",
    "question_mark": "?",
}
#: what is on screen while each question waits, and how a setup run ends
DIALOGS = {
    "host": "First connection to",
    "password": "Campus password",
    "code": "Verification code",
    "consent": "Your consent",
    "destructive": "Destructive change",
}
FORM = "Only the username is new to you"
ENDS = ("You're set up.", "Failed:", "Setup stopped", "Setup could not run")
PRESSED: set[tuple[str, str]] = set()
PASSED: set[str] = set()


class AppPane(Pane):
    """The real program in a tmux pane (80x24, as the app is designed for)."""

    def text(self) -> str:
        """The screen as one line of words, so a sentence the app wrapped can be found."""
        return " ".join(self.screen().split())

    def shows(self, sentence: str) -> bool:
        return " ".join(sentence.split()) in self.text()

    def colors(self) -> str:
        """The screen with its colours (escape codes), to see a theme change."""
        return self._tmux("capture-pane", "-e", "-p", "-t", "wa")

    def wait_gone(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text in self.screen():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} still on screen after {timeout}s:\n{self.screen()}")
            time.sleep(0.2)

    def exit_code(self, timeout: float = 60) -> int:
        self.wait_for("EXIT=", timeout=timeout)
        found = re.search(r"EXIT=(\d+)", self.screen())
        assert found is not None, self.screen()
        return int(found.group(1))

    def type(self, text: str, shown: str | None = None) -> None:
        """Type into the focused field; keys sent before the field has focus are lost, so type again."""
        for _ in range(5):
            self.keys(text, literal=True)
            try:
                self.wait_for(shown or text, timeout=3)
                return
            except AssertionError:
                continue
        raise AssertionError(f"could not type {text!r}:\n{self.screen()}")


def retry(pane: AppPane) -> None:
    """r on the failure panel: the panel goes, the run starts again."""
    press(pane, "RunScreen", "r")
    for text in ("Failed:", "Setup stopped"):
        pane.wait_gone(text)


def press(pane: AppPane, where: str, key: str) -> None:
    """Press a registered binding of ``where`` (a screen class, or WaApp)."""
    assert (where, key) in tui_keys.DRIVEN, f"register ({where!r}, {key!r}) in tests/lab/tui_keys.py"
    PRESSED.add((where, key))
    time.sleep(0.3)  # a screen that just appeared may not have its bindings yet
    pane.keys(TMUX_KEYS.get(key, key))


@dataclass
class World:
    """One member's laptop: the home, the config with the lab's hosts, a browser that logs its URLs."""

    lab: Lab
    member: Member
    home: Path
    onboarded: bool = False
    panes: list[AppPane] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.home / ".config" / "wa-onboard" / "config.toml"

    @property
    def opened(self) -> Path:
        return self.home / "browser-opened"

    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "BROWSER": f"{self.home / 'browser'} %s",
            "TERM": "xterm-256color",
            "WA_ONBOARD_CONFIG": str(self.config),
        }

    def app(self, *args: str) -> AppPane:
        for old in self.panes:
            old.close()
        pane = AppPane(self.lab.laptop_cmd(wa_argv(*args)), self.env())
        self.panes.append(pane)
        return pane

    def cli(self, *args: str, timeout: float = 120) -> tuple[int, str]:
        r = wa(self.lab, self.home, *args, env=self.env(), timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    def browser_urls(self) -> list[str]:
        return self.opened.read_text().split() if self.opened.exists() else []

    def wait_browser(self, count: int, timeout: float = 30) -> None:
        """Until our $BROWSER was asked ``count`` times in all, each time for the hub's URL."""
        deadline = time.monotonic() + timeout
        while len(self.browser_urls()) < count:
            assert time.monotonic() < deadline, f"the browser was not opened: {self.browser_urls()}"
            time.sleep(0.2)
        assert self.browser_urls()[-1] == "http://127.0.0.1:8000/jupyter/", self.browser_urls()

    def new_key(self) -> None:
        """Remove this laptop's key, so that setup makes (and has to install) a new one."""
        for name in ("wa_onboard_ed25519", "wa_onboard_ed25519.pub"):
            (self.home / ".ssh" / name).unlink()

    def setup_in_app(self, *args: str) -> AppPane:
        """``wa-onboard setup ARGS`` in the app, through the welcome and the filled-in form."""
        pane = self.app("setup", *args)
        pane.wait_for("Welcome!", timeout=60)
        press(pane, "WelcomeScreen", "enter")
        pane.wait_for(FORM)
        pane.wait_for(self.member.name)  # the form is filled in from the profile
        time.sleep(0.5)
        pane.keys("Enter")
        return pane

    def need_onboarded(self) -> None:
        if not self.onboarded:
            pytest.skip(f"needs {tui_keys.FIRST_RUN} first (the tests share one member, in file order)")

    def answer(
        self, pane: AppPane, stop_at: tuple[str, ...] = (), **plans: list[str]
    ) -> tuple[str, list[tuple[str, str]]]:
        """Answer each question of a setup run as it opens, until the run ends (or a ``stop_at`` text
        shows); ``plans[kind]`` are the keys for that question's successive showings ("type" types the
        secret), else the usual answer. Returns how the run ended and what was answered."""
        usual = {"host": "t", "password": "type", "code": "type", "consent": "y", "destructive": "y"}
        where = {
            "host": "HostKeyModal",
            "password": "SecretModal",
            "code": "SecretModal",
            "consent": "ConfirmModal",
            "destructive": "ConfirmModal",
        }
        answered: list[tuple[str, str]] = []
        while True:
            seen = pane.wait_for(*DIALOGS.values(), *ENDS, *stop_at, timeout=600)
            if seen in ENDS or seen in stop_at:
                return seen, answered
            kind = next(k for k, text in DIALOGS.items() if text == seen)
            key = plans[kind].pop(0) if plans.get(kind) else usual[kind]
            answered.append((kind, key))
            marker = seen
            if kind == "host":
                line = re.search(r"First connection to (\S+)\.", pane.screen())
                marker = f"First connection to {line.group(1)}" if line else seen
            if key == "type":
                time.sleep(0.3)
                secret = self.member.password if kind == "password" else self.member.totp_code()
                pane.keys(secret, literal=True)
                pane.keys("Enter")
            else:
                press(pane, where[kind], key)
            try:
                pane.wait_gone(marker, timeout=15)
            except AssertionError:
                if kind != "host":  # the same question again (a second host, a second prompt)
                    raise


@pytest.fixture(scope="module")
def world(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    member = lab.new_member(mfa=True)
    home = tmp_path_factory.mktemp("tui-real") / "home"
    home.mkdir(mode=0o700)
    w = World(lab, member, home)
    # the lab's hosts instead of campus, as `setup --host ...` would store them; no user yet
    ProfileStore(w.config).save(
        Profile(jump=lab.jump_host, host=lab.ws_host, remote_port=lab.hub_port, base_url=lab.base_url)
    )
    browser = home / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {w.opened}\n')
    browser.chmod(0o755)
    try:
        yield w
    finally:
        for pane in w.panes:
            pane.close()
        w.cli("disconnect")
        lab.set_conda_fault(None)
        lab.start_hub()
        lab.remove_member(member)


def test_first_run_every_wizard_key_and_modal(world: World, lab: Lab) -> None:
    pane = world.app()
    pane.wait_for("Welcome!", timeout=60)

    # `?`/F1 open the help; Esc, q, `?` and F1 close it
    for open_key, close_key in (("question_mark", "escape"), ("f1", "q"), ("question_mark", "question_mark"),
                                ("f1", "f1")):  # fmt: skip
        press(pane, "WaApp", open_key)
        pane.wait_for("Help: setup")
        press(pane, "HelpScreen", close_key)
        pane.wait_gone("Help: setup")

    # ctrl+t switches the theme: the same words in other colours
    before = pane.colors()
    press(pane, "WaApp", "ctrl+t")
    deadline = time.monotonic() + 15
    while pane.colors() == before:
        assert time.monotonic() < deadline, "ctrl+t changed no colour"
        time.sleep(0.3)
    assert "Welcome!" in pane.screen()

    # welcome -> form -> back -> form
    press(pane, "WelcomeScreen", "enter")
    pane.wait_for(FORM)
    press(pane, "ProfileScreen", "escape")
    pane.wait_gone(FORM)
    pane.wait_for("Welcome!")
    press(pane, "WelcomeScreen", "enter")
    pane.wait_for(FORM)
    pane.type(world.member.name)
    press(pane, "ProfileScreen", "ctrl+s")

    # no to the ~/.ssh/config line (setup goes on), Esc on the jump host's key: the login fails
    ended, answered = world.answer(pane, consent=["n"], host=["escape"])
    assert answered[:2] == [("consent", "n"), ("host", "escape")], answered
    assert ended == "Failed:", pane.screen()
    assert "Failed: Log in to the jump host and the workstation" in pane.screen()
    config = world.home / ".ssh" / "config"
    assert not config.exists() or "wa-onboard" not in config.read_text()

    # retry: trust the key, then Esc on the password dialog: the login fails again
    retry(pane)
    ended, answered = world.answer(pane, password=["escape"])
    assert ("password", "escape") in answered and ended == "Failed:", (answered, pane.screen())

    # retry with a slow conda: the password and the MFA code, then cancel conda's create
    lab.set_conda_fault("slow", slow_seconds=3.0)
    try:
        retry(pane)
        # conda's first line in the log: the env is being created
        ended, answered = world.answer(pane, stop_at=("Channels:",))
        assert ended == "Channels:", pane.screen()
        kinds = [k for k, _ in answered]
        assert "password" in kinds and "code" in kinds, answered
        press(pane, "RunScreen", "escape")
        pane.wait_for("Setup stopped", timeout=120)
        assert "cancelled" in pane.screen()
    finally:
        lab.set_conda_fault(None)

    # retry: on from where it stopped, to the done screen
    retry(pane)
    ended, answered = world.answer(pane)
    assert ended == "You're set up.", pane.screen()
    assert "password" not in [k for k, _ in answered], "the key is installed: no password again"
    world.onboarded = True
    done = pane.screen()
    assert "wa-onboard connect" in done and "http://127.0.0.1:8000/jupyter" in done

    # o opens the browser (our $BROWSER logs the URL); q leaves, the tunnel keeps running
    opened = len(world.browser_urls())
    press(pane, "DoneScreen", "o")
    world.wait_browser(opened + 1)
    pane.wait_for("Opened")
    press(pane, "DoneScreen", "q")
    assert pane.exit_code() == 0, pane.screen()
    code, out = world.cli("status")
    assert code == 0, out

    stored = ProfileStore(world.config).load()
    assert stored is not None and stored.user == world.member.name
    PASSED.add(tui_keys.FIRST_RUN)


def _supervisor_pid(world: World) -> int | None:
    _, out = world.cli("status")
    found = re.search(r"pid (\d+)", out)
    return int(found.group(1)) if found else None


def test_setup_again_to_the_dashboard_and_its_keys(world: World) -> None:
    world.need_onboarded()
    # a new key for this laptop: setup asks the ~/.ssh/config question again (no the first time);
    # the tunnel is stopped first (with it running, see test_a_new_key_while_the_tunnel_runs_is_installed)
    world.cli("disconnect")
    world.new_key()
    pane = world.setup_in_app()
    ended, answered = world.answer(pane, consent=["y"])
    assert ended == "You're set up.", pane.screen()
    assert ("consent", "y") in answered and ("password", "type") in answered, answered
    assert "Include" in (world.home / ".ssh" / "config").read_text()

    press(pane, "DoneScreen", "enter")
    pane.wait_for("connected", timeout=60)
    assert "Reconnect" in pane.screen()

    opened = len(world.browser_urls())
    press(pane, "DashboardScreen", "o")
    world.wait_browser(opened + 1)
    pane.wait_for("Opened")

    # r: a new tunnel now (a new supervisor), connected again
    before = _supervisor_pid(world)
    press(pane, "DashboardScreen", "r")
    deadline = time.monotonic() + 60
    while _supervisor_pid(world) in (None, before):
        assert time.monotonic() < deadline, (
            f"r started no new tunnel ({world.cli('status')}):\n{pane.screen()}"
        )
        time.sleep(0.5)
    pane.wait_for("● connected", timeout=60)

    # p: the profile picker, Esc closes it
    press(pane, "DashboardScreen", "p")
    pane.wait_for("Switch profile")
    press(pane, "ProfilePicker", "escape")
    pane.wait_gone("Switch profile")

    # q asks; Esc stays; q again and "keep running" leaves the tunnel up
    press(pane, "DashboardScreen", "q")
    pane.wait_for("Keep running")
    press(pane, "QuitModal", "escape")
    pane.wait_gone("Keep running")
    press(pane, "DashboardScreen", "q")
    pane.wait_for("Keep running")
    press(pane, "QuitModal", "k")
    assert pane.exit_code() == 0, pane.screen()
    assert world.cli("status")[0] == 0
    PASSED.add(tui_keys.RERUN)


def test_quit_paths(world: World) -> None:
    world.need_onboarded()
    # ctrl+q on the dashboard asks too; "stop it" stops the tunnel
    pane = world.app()
    pane.wait_for("● connected", timeout=60)
    press(pane, "WaApp", "ctrl+q")
    pane.wait_for("Stop it")
    press(pane, "QuitModal", "s")
    assert pane.exit_code() == 0, pane.screen()
    assert world.cli("status")[0] != 0, "the tunnel was stopped"

    # q on the welcome screen: nothing started, nothing to ask
    pane = world.app("setup")
    pane.wait_for("Welcome!", timeout=60)
    press(pane, "WelcomeScreen", "q")
    assert pane.exit_code() == 0, pane.screen()
    PASSED.add(tui_keys.QUIT)


def test_ctrl_c_exits_130(world: World) -> None:
    pane = world.app("setup")
    pane.wait_for("Welcome!", timeout=60)
    press(pane, "WaApp", "ctrl+c")
    assert pane.exit_code() == 130, pane.screen()
    PASSED.add(tui_keys.CTRL_C)


def test_diagnostics_healthy_and_with_the_hub_down(world: World, lab: Lab) -> None:
    world.need_onboarded()
    hub_down = fake.demo_outcomes(world.member.name)["workstation.hub-port"].summary
    pane = world.app()
    pane.wait_for("● connected", timeout=60)
    try:
        # healthy: nothing fails
        press(pane, "DashboardScreen", "d")
        pane.wait_for("Nothing failed.", "Start with the first failure.", timeout=180)
        assert "Nothing failed." in pane.screen(), pane.screen()

        # s asks where; Esc cancels; s and Enter saves the report, 0600, without the password
        press(pane, "DiagnosticsScreen", "s")
        pane.wait_for("Save the report")
        press(pane, "SaveReportModal", "escape")
        pane.wait_gone("Save the report")
        press(pane, "DiagnosticsScreen", "s")
        pane.wait_for("Save the report")
        time.sleep(0.3)
        pane.keys("Enter")
        pane.wait_for("Report saved")
        pane.wait_gone("Report saved")  # the note covers the rows' ends
        report = world.home / "wa-report.txt"
        assert stat.S_IMODE(report.stat().st_mode) == 0o600
        assert world.member.password not in report.read_text()

        # the hub stops on the workstation: r checks again and names it (the fake's text is the real one)
        lab.stop_hub()
        press(pane, "DiagnosticsScreen", "r")
        pane.wait_for("Start with the first failure.", timeout=180)
        assert "1 failed" in pane.screen(), pane.screen()
        # what the failure says is in the report too (the screen scrolls to its row: test_snapshots),
        # saved again over the healthy one
        press(pane, "DiagnosticsScreen", "s")
        pane.wait_for("Save the report")
        time.sleep(0.3)
        pane.keys("Enter")
        pane.wait_for("Report saved")
        deadline = time.monotonic() + 30
        while hub_down not in report.read_text():
            assert time.monotonic() < deadline, report.read_text()
            time.sleep(0.3)
        press(pane, "DiagnosticsScreen", "escape")
        pane.wait_for("Reconnect")  # the dashboard's footer

        # a setup run that fails at the tunnel: d on the failure panel opens the same diagnostics
        pane = world.setup_in_app()
        ended, _ = world.answer(pane)
        assert ended == "Failed:", pane.screen()
        press(pane, "RunScreen", "d")
        pane.wait_for("Start with the first failure.", timeout=180)
        assert "1 failed" in pane.screen(), pane.screen()
        press(pane, "DiagnosticsScreen", "escape")
        pane.wait_for("Failed:")

        # the hub is back: r finishes the setup
        lab.start_hub()
        retry(pane)
        ended, _ = world.answer(pane)
        assert ended == "You're set up.", pane.screen()
        press(pane, "DoneScreen", "q")
        assert pane.exit_code() == 0, pane.screen()
        PASSED.add(tui_keys.DIAGNOSTICS)
    finally:
        lab.start_hub()


def test_an_unfinished_setup_goes_on_where_it_stopped(world: World, lab: Lab) -> None:
    """A setup that failed (here: the hub down, from the command line) reopens the app's wizard, which
    goes on where it stopped; e edits the settings first."""
    world.need_onboarded()
    world.cli("disconnect")
    lab.stop_hub()
    try:
        code, out = world.cli("setup", "--no-tui")
        assert code == 1, out
    finally:
        lab.start_hub()
    pane = world.app()
    pane.wait_for("Setup did not finish", timeout=60)
    press(pane, "WelcomeScreen", "e")
    pane.wait_for(FORM)
    pane.wait_for(world.member.name)
    time.sleep(0.5)
    pane.keys("Enter")
    ended, _ = world.answer(pane)
    assert ended == "You're set up.", pane.screen()
    press(pane, "DoneScreen", "q")
    assert pane.exit_code() == 0, pane.screen()
    pane = world.app()
    pane.wait_for("● connected", timeout=60)  # finished: the dashboard again
    PASSED.add(tui_keys.RESUME)


def test_disconnect_on_the_dashboard(world: World) -> None:
    world.need_onboarded()
    world.cli("disconnect")  # a fresh tunnel, whatever the test before left
    pane = world.app()
    pane.wait_for("● connected", timeout=60)
    # x: the tunnel stops, and the dashboard says so
    press(pane, "DashboardScreen", "x")
    deadline = time.monotonic() + 30
    while world.cli("status")[0] == 0:
        assert time.monotonic() < deadline, f"x did not stop the tunnel:\n{pane.screen()}"
        time.sleep(0.5)
    pane.wait_for("○ down", timeout=30)

    # r after x: up again
    press(pane, "DashboardScreen", "r")
    pane.wait_for("● connected", timeout=60)

    press(pane, "DashboardScreen", "q")
    pane.wait_for("Keep running")
    press(pane, "QuitModal", "k")
    assert pane.exit_code() == 0, pane.screen()
    PASSED.add(tui_keys.DISCONNECT)


def test_a_new_key_while_the_tunnel_runs_is_installed(world: World) -> None:
    """A member whose key is gone (a new laptop, a cleaned ~/.ssh) runs setup while the tunnel is up."""
    world.need_onboarded()
    code, out = world.cli("connect", "--detach")
    assert code == 0, out
    world.new_key()
    pane = world.setup_in_app()
    ended, _ = world.answer(pane)
    assert ended == "You're set up.", pane.screen()
    press(pane, "DoneScreen", "q")
    pane.exit_code()
    world.cli("disconnect")
    code, out = world.cli("connect", "--detach")  # key only, no one to type a password
    assert code == 0, f"the new key does not log in: {out}"


def test_repair_declined_then_quit_from_the_failure(world: World, lab: Lab) -> None:
    world.need_onboarded()
    profile = ProfileStore(world.config).load()
    assert profile is not None
    # break the env as an interrupted conda would: no python in it
    r = lab.ws_run(f"rm -f ~/.conda/envs/{profile.env}/bin/python*", user=world.member)
    assert r.returncode == 0, r.stderr
    pane = world.setup_in_app("--repair")
    ended, answered = world.answer(pane, destructive=["escape"])
    assert ("destructive", "escape") in answered, answered
    assert ended == "Failed:" and "Failed: Create your conda env" in pane.screen(), pane.screen()
    assert "no consent" in pane.screen()
    press(pane, "RunScreen", "q")
    assert pane.exit_code() == 1, pane.screen()
    PASSED.add(tui_keys.REPAIR)


def test_every_registered_key_was_pressed() -> None:
    """Keys of the tests that passed here were really pressed (the registry cannot claim a key)."""
    ran = {test for test in tui_keys.DRIVEN.values() if test in PASSED}
    if not ran:
        pytest.skip("none of the key tests ran in this session")
    missing = sorted(k for k, test in tui_keys.DRIVEN.items() if test in ran and k not in PRESSED)
    assert not missing, f"registered in tests/lab/tui_keys.py but never pressed: {missing}"
