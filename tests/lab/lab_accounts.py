"""The lab's accounts: a member is one account on both hosts (a shared /home), with a password and, for MFA,
a TOTP secret; every account carries MEMBER_MARK so a crashed run's leftovers are found and removed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import string
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab_common import ADMIN_GROUP, MEMBER_MARK, LabError, _all_pids, _kill_pids, _passwd, _run, _uid


def totp(secret_b32: str, at: float | None = None, step: int = 30, digits: int = 6) -> str:
    """RFC 6238 TOTP code (HMAC-SHA1), as google-authenticator and oathtool --totp compute it."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    counter = int((time.time() if at is None else at) // step)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


@dataclass
class Member:
    """A lab member's account (the same account on the jump host and the workstation)."""

    name: str
    password: str
    home: Path
    shell: str
    uid: int
    mfa: bool = False
    totp_secret: str | None = None
    admin: bool = False

    def totp_code(self, at: float | None = None) -> str:
        """The current `Verification code:` for an MFA member."""
        if not self.totp_secret:
            raise LabError(f"{self.name} has no MFA (made with mfa=False)")
        return totp(self.totp_secret, at)


def _marked_accounts() -> list[str]:
    names = []
    with open("/etc/passwd") as f:
        for line in f:
            parts = line.rstrip("\n").split(":")
            if len(parts) >= 5 and parts[4] == MEMBER_MARK:
                names.append(parts[0])
    return names


def _delete_account(name: str) -> None:
    try:
        uid = int(_passwd(name)[2])
    except LabError:
        return
    _kill_pids([p for p in _all_pids() if _uid(p) == uid])
    r = subprocess.run(["userdel", "-r", name], capture_output=True, text=True)
    if r.returncode not in (0, 12):  # 12: home could not be removed (already gone)
        raise LabError(f"userdel -r {name}: {r.stderr.strip()}")


class AccountsMixin:
    """Lab methods that make and remove members (the Lab keeps them in self.members)."""

    def new_member(self, mfa: bool = False, shell: str = "/bin/bash", admin: bool = False) -> Member:
        """A fresh, never-onboarded account with a random password (and a TOTP secret when mfa)."""
        if not Path(shell).is_file():
            raise LabError(f"shell {shell} is not installed")
        while True:
            self._counter += 1
            name = f"wam{self._counter}"
            if subprocess.run(["getent", "passwd", name], capture_output=True).returncode != 0:
                break
        alphabet = string.ascii_letters + string.digits
        password = "".join(secrets.choice(alphabet) for _ in range(16))
        _run(["useradd", "-m", "-s", shell, "-c", MEMBER_MARK, *(["-G", ADMIN_GROUP] if admin else []), name])
        _run(["chpasswd"], input=f"{name}:{password}\n")
        pw = _passwd(name)
        member = Member(
            name=name, password=password, home=Path(pw[5]), shell=shell, uid=int(pw[2]), mfa=mfa, admin=admin
        )
        os.chmod(member.home, 0o755)
        if mfa:
            member.totp_secret = base64.b32encode(secrets.token_bytes(10)).decode()
            ga = member.home / ".google_authenticator"
            # No DISALLOW_REUSE, no RATE_LIMIT: tests may log in several times within one 30 s window.
            ga.write_text(f'{member.totp_secret}\n" WINDOW_SIZE 17\n" TOTP_AUTH\n')
            os.chown(ga, member.uid, int(pw[3]))
            os.chmod(ga, 0o400)
        self.members.append(member)
        return member

    def remove_member(self, member: Member) -> None:
        """Stop the member's processes and delete the account with its home (userdel -r)."""
        _delete_account(member.name)
        if member in self.members:
            self.members.remove(member)
