"""Running the OpenSSH client quietly (the doctor's way): our own config file and aliases, and nothing
that could ever prompt a person.

``-o`` options reach only the final host, never a ProxyJump hop, and the jump hop of a ProxyJump
may even start a persistent control master of its own (our config says ``ControlMaster auto``).
So for the workstation the doctor replaces ProxyJump with an explicit ProxyCommand that carries
BatchMode and, for a fresh login, ``ControlPath=none``: both hops are then really tested, and the
doctor leaves no connection behind. Every ssh also runs without a controlling terminal and with
``SSH_ASKPASS_REQUIRE=never``. The command lines themselves are tunnel/sshcmd's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from wa_onboard.core.tunnel import sshcmd, sshfiles

#: ProxyJump (``-J``) arrived in OpenSSH 7.3
MIN_VERSION = (7, 3)


def alias(profile_name: str, role: str) -> str:
    names = sshfiles.aliases(profile_name)
    return names.jump if role == "jump" else names.ws


def ssh_argv(profile_name: str, role: str, *, fresh: bool) -> list[str]:
    """``ssh -F <our config> ... <alias>``. ``fresh``: a new login on every hop; otherwise ride the
    live control master when there is one (and never start one)."""
    proxy = None
    if role != "jump":
        proxy = sshfiles.proxy_command(alias(profile_name, "jump"), *sshcmd.quiet_options(fresh))
    return sshcmd.quiet_argv(str(sshfiles.config_path()), alias(profile_name, role), fresh=fresh, proxy=proxy)


def run_quiet(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ssh (or ssh-keygen) detached from the terminal, so no hop can prompt."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=sshcmd.quiet_env(),
        timeout=timeout,
        start_new_session=os.name == "posix",
        check=False,
    )


@dataclass(frozen=True)
class ClientVersion:
    text: str
    """``OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.13 ...`` as ``ssh -V`` prints it."""
    major: int
    minor: int

    @property
    def short(self) -> str:
        return self.text.split(",")[0].split()[0] if self.text else "unknown"

    @property
    def has_proxyjump(self) -> bool:
        return (self.major, self.minor) >= MIN_VERSION


_VERSION = re.compile(r"OpenSSH[_A-Za-z]*?_(\d+)\.(\d+)")


def client_version() -> ClientVersion | None:
    """The OpenSSH client's version, or None when there is no ``ssh`` on PATH."""
    if shutil.which("ssh") is None:
        return None
    out = subprocess.run(["ssh", "-V"], capture_output=True, text=True, timeout=10, check=False)
    lines = (out.stderr or out.stdout).strip().splitlines()
    first = lines[0] if lines else ""
    m = _VERSION.search(first)
    return ClientVersion(first, int(m.group(1)), int(m.group(2))) if m else ClientVersion(first, 0, 0)


def effective_options(profile_name: str, role: str) -> dict[str, list[str]]:
    """What ssh would really use for an alias (``ssh -G``): option -> values, lowercase keys.
    Raises ValueError with ssh's complaint when the file does not parse."""
    out = subprocess.run(
        sshcmd.effective_argv(str(sshfiles.config_path()), alias(profile_name, role)),
        capture_output=True,
        text=True,
        timeout=10,
        env=sshcmd.quiet_env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if out.returncode != 0:
        raise ValueError(out.stderr.strip() or f"ssh -G failed ({out.returncode})")
    options: dict[str, list[str]] = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key.lower(), []).append(value.strip())
    return options


def master_alive(profile_name: str) -> bool:
    """A control master for the workstation is up (the tunnel's connection): a local socket check."""
    argv = sshcmd.control_argv("ssh", str(sshfiles.config_path()), alias(profile_name, "ws"), "check")
    try:
        out = run_quiet(argv, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0
