"""Host keys and our ssh_config against the real lab: a server whose host key TYPE changes is refused by both
engines, and a laptop HOME with a space in it still reaches the workstation through the jump host.

Each engine runs in its driver (tests/lab/paramiko_driver.py, tests/lab/openssh_driver.py) inside the laptop
namespace, with a prompter that would say yes to any host-key question: only the engine's own check stands
between the member and an impostor.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab import Lab, Member
from lab_helpers import (
    OPENSSH_DRIVER,
    PARAMIKO_DRIVER,
    Driver,
    connect_args,
    host_questions,
    known_hosts_file,
    laptop_get,
    launch,
    place_key,
    wa,
)

DRIVERS = {"paramiko": PARAMIKO_DRIVER, "openssh": OPENSSH_DRIVER}


@contextlib.contextmanager
def serving_ecdsa(lab: Lab, host: str) -> Iterator[str]:
    """Restart the sshd of ``host`` with a fresh ECDSA host key as its only key (made now, in the lab's run
    dir); yields its fingerprint. Afterwards the lab's usual ed25519 key is served again."""
    keys = lab.run_dir / "hostkeys" / host
    key = keys / "ssh_host_ecdsa_key"
    for f in (key, Path(f"{key}.pub")):
        f.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-C", f"root@{host}.wa-lab.test", "-f", str(key)],
        check=True,
    )
    conf = lab.run_dir / f"sshd-{host}.conf"
    original = conf.read_text()
    assert "ssh_host_ed25519_key" in original
    conf.write_text(original.replace("ssh_host_ed25519_key", "ssh_host_ecdsa_key"))
    try:
        lab.stop_sshd(host)
        lab.start_sshd(host)
        out = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{key}.pub"],
            check=True,
            capture_output=True,
            text=True,
        )
        yield out.stdout.split()[1]
    finally:
        conf.write_text(original)
        lab.stop_sshd(host)
        lab.start_sshd(host)
        for f in (key, Path(f"{key}.pub")):
            f.unlink(missing_ok=True)


def trust_lab_keys(lab: Lab, home: Path) -> Path:
    """Our known_hosts with the lab's real ed25519 keys of both hosts, as after a first setup."""
    kh = known_hosts_file(home)
    kh.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    lines = [
        f"{name} {' '.join(lab.host_public_key(h).split()[:2])}"
        for h, name in (("jump", lab.jump_host), ("ws", lab.ws_host))
    ]
    kh.write_text("\n".join(lines) + "\n")
    kh.chmod(0o600)
    return kh


@pytest.mark.parametrize("engine", ["paramiko", "openssh"])
def test_a_host_key_of_another_type_is_refused_like_a_changed_key(
    lab: Lab, member: Member, laptop_home: Path, engine: str
) -> None:
    place_key(laptop_home, member)
    kh = trust_lab_keys(lab, laptop_home)
    before = kh.read_text()
    profile = {
        "user": member.name,
        "jump": lab.jump_host,
        "host": lab.ws_host,
        "remote_port": lab.hub_port,
        "base_url": lab.base_url,
        "engine": engine,
    }
    started: list[Driver] = []
    try:
        with serving_ecdsa(lab, "ws") as new_fingerprint:
            d = launch(lab, laptop_home, DRIVERS[engine], {"profile": profile, "answers": [], "trust": True})
            started.append(d)
            reply = d("login", interactive=False)
            asked = host_questions(d.questions())
            d("close")
    finally:
        for d in started:
            if d.proc.poll() is None:
                d.proc.kill()
            d.proc.wait(10)
    assert "error" in reply, reply
    assert reply["error"]["failure"] == "host-key-changed", reply
    assert new_fingerprint in reply["error"]["message"]  # the member can compare it with the admins' one
    assert f"ssh-keygen -R {lab.ws_host} -f {kh}" in reply["error"]["hint"]
    assert asked == []  # never offered as a "first connection"
    assert kh.read_text() == before  # nothing trusted, nothing removed


def test_home_with_a_space_reaches_the_workstation_through_the_jump(
    lab: Lab, member: Member, laptop_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenSSH pastes the -F path unquoted into ProxyJump's own ProxyCommand: our explicit, quoted one
    must carry a HOME with a space through the real jump host (key only, no prompt)."""
    from wa_onboard.core.profile import Profile
    from wa_onboard.core.tunnel import sshfiles

    home = laptop_home / "Bucky Badger"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    place_key(home, member)
    trust_lab_keys(lab, home)
    profile = Profile.make({"user": member.name, "jump": lab.jump_host, "host": lab.ws_host})
    cfg = sshfiles.write_config(profile)
    assert " " in str(cfg)
    env = {"HOME": str(home)}
    argv = ["ssh", "-F", str(cfg), "-o", "BatchMode=yes", "wa-ws", "hostname"]
    try:
        r = lab.laptop_run(argv, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "ws"
    finally:
        for alias in ("wa-ws", "wa-jump"):  # the control masters ControlPersist would keep
            lab.laptop_run(["ssh", "-F", str(cfg), "-O", "exit", alias], env=env, timeout=30)
    shown = lab.laptop_run(["ssh", "-G", "-F", str(cfg), "wa-ws"], env=env)
    assert shown.returncode == 0, shown.stderr
    options = dict(line.partition(" ")[::2] for line in shown.stdout.splitlines())
    assert shlex.quote(str(cfg)) in options["proxycommand"]
    assert f"Accepted publickey for {member.name}" in lab.sshd_log("ws")
    assert os.stat(home).st_mode & 0o777 == 0o700


def test_the_tunnel_comes_up_from_a_home_with_a_space(lab: Lab, member: Member, laptop_home: Path) -> None:
    """The real command line (OpenSSH engine, background supervisor) through the same quoted hop."""
    home = laptop_home / "Bucky Badger"
    home.mkdir(mode=0o700)
    place_key(home, member)
    trust_lab_keys(lab, home)

    try:
        up = wa(lab, home, *connect_args(lab, member, "--detach", "--local-port", "18040"))
        assert up.returncode == 0, up.stderr
        state = json.loads(wa(lab, home, "status", "--json").stdout)
        assert state["connected"], state
        assert laptop_get(lab, state["local_port"]) == 200
    finally:
        wa(lab, home, "disconnect")
    assert f"Accepted publickey for {member.name}" in lab.sshd_log("ws")
