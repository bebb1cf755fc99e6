"""Foreground ``connect --no-tui`` in a real terminal on the laptop: Ctrl-C (and SIGTERM) stop it clean;
and the background supervisor started the Windows way (spawned, no readiness pipe) on the real lab.

The command runs under a pseudo-terminal (pexpect) in the laptop namespace as the terminal's foreground
process, so Ctrl-C is the real thing: the byte ``\\x03`` written to the terminal, which the line
discipline turns into SIGINT. After it stops, nothing of ours may be left: no ssh, no supervisor, no
listener on the port, no state file, no held lock, and ``status`` says so.
"""

from __future__ import annotations

import json
import os
import re
import signal
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from lab import Lab, Member
from lab_helpers import (
    NOTHING_LEFT,
    STOP_WAIT,
    authorize_key,
    connect_args,
    laptop_get,
    launch,
    leftovers,
    wa,
    wa_argv,
)
from test_tunnel_openssh import profile_values

from wa_onboard.core.tunnel import sshfiles, state as tunnelstate
from wa_onboard.core.tunnel.engines.openssh import our_ssh_processes

PORT = 18010


def laptop_cli(lab: Lab, home: Path, *args: str) -> Any:
    return wa(lab, home, *args)


@pytest.fixture
def terminal(lab: Lab, laptop_home: Path) -> Iterator[Any]:
    """Start ``wa-onboard ARGS`` on the laptop as a terminal's foreground process; kill what is left after."""
    started: list[pexpect.spawn] = []

    def start(*args: str) -> pexpect.spawn:
        argv = lab.laptop_cmd(wa_argv(*args))
        env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "SSH_AGENT_PID")}
        child = pexpect.spawn(
            argv[0], argv[1:], env={**env, "HOME": str(laptop_home)}, encoding="utf-8", timeout=90
        )
        started.append(child)
        return child

    yield start
    for child in started:
        if child.isalive():
            child.kill(signal.SIGKILL)
        child.close(force=True)
    laptop_cli(lab, laptop_home, "disconnect")


@pytest.mark.parametrize("engine", ["openssh", "paramiko"])
@pytest.mark.parametrize(
    ("how", "exit_code", "last_words"), [("ctrl-c", 130, "stopped (Ctrl-C)"), ("sigterm", 0, "stopped")]
)
def test_foreground_connect_stops_clean(
    lab: Lab,
    member: Member,
    laptop_home: Path,
    terminal: Any,
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
    how: str,
    exit_code: int,
    last_words: str,
) -> None:
    authorize_key(laptop_home, member, monkeypatch)  # also HOME = laptop_home here, for the checks below
    child = terminal(*connect_args(lab, member, "--no-tui", "--local-port", str(PORT), engine=engine))
    # the process on the terminal is the CLI itself (ip netns exec and unshare exec, they do not fork)
    assert "wa_onboard" in Path(f"/proc/{child.pid}/cmdline").read_text()

    child.expect(r"connecting: connecting")
    child.expect(rf"connected: connected -> http://127.0.0.1:{PORT}/jupyter/")
    child.expect("Ctrl-C stops the tunnel")
    assert laptop_get(lab, PORT) == 200
    record = tunnelstate.read_record("default")
    assert record is not None and record.pid == child.pid and record.state == "connected"
    assert tunnelstate.lock_is_held("default")
    up = json.loads(laptop_cli(lab, laptop_home, "status", "--json").stdout)
    assert up["connected"] is True and up["pid"] == child.pid and up["local_port"] == PORT
    if engine == "openssh":
        names = sshfiles.aliases()
        assert our_ssh_processes(str(sshfiles.config_path()), (names.jump, names.ws))  # the masters run

    if how == "ctrl-c":
        assert termios.tcgetattr(child.child_fd)[6][termios.VINTR] == b"\x03"
        child.send("\x03")  # the terminal's interrupt key: SIGINT to the foreground process group
    else:
        os.kill(child.pid, signal.SIGTERM)
    child.expect(re.escape(f"down: {last_words}\r\n"), timeout=STOP_WAIT)
    child.expect(pexpect.EOF, timeout=STOP_WAIT)
    child.close()
    assert child.exitstatus == exit_code, (child.exitstatus, child.signalstatus, child.before)

    assert leftovers(lab, laptop_home, PORT) == NOTHING_LEFT
    assert laptop_get(lab, PORT) == 0
    down = laptop_cli(lab, laptop_home, "status")
    assert down.returncode == 1 and down.stdout.startswith("not connected"), down.stdout


