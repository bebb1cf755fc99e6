"""A tiny real campus for wa-onboard's tests: laptop -> jump host -> workstation, with real OpenSSH, PAM (password,
TOTP), lmod, a conda stand-in and a real JupyterHub.

Three network namespaces stand for the three machines::

    walab-laptop 192.0.2.1 --- 192.0.2.2 walab-jump 198.51.100.1 --- 198.51.100.2 walab-ws
                                (jump.wa-lab.test, sshd :22)          (ws.wa-lab.test, sshd :22,
                                                                        JupyterHub 127.0.0.1:8000/jupyter)

There is no default route anywhere and the jump host does not forward packets, so the laptop reaches the
workstation only through ssh's ProxyJump. The laptop's /etc/hosts names both hosts (so "cannot reach the
workstation directly" fails on routing, not on name lookup); DNS points nowhere and fails fast.

Both hosts share this machine's file system, like a campus file system: a member made with new_member() has
one home directory under /home seen by both hosts. Each sshd runs under its own PAM service name (OpenSSH uses
its program name as the PAM service, so /opt/wa-lab/bin/sshd-walab-jump -> /usr/sbin/sshd reads
/etc/pam.d/sshd-walab-jump): the jump host asks `Password:` and then `Verification code:` (keyboard-interactive)
for members with MFA; the workstation uses plain password authentication (`user@host's password:`).

Needs root and `tests/lab/provision.sh` (see Lab.preflight()). Everything the lab starts runs inside its
namespaces and is stopped by pid on down(); users, namespaces and files it made are removed. up() first clears
what a crashed earlier run left behind.

Usage::

    with Lab() as lab:
        m = lab.new_member(mfa=True)
        lab.laptop_run(["ssh", "-J", f"{m.name}@{lab.jump_host}", ...])

The lab is put together from one module per thing it brings up: lab_net (namespaces, links, running
commands on the hosts), lab_accounts (members), lab_sshd (sshd, PAM, host keys), lab_hub (JupyterHub), lab_conda
(the conda module and stand-in); lab_common holds the constants and process helpers they share.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lab_accounts import AccountsMixin, Member, _delete_account, _marked_accounts, totp
from lab_common import (
    ADMIN_GROUP,
    IP,
    LAB_ROOT,
    LINKS,
    LOCK_FILE,
    NAMESPACES,
    RUN_DIR,
    SYS_PYTHON,
    LabError,
    _kill_pids,
    _ns_pids,
    _Proc,
    _reap,
    _run,
)
from lab_conda import CondaMixin
from lab_hub import HubMixin
from lab_net import NetMixin
from lab_sshd import SshdMixin

__all__ = ["Lab", "LabError", "Member", "totp"]

REQUIRED_COMMANDS = [
    "ip",
    "unshare",
    "setpriv",
    "runuser",
    "getent",
    "useradd",
    "userdel",
    "chpasswd",
    "groupadd",
    "groupdel",
    "ssh",
    "ssh-keygen",
    "oathtool",
    "node",
    "curl",
]


@dataclass
class Lab(NetMixin, AccountsMixin, SshdMixin, HubMixin, CondaMixin):
    """The three-host lab. up() builds it, down() removes everything it made; also a context manager."""

    root: Path = LAB_ROOT
    run_dir: Path = RUN_DIR
    with_hub: bool = True

    jump_host: str = "jump.wa-lab.test"
    ws_host: str = "ws.wa-lab.test"
    laptop_ip: str = "192.0.2.1"
    jump_ip: str = "192.0.2.2"
    jump_inner_ip: str = "198.51.100.1"
    ws_ip: str = "198.51.100.2"
    hub_port: int = 8000
    base_url: str = "/jupyter"

    members: list[Member] = field(default_factory=list)
    _sshd: dict[str, _Proc] = field(default_factory=dict)
    _hub: _Proc | None = None
    lock_timeout: float = float(os.environ.get("WA_LAB_LOCK_TIMEOUT", "1800"))
    _lock: IO[str] | None = None
    _proxy_token: str = field(default_factory=lambda: secrets.token_hex(32))
    _made_group: bool = False
    _counter: int = 0
    _is_up: bool = False

    # ------------------------------------------------------------------ preflight, up, down

    @classmethod
    def preflight(cls, root: Path = LAB_ROOT) -> list[str]:
        """What this machine lacks for the lab (empty when it can run). Root is checked separately."""
        missing = []
        for tool in REQUIRED_COMMANDS:
            if (
                shutil.which(tool, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                is None
            ):
                missing.append(f"command {tool}")
        for p in (
            "/usr/sbin/sshd",
            "/usr/share/lmod/lmod/libexec/lmod",
            "/etc/profile.d/lmod.sh",
            SYS_PYTHON,
        ):
            if not Path(p).exists():
                missing.append(p)
        if not [
            p
            for pattern in ("/usr/lib/*/security", "/lib/*/security", "/usr/lib/security", "/lib/security")
            for p in Path("/").glob(pattern.lstrip("/") + "/pam_google_authenticator.so")
        ]:
            missing.append("pam_google_authenticator.so (libpam-google-authenticator)")
        for p in (
            "hub/bin/jupyterhub",
            "hub/bin/jupyterhub-singleuser",
            "node/node_modules/.bin/configurable-http-proxy",
            "conda/bin/conda",
            "hostkeys/jump/ssh_host_ed25519_key",
            "hostkeys/ws/ssh_host_ed25519_key",
        ):
            if not (root / p).exists():
                missing.append(str(root / p))
        if not list((root / "wheels").glob("ipykernel-*.whl")):
            missing.append(f"{root}/wheels/ipykernel-*.whl")
        try:
            if str(root / "modules") not in Path("/etc/lmod/modulespath").read_text().split():
                missing.append(f"line {root}/modules in /etc/lmod/modulespath")
        except OSError:
            missing.append("/etc/lmod/modulespath")
        return missing

    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        """Build the lab: clean leftovers, network, accounts' group, conda module, both sshd, the hub."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root")
        missing = self.preflight(self.root)
        if missing:
            raise LabError("run tests/lab/provision.sh first; missing: " + ", ".join(missing))
        self._acquire_lock()
        self._clean_stale()
        self._is_up = True
        try:
            self.run_dir.mkdir(mode=0o700, parents=True)
            self._network_up()
            if subprocess.run(["getent", "group", ADMIN_GROUP], capture_output=True).returncode != 0:
                _run(["groupadd", ADMIN_GROUP])
                self._made_group = True
            self._install_conda_standin()
            self.set_conda_module("anaconda")
            self.set_conda_fault(None)
            self._sshd_files()
            for host in ("jump", "ws"):
                self.start_sshd(host)
            if self.with_hub:
                self.start_hub()
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop everything the lab started and remove what it made. Safe to call twice; does nothing for a
        Lab that is not up (so it never touches another run's lab)."""
        if self._lock is None:
            return
        if self._hub is not None:
            self.stop_hub()
        for ns in NAMESPACES.values():
            _kill_pids(_ns_pids(ns))
        for proc in [*self._sshd.values()]:
            _reap(proc)
        self._sshd.clear()
        for m in list(self.members):
            self.remove_member(m)
        self._clean_stale()
        if self._made_group:
            subprocess.run(["groupdel", ADMIN_GROUP], capture_output=True)
            self._made_group = False
        if self._is_up:
            self.set_conda_module("anaconda")
            self.set_conda_fault(None)
        self._is_up = False
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def _acquire_lock(self) -> None:
        """Wait (up to lock_timeout s) until no other Lab runs on this machine, then hold the lock."""
        if self._lock is not None:
            return
        lock = open(LOCK_FILE, "a+")  # noqa: SIM115 - held until down()
        deadline = time.monotonic() + self.lock_timeout
        told = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock.close()
                    raise LabError(
                        f"another lab holds {LOCK_FILE} since more than {self.lock_timeout:.0f}s "
                        "(WA_LAB_LOCK_TIMEOUT)"
                    ) from None
                if not told:
                    print(f"wa-lab: waiting for another lab run to finish ({LOCK_FILE})", flush=True)
                    told = True
                time.sleep(0.5)
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _clean_stale(self) -> None:
        """Remove namespaces, veths, accounts, files and processes of this lab (or of a crashed earlier run)."""
        for ns in NAMESPACES.values():
            if Path(f"/run/netns/{ns}").exists():
                _kill_pids(_ns_pids(ns))
                subprocess.run([IP, "netns", "del", ns], capture_output=True)
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
        for _, a_dev, _, _, b_dev, _ in LINKS.values():
            for dev in (a_dev, b_dev):
                if Path(f"/sys/class/net/{dev}").exists():
                    subprocess.run([IP, "link", "del", dev], capture_output=True)
        with contextlib.suppress(OSError):
            Path("/etc/netns").rmdir()
        for name in _marked_accounts():
            _delete_account(name)
        for host in ("jump", "ws"):
            Path(f"/etc/pam.d/sshd-walab-{host}").unlink(missing_ok=True)
        envs = self.root / "conda" / "envs"
        if envs.is_dir():
            for p in envs.iterdir():
                shutil.rmtree(p, ignore_errors=True)
        if os.environ.get("WA_LAB_KEEP_RUN_DIR") and self.run_dir.exists() and self._is_up:
            kept = Path(f"{self.run_dir}.{int(time.time())}")
            self.run_dir.rename(kept)
        shutil.rmtree(self.run_dir, ignore_errors=True)
