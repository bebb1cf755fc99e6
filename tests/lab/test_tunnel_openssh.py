"""The OpenSSH engine, the supervisor and connect/status/disconnect against the real lab.

The product runs inside the laptop namespace with HOME = a fresh laptop_home: engine-level cases (password,
MFA, wrong password) through tests/lab/openssh_driver.py; the rest through the real command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab import Lab, Member
from lab_helpers import (
    OPENSSH_DRIVER as DRIVER,
    Driver,
    authorize_key,
    connect_args,
    laptop_get,
    launch,
    members_own_master,
    our_processes,
    secret_questions,
    wa,
)

PORT = 18000


def profile_values(lab: Lab, member: Member, **extra: Any) -> dict[str, Any]:
    return {
        "user": member.name,
        "jump": lab.jump_host,
        "host": lab.ws_host,
        "remote_port": lab.hub_port,
        "base_url": lab.base_url,
        "local_port": PORT,
        "engine": "openssh",
        **extra,
    }


@pytest.fixture
def cli(lab: Lab, laptop_home: Path) -> Iterator[Any]:
    """Run ``wa-onboard ARGS`` on the laptop; at the end, stop whatever the test left running."""

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return wa(lab, laptop_home, *args, timeout=timeout)

    yield run
    run("disconnect", timeout=60)


@pytest.fixture
def drive(lab: Lab, laptop_home: Path) -> Iterator[Any]:
    started: list[Driver] = []

    def start(member: Member, answers: list[Any], trust: bool = True) -> Driver:
        setup = {"profile": profile_values(lab, member), "answers": answers, "trust": trust}
        started.append(launch(lab, laptop_home, DRIVER, setup))
        return started[-1]

    yield start
    for d in started:
        d.stop()


def secrets_asked(d: Driver) -> list[dict[str, Any]]:
    return secret_questions(d.questions())


def connect(cli: Any, lab: Lab, member: Member, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(*connect_args(lab, member, "--detach", *extra))


def status(cli: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cli("status", "--json").stdout)
    return result


# ---------------------------------------------------------------------------------------------- logins


def test_password_login_asks_once_then_rides_the_masters(lab: Lab, member: Member, drive: Any) -> None:
    d = drive(member, [member.password])
    assert d("login", interactive=True) == {"ok": True}
    asked = secrets_asked(d)
    # one password for both hops: the jump host's keyboard-interactive prompt, as ssh printed it
    assert [(q["hop"], q["kind"], q["attempt"]) for q in asked] == [
        (f"{member.name}@{lab.jump_host}", "password", 1)
    ]
    assert asked[0]["prompt"] == "Password:"
    hosts = [q["host"] for q in d.questions() if q["type"] == "host-key"]
    assert hosts == [lab.jump_host, lab.ws_host]
    r = d("run", script="hostname; id -un")
    assert r["exit_code"] == 0 and r["stdout"].split() == ["ws", member.name]
    assert d("close") == {"left": []}


def test_mfa_code_goes_through_the_prompter(lab: Lab, mfa_member: Member, drive: Any) -> None:
    d = drive(mfa_member, [mfa_member.password, {"totp": mfa_member.totp_secret}])
    assert d("login", interactive=True) == {"ok": True}
    asked = secrets_asked(d)
    assert [(q["prompt"], q["kind"]) for q in asked] == [
        ("Password:", "password"),
        ("Verification code:", "otp"),
    ]
    assert {q["hop"] for q in asked} == {f"{mfa_member.name}@{lab.jump_host}"}
    assert d("close") == {"left": []}


def test_wrong_password_three_tries_then_clear_failure(lab: Lab, member: Member, drive: Any) -> None:
    d = drive(member, ["wrong-1", "wrong-2", "wrong-3", member.password])
    reply = d("login", interactive=True)
    assert reply["error"]["failure"] == "jump-auth", reply
    assert "3 times" in reply["error"]["message"]
    assert [q["attempt"] for q in secrets_asked(d)] == [1, 2, 3]  # the right 4th answer was never asked for
    assert member.password not in json.dumps(reply)
    assert d("close") == {"left": []}


def test_key_only_login_without_key_says_password_needed(lab: Lab, member: Member, drive: Any) -> None:
    d = drive(member, [member.password])
    reply = d("login", interactive=False)
    assert reply["error"]["failure"] in ("password-needed", "host-key-rejected"), reply
    assert secrets_asked(d) == []


# ---------------------------------------------------------------------------------------------- connect


def test_key_login_connect_status_disconnect(
    lab: Lab, member: Member, laptop_home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_config = laptop_home / ".ssh" / "config"
    authorize_key(laptop_home, member, monkeypatch)
    user_config.write_text("Host *\n    User nobody-else\n    Port 2\n")
    before = user_config.read_bytes()

    up = connect(cli, lab, member, "--local-port", str(PORT))
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"http://127.0.0.1:{PORT}/jupyter/" in up.stdout
    s = status(cli)
    assert s["connected"] is True and s["local_port"] == PORT and s["reconnects"] == 0
    assert s["hub_version"] and s["pid"] and s["profile"] == "default"
    assert laptop_get(lab, PORT) == 200
    # the forward listens on loopback only
    rows = lab.laptop_run(["ss", "-Hltn", f"sport = :{PORT}"]).stdout.splitlines()
    assert [row.split()[3] for row in rows] == [f"127.0.0.1:{PORT}"]
    # daily connect again: the live supervisor is reused
    again = connect(cli, lab, member)
    assert again.returncode == 0 and "already" in again.stdout
    # the member's own ~/.ssh/config was neither read nor changed (nobody asked for consent)
    assert user_config.read_bytes() == before
    assert not (laptop_home / ".ssh" / "config.wa-onboard.bak").exists()

    down = cli("disconnect")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert our_processes(lab, laptop_home) == []
    assert status(cli)["connected"] is False
    assert laptop_get(lab, PORT) == 0


def test_riding_the_members_own_master_disconnect_takes_back_only_our_forward(
    lab: Lab, member: Member, laptop_home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A master the member opened (``ssh wa-ws`` through the Include) is theirs: connect rides it,
    and disconnect must close our port on it without ending their session."""
    authorize_key(laptop_home, member, monkeypatch)
    assert connect(cli, lab, member, "--local-port", str(PORT)).returncode == 0  # writes our config
    assert cli("disconnect").returncode == 0
    from wa_onboard.core.tunnel import sshfiles

    ws = sshfiles.aliases().ws
    theirs = lab.laptop_popen(
        members_own_master(ws),
        env={"HOME": str(laptop_home)},
        stdin=subprocess.DEVNULL,
    )
    try:
        check = ["ssh", "-F", str(sshfiles.config_path()), "-O", "check", ws]
        deadline = time.monotonic() + 30
        while lab.laptop_run(check, env={"HOME": str(laptop_home)}).returncode != 0:
            assert theirs.poll() is None and time.monotonic() < deadline, "the member's master did not start"
            time.sleep(0.1)
        up = connect(cli, lab, member, "--local-port", str(PORT))
        assert up.returncode == 0, up.stderr
        assert laptop_get(lab, PORT) == 200
        assert cli("disconnect").returncode == 0
        assert laptop_get(lab, PORT) == 0
        assert lab.laptop_run(["ss", "-Hltn", f"sport = :{PORT}"]).stdout.strip() == ""
        assert theirs.poll() is None  # their session goes on
        assert lab.laptop_run(check, env={"HOME": str(laptop_home)}).returncode == 0
    finally:
        theirs.terminate()
        theirs.wait(10)


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("jump", "cannot reach the jump host {jump}: Connection refused"),
        ("ws", "cannot reach the workstation {ws}"),
    ],
)
def test_a_host_down_is_named(
    lab: Lab,
    member: Member,
    laptop_home: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    says: str,
) -> None:
    authorize_key(laptop_home, member, monkeypatch)
    assert connect(cli, lab, member).returncode == 0  # first contact: host keys trusted (--yes)
    cli("disconnect")
    lab.stop_sshd(host)
    try:
        r = connect(cli, lab, member)
    finally:
        lab.start_sshd(host)
    assert r.returncode == 1
    assert says.format(jump=lab.jump_host, ws=lab.ws_host) in r.stderr, r.stderr
    assert our_processes(lab, laptop_home) == []


