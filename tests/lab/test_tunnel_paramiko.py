"""The paramiko engine against the real lab: laptop -> jump -> workstation, real sshd and PAM, real hub.

The engine runs in-process, so each test starts tests/lab/paramiko_driver.py inside the laptop namespace and
talks to it one JSON line at a time (see the driver's docstring).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from lab import Lab, Member
from lab_helpers import (
    PARAMIKO_DRIVER as DRIVER,
    Driver,
    connect_args,
    host_questions,
    known_hosts_file,
    launch,
    place_key,
    secret_questions,
    wa,
)


@pytest.fixture
def drive(lab: Lab, laptop_home: Path) -> Iterator[Any]:
    started: list[Driver] = []

    def start(member: Member, answers: Sequence[Any] = (), trust: bool = True, **profile: Any) -> Driver:
        engine = profile.pop("engine_args", {})
        values = {
            "user": member.name,
            "jump": lab.jump_host,
            "host": lab.ws_host,
            "remote_port": lab.hub_port,
            "base_url": lab.base_url,
            "engine": "paramiko",
            **profile,
        }
        setup = {"profile": values, "answers": list(answers), "trust": trust, "engine": engine}
        started.append(launch(lab, laptop_home, DRIVER, setup))
        return started[-1]

    yield start
    for d in started:
        d.stop()


def test_key_login_scripts_forward_and_clean_close(
    lab: Lab, member: Member, laptop_home: Path, drive: Any
) -> None:
    place_key(laptop_home, member)
    d = drive(member, local_port=18000)
    assert d("login", interactive=False) == {"ok": True}
    # First contact: both fingerprints asked exactly as ssh-keygen prints them; no password asked.
    asked = d.questions()
    assert host_questions(asked) == [
        {
            "type": "host-key",
            "host": lab.jump_host,
            "key_type": "ssh-ed25519",
            "fingerprint": lab.host_key_fingerprint("jump"),
        },
        {
            "type": "host-key",
            "host": lab.ws_host,
            "key_type": "ssh-ed25519",
            "fingerprint": lab.host_key_fingerprint("ws"),
        },
    ]
    assert secret_questions(asked) == []
    assert "Accepted publickey for " + member.name in lab.sshd_log("ws")

    # The trusted keys are plain OpenSSH lines that ssh-keygen itself finds; 0600 in a 0700 directory.
    kh = known_hosts_file(laptop_home)
    assert oct(kh.stat().st_mode & 0o777) == "0o600"
    assert oct(kh.parent.stat().st_mode & 0o777) == "0o700"
    assert [ln.split()[:2] for ln in kh.read_text().splitlines()] == [
        [lab.jump_host, "ssh-ed25519"],
        [lab.ws_host, "ssh-ed25519"],
    ]
    for host in ("jump", "ws"):
        found = subprocess.run(
            ["ssh-keygen", "-F", getattr(lab, f"{host}_host"), "-f", str(kh)], capture_output=True, text=True
        )
        assert lab.host_public_key(host).split()[1] in found.stdout

    ws = d("run", host="ws", script="whoami; hostname; type module >/dev/null && echo has-module")
    assert ws["exit_code"] == 0
    assert ws["stdout"].split() == [member.name, "ws", "has-module"]
    jump = d("run", host="jump", script="hostname; exit 3")
    assert (jump["exit_code"], jump["stdout"].strip()) == (3, "jump")

    assert d("forward", local_port=18000, remote_port=lab.hub_port) == {"port": 18000}
    # ss -Hltn: State Recv-Q Send-Q Local:Port Peer:Port; only the loopback listener, no wildcard one.
    listening = [
        ln.split()[3] for ln in lab.laptop_run(["ss", "-Hltn", "sport = :18000"]).stdout.splitlines()
    ]
    assert listening == ["127.0.0.1:18000"]
    assert d("get", path=f"{lab.base_url}/hub/health")["status"] == 200
    api = d("get", path=f"{lab.base_url}/hub/api")
    assert api["status"] == 200 and '"version"' in api["body"]
    assert d("alive") == {"alive": True}

    closed = d("close")
    assert closed["threads"] == []
    assert closed["port_open"] is False
    assert d("alive") == {"alive": False}
    assert lab.laptop_run(["ss", "-Hltn", "sport = :18000"]).stdout.strip() == ""


def test_password_login_asks_each_hop(lab: Lab, member: Member, drive: Any) -> None:
    d = drive(member, answers=[member.password, member.password])
    assert d("login") == {"ok": True}
    asked = secret_questions(d.questions())
    # The jump host offers keyboard-interactive (PAM writes "Password:"); the workstation plain password.
    assert asked == [
        {
            "type": "secret",
            "prompt": "Password:",
            "hop": f"{member.name}@{lab.jump_host}",
            "kind": "password",
            "attempt": 1,
        },
        {
            "type": "secret",
            "prompt": f"{member.name}@{lab.ws_host}'s password:",
            "hop": f"{member.name}@{lab.ws_host}",
            "kind": "password",
            "attempt": 1,
        },
    ]
    assert d("run", host="ws", script="whoami")["stdout"].strip() == member.name
    assert d("close")["threads"] == []


def test_totp_member_answers_the_code_through_the_prompter(lab: Lab, mfa_member: Member, drive: Any) -> None:
    assert mfa_member.totp_secret
    d = drive(
        mfa_member, answers=[mfa_member.password, {"totp": mfa_member.totp_secret}, mfa_member.password]
    )
    assert d("login") == {"ok": True}
    jump_hop = f"{mfa_member.name}@{lab.jump_host}"
    assert [(q["prompt"], q["hop"], q["kind"]) for q in secret_questions(d.questions())] == [
        ("Password:", jump_hop, "password"),
        ("Verification code:", jump_hop, "otp"),
        (f"{mfa_member.name}@{lab.ws_host}'s password:", f"{mfa_member.name}@{lab.ws_host}", "password"),
    ]
    assert d("close")["threads"] == []


def test_wrong_password_is_asked_three_times_then_fails(lab: Lab, member: Member, drive: Any) -> None:
    d = drive(member, answers=["wrong-1", "wrong-2", "wrong-3", member.password])
    reply = d("login")
    assert reply["error"]["failure"] == "jump-auth"
    assert "3 times" in reply["error"]["message"]
    asked = secret_questions(d.questions())
    assert [q["attempt"] for q in asked] == [1, 2, 3]  # never a 4th try
    assert d("close")["threads"] == []


def test_second_try_after_a_typo_succeeds(lab: Lab, member: Member, drive: Any) -> None:
    d = drive(member, answers=["typo", member.password, member.password])
    assert d("login") == {"ok": True}
    assert [q["attempt"] for q in secret_questions(d.questions())] == [1, 2, 1]


def test_no_prompts_when_not_interactive(lab: Lab, member: Member, drive: Any) -> None:
    d = drive(member, answers=[member.password])
    reply = d("login", interactive=False)
    assert reply["error"]["failure"] == "password-needed"
    assert secret_questions(d.questions()) == []


def test_changed_host_key_is_refused_with_the_exact_removal_command(
    lab: Lab, member: Member, laptop_home: Path, drive: Any
) -> None:
    place_key(laptop_home, member)
    kh = known_hosts_file(laptop_home)
    kh.parent.mkdir(parents=True, mode=0o700)
    old = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(laptop_home / "old")], check=True
    )
    assert old.returncode == 0
    stale = f"{lab.ws_host} {' '.join((laptop_home / 'old.pub').read_text().split()[:2])}\n"
    kh.write_text(stale)
    d = drive(member)
    reply = d("login", interactive=False)
    assert reply["error"]["failure"] == "host-key-changed"
    command = f"ssh-keygen -R {lab.ws_host} -f {kh}"
    assert command in reply["error"]["hint"]
    assert lab.host_key_fingerprint("ws") in reply["error"]["message"]
    assert stale in kh.read_text()  # the old key stays until the member removes it
    assert all(q["host"] != lab.ws_host for q in host_questions(d.questions()))
    d("close")

    # The hint's command works: afterwards the new key is asked about and trusted.
    subprocess.run(command.split(), check=True, capture_output=True)
    d2 = drive(member)
    assert d2("login", interactive=False) == {"ok": True}
    assert [q["host"] for q in host_questions(d2.questions())] == [lab.ws_host]


def test_unknown_host_key_declined_is_not_written(
    lab: Lab, member: Member, laptop_home: Path, drive: Any
) -> None:
    d = drive(member, answers=[member.password], trust=False)
    reply = d("login")
    assert reply["error"]["failure"] == "host-key-rejected"
    assert lab.host_key_fingerprint("jump") in reply["error"]["message"]
    assert not known_hosts_file(laptop_home).exists() or known_hosts_file(laptop_home).read_text() == ""
    assert secret_questions(d.questions()) == []  # no password goes to an untrusted host


def test_unknown_jump_host(lab: Lab, member: Member, drive: Any) -> None:
    d = drive(member, jump="nosuch.wa-lab.test")
    assert d("login")["error"]["failure"] == "jump-unknown"


def test_workstation_sshd_down(lab: Lab, member: Member, laptop_home: Path, drive: Any) -> None:
    place_key(laptop_home, member)
    lab.stop_sshd("ws")
    try:
        d = drive(member)
        reply = d("login", interactive=False)
    finally:
        lab.start_sshd("ws")
    assert reply["error"]["failure"] == "ws-unreachable"
    assert lab.ws_host in reply["error"]["message"]


def test_forward_refused_and_dead_link_noticed(
    lab: Lab, member: Member, laptop_home: Path, drive: Any
) -> None:
    place_key(laptop_home, member)
    d = drive(member, engine_args={"keepalive_interval": 0.5, "keepalive_count": 2})
    assert d("login", interactive=False) == {"ok": True}
    assert d("forward", local_port=0, remote_port=8999)["port"] > 0
    assert "exception" in d("get", path="/")  # nothing listens on the workstation's 8999
    failure = d("forward_failure")
    assert failure["failure"] == "forward-refused"

    assert d("alive") == {"alive": True}
    assert d("ping") == {"ping": True}
    lab.link_down("laptop-jump")
    try:
        assert d("ping") == {"ping": False}
        time.sleep(2.5)
        assert d("alive") == {"alive": False}
        closed = d("close")
    finally:
        lab.link_up("laptop-jump")
    assert closed["threads"] == []


def test_connect_status_disconnect_with_the_paramiko_engine(
    lab: Lab, member: Member, laptop_home: Path
) -> None:
    """The same supervisor and command line as the OpenSSH engine, forced to this engine."""
    place_key(laptop_home, member)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return wa(lab, laptop_home, *args)

    try:
        up = cli(*connect_args(lab, member, "--detach", "--local-port", "18001", engine="paramiko"))
        assert up.returncode == 0, up.stdout + up.stderr
        status = json.loads(cli("status", "--json").stdout)
        assert status["connected"] is True and status["local_port"] == 18001 and status["hub_version"]
        rows = lab.laptop_run(["ss", "-Hltnp", "sport = :18001"]).stdout.splitlines()
        assert [row.split()[3] for row in rows] == ["127.0.0.1:18001"]
        assert "ssh" not in rows[0].split()[-1]  # held by the Python supervisor itself, not an ssh process
        assert [ln.split()[:2] for ln in known_hosts_file(laptop_home).read_text().splitlines()] == [
            [lab.jump_host, "ssh-ed25519"],
            [lab.ws_host, "ssh-ed25519"],
        ]
    finally:
        down = cli("disconnect")
    assert down.returncode == 0, down.stdout + down.stderr
    assert lab.laptop_run(["ss", "-Hltn", "sport = :18001"]).stdout.strip() == ""
    assert json.loads(cli("status", "--json").stdout)["connected"] is False
