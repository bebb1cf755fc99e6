"""What every part of the lab shares: where it lives, its three hosts and two links, and the process
helpers it stops things with (all by pid, inside its namespaces)."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
LAB_ROOT = Path("/opt/wa-lab")
RUN_DIR = Path("/run/wa-lab")
# Held from up() to down(): the namespaces, accounts and ports are global, so one lab at a time on a machine.
# (Not /tmp/wa-lab.lock: test runs may hold that one with flock(1) around a whole pytest run.)
LOCK_FILE = Path("/run/wa-lab.lock")
MEMBER_MARK = "wa-lab test account"  # GECOS of every account the lab makes; how stale ones are found
ADMIN_GROUP = "autonomous-sudo"
SYS_PYTHON = "/usr/bin/python3"
IP = shutil.which("ip", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/ip"

NAMESPACES = {"laptop": "walab-laptop", "jump": "walab-jump", "ws": "walab-ws"}
HOSTNAMES = {"jump": "jump", "ws": "ws"}  # what `hostname` prints on each host
# link name -> (namespace A, veth in A, address in A, namespace B, veth in B, address in B)
LINKS = {
    "laptop-jump": ("walab-laptop", "wl-lj0", "192.0.2.1/24", "walab-jump", "wl-lj1", "192.0.2.2/24"),
    "jump-ws": ("walab-jump", "wl-jw0", "198.51.100.1/24", "walab-ws", "wl-jw1", "198.51.100.2/24"),
}


class LabError(RuntimeError):
    """The lab could not do what was asked (the message says what and where to look)."""


@dataclass
class _Proc:
    popen: subprocess.Popen[bytes]
    log: IO[bytes]


def _run(argv: Sequence[str], input: str | None = None) -> str:
    r = subprocess.run(list(argv), input=input, capture_output=True, text=True)
    if r.returncode != 0:
        raise LabError(f"{shlex.join(argv)} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def _passwd(name: str) -> list[str]:
    r = subprocess.run(["getent", "passwd", name], capture_output=True, text=True)
    if r.returncode != 0:
        raise LabError(f"no such user {name}")
    return r.stdout.strip().split(":")


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ns_pids(ns: str) -> list[int]:
    """Processes inside network namespace ns (what `ip netns pids` says)."""
    try:
        ino = os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return []
    pids = []
    for pid in _all_pids():
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino == ino:
                pids.append(pid)
        except OSError:
            continue
    return pids


def _kill_pids(pids: Sequence[int], grace: float = 3.0) -> None:
    """SIGTERM these pids, then SIGKILL whatever still lives after grace seconds."""
    pids = [p for p in pids if p != os.getpid()]
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _alive(p)]
    for p in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _reap(proc: _Proc, grace: float = 5.0) -> None:
    if proc.popen.poll() is None:
        proc.popen.terminate()
        try:
            proc.popen.wait(grace)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()
    proc.log.close()


def _listening(pid: int, port: int) -> bool:
    """Whether anything listens on TCP port in the network namespace of pid."""
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _wait_listen(popen: subprocess.Popen[bytes], port: int, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            break
        if _listening(popen.pid, port):
            return
        time.sleep(0.02)
    raise LabError(
        f"{what} did not listen on port {port}; {log}:\n"
        + textwrap.indent(log.read_text(errors="replace")[-2000:], "  ")
    )
