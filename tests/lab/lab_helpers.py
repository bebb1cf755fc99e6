"""Helpers the lab tests share (one place): the ``wa-onboard`` command line on the laptop, keys for a
member, the engine drivers, what a tunnel leaves running, and an HTTP GET from the laptop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lab import Lab, Member

from wa_onboard.core.tunnel import sshfiles, state as tunnelstate
from wa_onboard.core.tunnel.engines.openssh import our_ssh_processes

HERE = Path(__file__).resolve().parent
OPENSSH_DRIVER = HERE / "openssh_driver.py"
PARAMIKO_DRIVER = HERE / "paramiko_driver.py"
STOP_WAIT = 30.0
"""Seconds the stopped command may take to exit before the test fails (a bound, not a speed claim)."""


def wa_argv(*args: str) -> list[str]:
    """``wa-onboard ARGS`` as this interpreter runs it (for lab.laptop_cmd, a pexpect child or a pane)."""
    return [sys.executable, "-m", "wa_onboard", *args]


def wa(
    lab: Lab,
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``wa-onboard ARGS`` on the laptop with HOME=home (env adds to it), output captured as text."""
    return lab.laptop_run(
        wa_argv(*args), env={"HOME": str(home), **(env or {})}, timeout=timeout, input=input
    )


def connect_args(lab: Lab, member: Member, *extra: str, engine: str | None = None) -> list[str]:
    """``connect --yes --no-browser`` for this member through the lab's jump host to its hub; ``extra``
    adds flags (``--detach``, ``--no-tui``, ``--local-port N``)."""
    return [
        "connect",
        "--yes",
        "--no-browser",
        *(["--engine", engine] if engine else []),
        "--user",
        member.name,
        "--jump",
        lab.jump_host,
        "--host",
        lab.ws_host,
        "--remote-port",
        str(lab.hub_port),
        "--base-url",
        lab.base_url,
        *extra,
    ]


def members_own_master(alias: str = "wa-ws") -> list[str]:
    """What a member's ``ssh wa-ws`` through the Include amounts to: a master of their own on our
    config (foreground, ended by SIGTERM, which removes its control socket)."""
    from wa_onboard.core.tunnel import sshfiles

    config = str(sshfiles.config_path())
    return ["ssh", "-F", config, "-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no", alias]


class Driver:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def __call__(self, do: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"do": do, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"driver died: {self.proc.stderr.read() if self.proc.stderr else ''}"
        reply: dict[str, Any] = json.loads(line)
        return reply

    def questions(self) -> list[dict[str, Any]]:
        return list(self("questions")["questions"])

    def stop(self) -> None:
        """Kill the driver if it still runs (a fixture's cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def launch(lab: Lab, home: Path, driver: Path, setup: dict[str, Any]) -> Driver:
    """Start a driver script on the laptop (HOME = home) and hand it its first line."""
    proc = lab.laptop_popen(
        [sys.executable, str(driver)],
        env={"HOME": str(home), "PYTHONPATH": str(driver.parent)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin
    proc.stdin.write(json.dumps(setup) + "\n")
    proc.stdin.flush()
    return Driver(proc)


def place_key(home: Path, member: Member) -> None:
    """Make the program's key in the laptop HOME and authorize it for the member (as root, as a fixture would)."""
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    key = ssh / "wa_onboard_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab", "-f", str(key)], check=True)
    auth_dir = member.home / ".ssh"
    auth_dir.mkdir(mode=0o700, exist_ok=True)
    auth = auth_dir / "authorized_keys"
    auth.write_text(Path(f"{key}.pub").read_text())
    for p in (auth_dir, auth):
        os.chown(p, member.uid, member.home.stat().st_gid)
    auth.chmod(0o600)


def known_hosts_file(home: Path) -> Path:
    return home / ".ssh" / "wa-onboard" / "known_hosts"


def host_questions(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [q for q in questions if q["type"] == "host-key"]


def secret_questions(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [q for q in questions if q["type"] == "secret"]


def authorize_key(home: Path, member: Member, monkeypatch: pytest.MonkeyPatch) -> None:
    """What setup will do: make the program's key in the laptop HOME (the product's own ensure_key) and put
    it in the member's authorized_keys on the shared home (as root: chown to the member, 0600)."""
    from wa_onboard.core.tunnel import sshfiles

    monkeypatch.setenv("HOME", str(home))
    sshfiles.ensure_key()
    auth_dir = member.home / ".ssh"
    auth_dir.mkdir(mode=0o700, exist_ok=True)
    auth = auth_dir / "authorized_keys"
    auth.write_text(sshfiles.public_key_text() + "\n")
    gid = member.home.stat().st_gid
    for p in (auth_dir, auth):
        os.chown(p, member.uid, gid)
    auth.chmod(0o600)


def laptop_get(lab: Lab, port: int, path: str = "/jupyter/hub/health") -> int:
    code = (
        "import sys,urllib.request,urllib.error\n"
        "o=urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
        f"try: print(o.open('http://127.0.0.1:{port}{path}', timeout=5).status)\n"
        "except urllib.error.HTTPError as e: print(e.code)\n"
        "except Exception as e: print(0)\n"
    )
    return int(lab.laptop_run([sys.executable, "-c", code]).stdout.strip() or 0)


def _home_of(pid: str) -> str:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return ""
    return next((v[5:].decode() for v in environ if v.startswith(b"HOME=")), "")


def our_processes(lab: Lab, home: Path) -> list[str]:
    """ssh or supervisor processes of this laptop HOME still running anywhere (a supervisor forked
    by ``connect --detach`` keeps the CLI's command line, so its HOME tells it apart)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [
        ln
        for ln in out.splitlines()
        if str(home) in ln
        or "wa_onboard.core.tunnel.daemon" in ln
        or ("wa_onboard" in ln and _home_of(ln.split()[0]) == str(home))
    ]


def leftovers(lab: Lab, home: Path, port: int) -> dict[str, Any]:
    """Everything a stopped tunnel must not leave behind (the test's HOME is the laptop's)."""
    names = sshfiles.aliases()
    return {
        "ssh": our_ssh_processes(str(sshfiles.config_path()), (names.jump, names.ws)),
        "processes": our_processes(lab, home),
        "listening": lab.laptop_run(["ss", "-Hltn", f"sport = :{port}"]).stdout.strip(),
        "state_file": tunnelstate.state_file("default").exists(),
        "lock_held": tunnelstate.lock_is_held("default"),
    }


NOTHING_LEFT = {"ssh": [], "processes": [], "listening": "", "state_file": False, "lock_held": False}
