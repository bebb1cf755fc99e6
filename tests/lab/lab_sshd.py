"""The lab's two sshd (jump: password then a TOTP code; ws: password), their PAM services and host keys."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lab_accounts import Member
from lab_common import NAMESPACES, _comm, _kill_pids, _ns_pids, _Proc, _reap, _run, _uid, _wait_listen

_PAM_COMMON_TAIL = """\
account    required     pam_nologin.so
@include common-account
session    optional     pam_loginuid.so
session    optional     pam_keyinit.so force revoke
@include common-session
session    optional     pam_limits.so
session    optional     pam_env.so
session    optional     pam_env.so user_readenv=1 envfile=/etc/default/locale
@include common-password
"""
PAM_JUMP = (
    "# wa-lab jump host (written by tests/lab/lab.py): password, then a TOTP code for members who have\n"
    "# ~/.google_authenticator (nullok lets everyone else in with the password alone).\n"
    "@include common-auth\n"
    "auth       required     pam_google_authenticator.so nullok\n" + _PAM_COMMON_TAIL
)
PAM_WS = (
    "# wa-lab workstation (written by tests/lab/lab.py): password only.\n"
    "@include common-auth\n" + _PAM_COMMON_TAIL
)

SSHD_CONFIG = """\
# wa-lab {host} (written by tests/lab/lab.py)
Port 22
HostKey {run}/hostkeys/{host}/ssh_host_ed25519_key
PidFile {run}/sshd-{host}.pid
UsePAM yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication {kbd}
PermitRootLogin no
AuthorizedKeysFile .ssh/authorized_keys
AllowTcpForwarding yes
PermitTTY yes
X11Forwarding no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel VERBOSE
"""


class SshdMixin:
    """Lab methods for the two sshd and the host keys they serve."""

    def _sshd_files(self) -> None:
        (self.root / "bin").mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        for host, pam, kbd in (("jump", PAM_JUMP, "yes"), ("ws", PAM_WS, "no")):
            link = self.root / "bin" / f"sshd-walab-{host}"
            if not link.is_symlink() or os.readlink(link) != "/usr/sbin/sshd":
                link.unlink(missing_ok=True)
                link.symlink_to("/usr/sbin/sshd")
            Path(f"/etc/pam.d/sshd-walab-{host}").write_text(pam)
            keys = self.run_dir / "hostkeys" / host
            keys.mkdir(parents=True, exist_ok=True)
            for f in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
                shutil.copy2(self.root / "hostkeys" / host / f, keys / f)
            os.chmod(keys / "ssh_host_ed25519_key", 0o600)
            (self.run_dir / f"sshd-{host}.conf").write_text(
                SSHD_CONFIG.format(host=host, run=self.run_dir, kbd=kbd)
            )

    def start_sshd(self, host: str) -> None:
        """Start the sshd of "jump" or "ws" (no-op when it runs) and wait until it listens on port 22."""
        self._check_host(host)
        if host in self._sshd and self._sshd[host].popen.poll() is None:
            return
        log = open(self.run_dir / f"sshd-{host}.log", "ab")  # noqa: SIM115 - closed in _reap
        argv = [
            str(self.root / "bin" / f"sshd-walab-{host}"),
            "-D",
            "-e",
            "-f",
            str(self.run_dir / f"sshd-{host}.conf"),
        ]
        popen = subprocess.Popen(
            self.host_cmd(host, argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        )
        self._sshd[host] = _Proc(popen, log)
        _wait_listen(popen, 22, 10, f"sshd on {host}", self.run_dir / f"sshd-{host}.log")

    def stop_sshd(self, host: str, kill_sessions: bool = False) -> None:
        """Stop the listening sshd of "jump" or "ws"; open sessions live on unless kill_sessions."""
        self._check_host(host)
        proc = self._sshd.pop(host, None)
        if proc is not None:
            _reap(proc)
        if kill_sessions:
            comm = f"sshd-walab-{host}"[:15]
            _kill_pids([p for p in _ns_pids(NAMESPACES[host]) if _comm(p) == comm])

    def end_sessions(self, host: str, member: Member) -> None:
        """End the member's ssh sessions on "jump" or "ws", as sshd does when ClientAliveInterval gives up
        on a client that vanished (the lab's sshd sets none, so a cut link alone leaves them open)."""
        self._check_host(host)
        ours = [
            p for p in _ns_pids(NAMESPACES[host]) if _comm(p).startswith("sshd") and _uid(p) == member.uid
        ]
        _kill_pids(ours)

    def sshd_log(self, host: str) -> str:
        """What the sshd of "jump" or "ws" logged so far."""
        self._check_host(host)
        return (self.run_dir / f"sshd-{host}.log").read_text(errors="replace")

    def host_public_key(self, host: str) -> str:
        """The host's public key line ("ssh-ed25519 AAAA... comment") as it serves it now."""
        self._check_host(host)
        return (self.run_dir / "hostkeys" / host / "ssh_host_ed25519_key.pub").read_text().strip()

    def host_key_fingerprint(self, host: str) -> str:
        """The SHA256 fingerprint ("SHA256:...") of the host key "jump" or "ws" serves now."""
        self._check_host(host)
        out = _run(
            [
                "ssh-keygen",
                "-l",
                "-E",
                "sha256",
                "-f",
                str(self.run_dir / "hostkeys" / host / "ssh_host_ed25519_key.pub"),
            ]
        )
        return out.split()[1]

    def regenerate_host_key(self, host: str) -> str:
        """Give "jump" or "ws" a new host key for the rest of this run (sshd restarts); returns its fingerprint."""
        self._check_host(host)
        key = self.run_dir / "hostkeys" / host / "ssh_host_ed25519_key"
        key.unlink(missing_ok=True)
        Path(f"{key}.pub").unlink(missing_ok=True)
        _run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host}.wa-lab.test", "-f", str(key)]
        )
        was_running = host in self._sshd
        self.stop_sshd(host)
        if was_running:
            self.start_sshd(host)
        return self.host_key_fingerprint(host)

    def restore_host_key(self, host: str) -> str:
        """Undo regenerate_host_key(): serve the lab's usual key of "jump" or "ws" again; returns its fingerprint."""
        self._check_host(host)
        keys = self.run_dir / "hostkeys" / host
        for f in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
            shutil.copy2(self.root / "hostkeys" / host / f, keys / f)
        os.chmod(keys / "ssh_host_ed25519_key", 0o600)
        was_running = host in self._sshd
        self.stop_sshd(host)
        if was_running:
            self.start_sshd(host)
        return self.host_key_fingerprint(host)

    @staticmethod
    def _check_host(host: str) -> None:
        if host not in ("jump", "ws"):
            raise ValueError(f'host must be "jump" or "ws", not {host!r}')
