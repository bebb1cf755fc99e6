"""The daily ``connect --detach`` starts the jump login at launch (core/prestart), on the real lab.

What must hold: the master started at launch is the one the supervisor keeps (its child, stopped by
disconnect); a CLI that ends without handing over (bad input) leaves nothing behind; a stale guess
(a host key trusted only by this very run) is thrown away and the login done afresh; a setting on
the command line means no early login at all; ``WA_ONBOARD_NO_PRESTART`` turns it off.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from lab import Lab, Member
from lab_helpers import NOTHING_LEFT, STOP_WAIT, authorize_key, connect_args, laptop_get, leftovers, wa

from wa_onboard.core import paths
from wa_onboard.core.tunnel import prestart, sshfiles, state as tunnelstate
from wa_onboard.core.tunnel.engines.openssh import our_ssh_processes

PORT = 18030
ADOPTED = "the jump host's login started at launch (prestart), and its master was adopted"


def cli(lab: Lab, home: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return wa(lab, home, *args, env=env)


def connect(lab: Lab, member: Member, home: Path, *extra: str) -> Any:
    """``connect --detach`` with every setting given (saved to the profile): never started early."""
    done = cli(lab, home, *connect_args(lab, member, "--detach", "--local-port", str(PORT), *extra))
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def daily(home: Path, lab: Lab, env: dict[str, str] | None = None) -> Any:
    """The daily command, settings from the profile: the one that starts the jump login early."""
    done = cli(lab, home, "connect", "--detach", "--yes", "--no-browser", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def log_text() -> str:
    path = tunnelstate.log_file("default")
    return path.read_text() if path.exists() else ""


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.fixture
def set_up(lab: Lab, member: Member, laptop_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A member whose laptop has connected once (our ssh_config and known_hosts exist), now down."""
    authorize_key(laptop_home, member, monkeypatch)
    connect(lab, member, laptop_home)
    assert cli(lab, laptop_home, "disconnect").returncode == 0
    assert ADOPTED not in log_text()  # the first connect had nothing to start early from
    yield laptop_home
    cli(lab, laptop_home, "disconnect")


def test_the_early_jump_master_is_adopted_and_stopped_by_disconnect(lab: Lab, set_up: Path) -> None:
    daily(set_up, lab)
    assert log_text().count(ADOPTED) == 1
    record = tunnelstate.read_record("default")
    assert record is not None and record.state == "connected" and laptop_get(lab, PORT) == 200
    names = sshfiles.aliases()
    masters = our_ssh_processes(str(sshfiles.config_path()), (names.jump,))
    # the jump master (and the workstation's ProxyJump helper, which also names wa-jump) belong to
    # the supervisor: the master is its child, so it can reap it and its pty hangs up with it
    jump_master = [pid for pid in masters if "-N" in Path(f"/proc/{pid}/cmdline").read_text().split("\0")]
    assert len(jump_master) == 1 and ppid(jump_master[0]) == record.pid
    assert cli(lab, set_up, "disconnect").returncode == 0
    assert leftovers(lab, set_up, PORT) == NOTHING_LEFT


def test_open_starts_the_tunnel_with_the_early_login_too(lab: Lab, set_up: Path) -> None:
    opened = cli(lab, set_up, "open", env={"BROWSER": "true"})  # a browser that opens nothing
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert "tunnel up" in opened.stdout and f"http://127.0.0.1:{PORT}/jupyter/" in opened.stdout
    assert log_text().count(ADOPTED) == 1 and laptop_get(lab, PORT) == 200
    assert cli(lab, set_up, "disconnect").returncode == 0
    assert leftovers(lab, set_up, PORT) == NOTHING_LEFT


def test_a_cli_that_ends_without_handing_over_leaves_nothing(lab: Lab, set_up: Path) -> None:
    profiles = paths.config_file()
    profiles.write_text(profiles.read_text() + "\n[[broken\n")  # the early login does not read it
    argv = ["connect", "--detach", "--no-browser"]
    assert prestart._profile_name(argv) == "default" and prestart._worth_it("default")  # it starts early
    bad = cli(lab, set_up, *argv)
    assert bad.returncode == 2 and str(profiles) in bad.stderr  # the early supervisor was already off
    deadline = time.monotonic() + STOP_WAIT
    left = leftovers(lab, set_up, PORT)
    while left != NOTHING_LEFT and time.monotonic() < deadline:
        time.sleep(0.2)
        left = leftovers(lab, set_up, PORT)
    assert left == NOTHING_LEFT


def test_a_host_key_trusted_by_this_very_run_gets_a_fresh_login(lab: Lab, set_up: Path) -> None:
    sshfiles.known_hosts_path().unlink()  # the early master meets an unknown key, in BatchMode
    done = daily(set_up, lab)  # --yes: the CLI trusts the keys, then hands over
    assert "tunnel up" in done.stdout
    assert laptop_get(lab, PORT) == 200
    assert ADOPTED not in log_text()


def test_a_setting_on_the_command_line_means_no_early_login(
    lab: Lab, set_up: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = lab.new_member()
    authorize_key(set_up, other, monkeypatch)  # the same laptop key, now in the other account too
    connect(lab, other, set_up)  # --user other: the saved config names `member`, so nothing early
    assert ADOPTED not in log_text()
    # the namespaces share one process table: the lab's sshd sessions show as `sshd-walab-jump: user`
    ps = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout.splitlines()
    sessions = {line.split(": ", 1)[1].strip() for line in ps if line.startswith("sshd-walab-jump: ")}
    assert other.name in sessions, sessions
    record = tunnelstate.read_record("default")
    assert record is not None and record.state == "connected" and laptop_get(lab, PORT) == 200


def test_it_can_be_turned_off(lab: Lab, set_up: Path) -> None:
    daily(set_up, lab, env={"WA_ONBOARD_NO_PRESTART": "1"})
    assert ADOPTED not in log_text() and laptop_get(lab, PORT) == 200