def test_hub_down_is_forward_refused(
    lab: Lab, member: Member, laptop_home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    authorize_key(laptop_home, member, monkeypatch)
    lab.stop_hub()
    try:
        r = connect(cli, lab, member)
    finally:
        lab.start_hub()
    assert r.returncode == 1
    assert "nothing listens on the workstation's port" in r.stderr, r.stderr
    assert our_processes(lab, laptop_home) == []


def test_wrong_base_url_is_404(
    lab: Lab, member: Member, laptop_home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    authorize_key(laptop_home, member, monkeypatch)
    r = connect(cli, lab, member, "--base-url", "/nothere")
    assert r.returncode == 1 and "404" in r.stderr and "--base-url /jupyter" in r.stderr


def test_port_busy_by_a_foreign_process(
    lab: Lab, member: Member, laptop_home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    authorize_key(laptop_home, member, monkeypatch)
    squatter = lab.laptop_popen(
        [
            sys.executable,
            "-c",
            f"import socket,time;s=socket.socket();s.bind(('127.0.0.1',{PORT}));s.listen();time.sleep(300)",
        ]
    )
    try:
        time.sleep(0.5)
        explicit = connect(cli, lab, member, "--local-port", str(PORT))
        assert explicit.returncode == 1
        holder = Path(f"/proc/{squatter.pid}/comm").read_text().strip()  # python or python3
        assert f"port {PORT} on this laptop is in use by {holder} (pid {squatter.pid})" in explicit.stderr, (
            explicit.stderr
        )
        moved = connect(cli, lab, member)  # the profile says PORT, but no --local-port this time
        assert moved.returncode == 0, moved.stderr
        assert f"http://127.0.0.1:{PORT + 1}/jupyter/" in moved.stdout
        assert f"(port {PORT} is in use by {holder} (pid {squatter.pid}))" in moved.stdout, moved.stdout
        assert status(cli)["local_port"] == PORT + 1
        assert laptop_get(lab, PORT + 1) == 200
    finally:
        squatter.kill()
        squatter.wait()


def test_link_cut_for_10s_recovers(
    lab: Lab, member: Member, laptop_home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    authorize_key(laptop_home, member, monkeypatch)
    assert connect(cli, lab, member).returncode == 0
    lab.link_down("laptop-jump")
    time.sleep(10)
    during = cli("status")  # it is reconnecting: say so, with the attempt (never "start it with")
    lab.link_up("laptop-jump")
    assert during.returncode == 1 and "reconnect" in during.stdout, during.stdout
    assert "start it with" not in during.stdout and "disconnect" in during.stdout, during.stdout
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        s = status(cli)
        if s["connected"] and s["reconnects"] >= 1:
            break
        time.sleep(0.5)
    assert s["connected"] and s["reconnects"] >= 1, s
    assert laptop_get(lab, s["local_port"]) == 200


def test_changed_host_key_is_refused(
    lab: Lab, member: Member, laptop_home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    authorize_key(laptop_home, member, monkeypatch)
    assert connect(cli, lab, member).returncode == 0
    cli("disconnect")
    known = laptop_home / ".ssh" / "wa-onboard" / "known_hosts"
    before = known.read_text()
    lab.regenerate_host_key("ws")
    r = connect(cli, lab, member)
    assert r.returncode == 1
    assert f"the host key of {lab.ws_host} has CHANGED" in r.stderr
    assert f"ssh-keygen -R {lab.ws_host} -f {known}" in r.stderr
    assert known.read_text() == before  # never removed on the member's behalf
    assert our_processes(lab, laptop_home) == []


def test_a_program_on_the_ipv6_loopback_does_not_get_our_url(
    lab: Lab, member: Member, laptop_home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Browsers try [::1] first for localhost: a program there (a fake login page, a dev server) must
    neither receive the member's browser nor be called free. The URL names 127.0.0.1, and [::1]:8000
    busy counts as busy: an explicit --local-port 8000 is refused naming it, the daily connect moves on."""
    authorize_key(laptop_home, member, monkeypatch)
    squatter = lab.laptop_popen(
        [
            sys.executable,
            "-c",
            "import socket,time;s=socket.socket(socket.AF_INET6);"
            "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,1);"
            "s.bind(('::1',8000));s.listen();time.sleep(300)",
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while "[::1]:8000" not in lab.laptop_run(["ss", "-Hltn", "sport = :8000"]).stdout:
            assert squatter.poll() is None and time.monotonic() < deadline, "the squatter did not listen"
            time.sleep(0.1)
        explicit = connect(cli, lab, member, "--local-port", "8000")
        assert explicit.returncode == 1, explicit.stdout + explicit.stderr
        assert "port 8000 on this laptop is in use by" in explicit.stderr, explicit.stderr
        assert f"(pid {squatter.pid})" in explicit.stderr
        daily = cli("connect", "--detach", "--no-browser")  # the saved profile's port is busy: move on
        assert daily.returncode == 0, daily.stdout + daily.stderr
        assert "http://127.0.0.1:8001/jupyter/" in daily.stdout and "localhost" not in daily.stdout
        s = status(cli)
        assert s["connected"] and s["local_port"] == 8001 and s["url"] == "http://127.0.0.1:8001/jupyter/"
        assert laptop_get(lab, 8001) == 200
        assert squatter.poll() is None  # nobody's process was touched
    finally:
        squatter.kill()
        squatter.wait()


def _kill_masters_leaving_sockets(laptop_home: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """What a power loss or a crash leaves: the masters die by SIGKILL (no chance to remove their
    control sockets), and so does the supervisor (stopped first, so it cannot start new ones)."""
    import signal

    monkeypatch.setenv("HOME", str(laptop_home))
    from wa_onboard.core.tunnel import procs, sshfiles, state as tunnelstate
    from wa_onboard.core.tunnel.engines import openssh as engine_openssh

    record = tunnelstate.read_record("default")
    if record is not None and procs.process_alive(record.pid):
        os.kill(record.pid, signal.SIGSTOP)
    config = str(sshfiles.config_path())
    found = engine_openssh.our_ssh_processes(config, ("wa-jump", "wa-ws"))
    masters = [pid for pid in found if "-N" in (procs.process_cmdline(pid) or [])]
    assert len(masters) == 2, found
    for pid in masters:
        os.kill(pid, signal.SIGKILL)
    if record is not None and procs.process_alive(record.pid):
        os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(
        procs.process_alive(pid) for pid in engine_openssh.our_ssh_processes(config, ("wa-jump", "wa-ws"))
    ):
        assert time.monotonic() < deadline, "ssh processes outlived their masters"
        time.sleep(0.1)
    sockets = sorted(p for p in sshfiles.control_dir().iterdir() if p.name.startswith("cm-"))
    assert len(sockets) == 2 and all(p.is_socket() for p in sockets), sockets
    return sockets


def _master_answers(lab: Lab, laptop_home: Path, alias: str) -> bool:
    from wa_onboard.core.tunnel import sshfiles

    check = ["ssh", "-F", str(sshfiles.config_path()), "-O", "check", alias]
    return lab.laptop_run(check, env={"HOME": str(laptop_home)}).returncode == 0


def test_sockets_left_by_killed_masters_are_cleaned_for_connect_and_setup(
    lab: Lab, member: Member, laptop_home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a stale socket in place, ssh's ControlMaster=yes says "already exists, disabling
    multiplexing" yet logs in: nothing could ride that master (no ``-O`` command, no BatchMode shell)."""
    from test_setup import setup_argv

    authorize_key(laptop_home, member, monkeypatch)
    assert connect(cli, lab, member, "--local-port", str(PORT)).returncode == 0
    _kill_masters_leaving_sockets(laptop_home, monkeypatch)

    again = connect(cli, lab, member)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _master_answers(lab, laptop_home, "wa-jump") and _master_answers(lab, laptop_home, "wa-ws")
    assert status(cli)["connected"] and laptop_get(lab, PORT) == 200

    # a first setup after the crash: no key on the hosts yet, so the workstation shells that install
    # it (BatchMode: no password) get through only by riding the masters the password login made
    _kill_masters_leaving_sockets(laptop_home, monkeypatch)
    (member.home / ".ssh" / "authorized_keys").write_text("")
    done = lab.laptop_run(
        setup_argv(lab, member, "--yes", "--password-stdin", "--local-port", str(PORT)),
        env={"HOME": str(laptop_home), "BROWSER": "true"},
        input=member.password + "\n",
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Install the key on both hosts" in done.stdout
    key = (laptop_home / ".ssh" / "wa_onboard_ed25519.pub").read_text().strip()
    assert key in (member.home / ".ssh" / "authorized_keys").read_text()