DETACHED_DRIVER = Path(__file__).resolve().parent / "detached_driver.py"


@pytest.mark.parametrize("engine", ["openssh", "paramiko"])
def test_spawned_supervisor_is_waited_for_through_the_state_file(
    lab: Lab, member: Member, laptop_home: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """Windows' launch on Linux: ``python -m wa_onboard.core.tunnel.daemon`` spawned without a readiness
    pipe; ``wait_detached`` can only poll the state file, and must still see the tunnel come up."""
    authorize_key(laptop_home, member, monkeypatch)
    assert laptop_cli(lab, laptop_home, *connect_args(lab, member, "--detach", engine=engine)).returncode == 0
    laptop_cli(lab, laptop_home, "disconnect")  # host keys are trusted now; the supervisor never asks
    assert leftovers(lab, laptop_home, PORT + 1) == NOTHING_LEFT

    d = launch(
        lab,
        laptop_home,
        DETACHED_DRIVER,
        {"profile": profile_values(lab, member, local_port=PORT + 1, engine=engine)},
    )
    try:
        pid = d("launch")["pid"]
        argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        assert argv[1:3] == ["-m", "wa_onboard.core.tunnel.daemon"] and "--ready-fd" not in argv
        record = d("wait")["record"]
        assert record is not None, "wait_detached saw no record"
        assert (record["pid"], record["state"], record["local_port"], record["engine"]) == (
            pid,
            "connected",
            PORT + 1,
            engine,
        )
        status = d("status")
        assert status["connected"] is True and status["pid"] == pid and status["hub_version"]
        assert laptop_get(lab, PORT + 1) == 200
        assert d("stop") == {"stopped": pid, "exit_code": 0}
        assert d.proc.stdin
        d.proc.stdin.close()  # the driver ends
        assert d.proc.wait(10) == 0
        assert leftovers(lab, laptop_home, PORT + 1) == NOTHING_LEFT
        assert laptop_get(lab, PORT + 1) == 0
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)
        laptop_cli(lab, laptop_home, "disconnect")  # only after the checks: it must not hide leftovers


@pytest.mark.parametrize("engine", ["openssh", "paramiko"])
def test_a_killed_background_tunnel_takes_its_ssh_along(
    lab: Lab, member: Member, laptop_home: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """SIGKILL (a crash, the OOM killer) gives the supervisor no chance to clean up: its masters must
    still end (their pty hangs up), or they would hold the port with nothing of ours to stop them."""
    authorize_key(laptop_home, member, monkeypatch)
    up = laptop_cli(
        lab, laptop_home, *connect_args(lab, member, "--detach", "--local-port", str(PORT), engine=engine)
    )
    assert up.returncode == 0, up.stderr
    record = tunnelstate.read_record("default")
    assert record is not None and laptop_get(lab, PORT) == 200
    if engine == "openssh":
        names = sshfiles.aliases()
        assert our_ssh_processes(str(sshfiles.config_path()), (names.jump, names.ws))

    os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_WAIT
    left = leftovers(lab, laptop_home, PORT)
    while time.monotonic() < deadline and (left["ssh"] or left["listening"] or left["lock_held"]):
        time.sleep(0.2)
        left = leftovers(lab, laptop_home, PORT)
    assert {**left, "state_file": False} == NOTHING_LEFT  # the state file stays: nobody removed it
    down = laptop_cli(lab, laptop_home, "status")
    assert down.returncode == 1 and down.stdout.startswith("not connected"), down.stdout
    # and the next connect just works, on the same port
    again = laptop_cli(
        lab, laptop_home, *connect_args(lab, member, "--detach", "--local-port", str(PORT), engine=engine)
    )
    assert again.returncode == 0, again.stderr
    assert laptop_get(lab, PORT) == 200
    assert laptop_cli(lab, laptop_home, "disconnect").returncode == 0
    assert leftovers(lab, laptop_home, PORT) == NOTHING_LEFT
