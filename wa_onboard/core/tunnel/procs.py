"""Process and port facts of this laptop: is a process alive, its argv, its parent, which of our
processes run, who listens on a local port, and whether a process is our supervisor.

Built on psutil, so Linux, macOS and Windows get the same answers (the one place that reads /proc,
through it). ``lsof`` stays only as the fallback where psutil may not read the socket table (macOS
without root). psutil is imported inside the functions that use it: ``--help`` never pays for it.
"""

from __future__ import annotations

import enum
import errno
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from wa_onboard.core.places import DEFAULT_PROFILE

# psutil is imported in each function that uses it (~5 ms, paid only when a fact is asked for)


# --- processes -----------------------------------------------------------------------------------


def process_alive(pid: int) -> bool:
    """The process exists and has not ended (a zombie waiting to be reaped has)."""
    if pid <= 0:
        return False
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # a ZombieProcess too
        return False
    except psutil.AccessDenied:
        return True


def process_cmdline(pid: int) -> list[str] | None:
    """A process's argv, or None when it cannot be read (gone, or hidden from this user)."""
    import psutil

    try:
        return list(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return None


def process_parent(pid: int) -> int | None:
    """The parent's pid, or None when the process is gone (or hidden)."""
    import psutil

    try:
        ppid = psutil.Process(pid).ppid()
    except (psutil.Error, OSError):
        return None
    return int(ppid) if ppid else None


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether ``ancestor`` is ``pid`` or its parent, grandparent, ..."""
    seen = 0
    current: int | None = pid
    while current is not None and current > 1 and seen < 64:
        if current == ancestor:
            return True
        current = process_parent(current)
        seen += 1
    return False


def pids_matching(match: Callable[[list[str]], bool]) -> list[int]:
    """The pids of this user's processes (other than this one) whose argv ``match`` accepts."""
    import psutil

    found: list[int] = []
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info.get("cmdline")
        if proc.pid != os.getpid() and argv and match(list(argv)):
            found.append(proc.pid)
    return found


class Pinned:
    """A process held by its pid and its start time: ``alive`` and ``signal`` never reach a later process
    that got the same pid. psutil compares the start time (on Linux and macOS in ticks since boot, so a
    change of the clock does not matter)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.pid = pid
        self._proc: psutil.Process | None
        try:
            self._proc = psutil.Process(pid) if pid > 0 else None
        except psutil.Error:
            self._proc = None  # already gone

    def alive(self) -> bool:
        import psutil

        if self._proc is None:
            return False
        try:
            return self._proc.is_running() and self._proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True

    def signal(self, signum: int) -> bool:
        """Send ``signum``; False when the process is gone (or its pid is another's now)."""
        import psutil

        if self._proc is None:
            return False
        try:
            self._proc.send_signal(signum)
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied as exc:  # as os.kill says it
            raise PermissionError(f"may not signal process {self.pid}") from exc
        return True


# --- our supervisor, by its argv ------------------------------------------------------------------


def is_our_supervisor(pid: int, profile_name: str) -> bool:
    """The pid is alive and is this profile's supervisor by its argv (so a reused pid, or a
    ``less .../wa-onboard/x.log``, is never mistaken for ours, nor signalled)."""
    if not process_alive(pid):
        return False
    if sys.platform == "win32":  # pragma: no cover
        # the lock vouches for it: a console-script launcher's argv there has shapes no test here pins
        return True
    argv = process_cmdline(pid)
    return argv is not None and supervisor_argv_matches(argv, profile_name)


#: the supervisor's ``python -m`` entry, and the names it had before (a tunnel started by a previous
#: version is still ours to see and stop after an upgrade)
SUPERVISOR_MODULES = frozenset(
    {"wa_onboard.core.tunnel.daemon", "wa_onboard.core.tunnel.supervisor", "wa_onboard.core.supervisor"}
)
#: the CLI commands whose process holds a profile's lock (``connect``; forked by ``connect --detach``
#: and ``open``)
_SUPERVISING_COMMANDS = frozenset({"connect", "open"})
#: interpreter options that take a value (``python -X dev -m ...``)
_PY_OPTIONS_WITH_VALUE = frozenset({"-X", "-W", "-Q"})


def supervisor_argv_matches(argv: list[str], profile_name: str) -> bool:
    """The argv shapes of our supervisors, and only those: a Python interpreter running
    ``-m wa_onboard.core.tunnel.daemon --profile NAME`` (spawned), or our CLI (``-m wa_onboard`` or
    the ``wa-onboard`` script) with ``connect``/``open`` for this profile (forked from it)."""
    if not argv or not re.fullmatch(r"python[0-9.]*[a-z]?(\.exe)?", _basename(argv[0]).lower()):
        return False
    i = 1
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-m":
        i += 2 if argv[i] in _PY_OPTIONS_WITH_VALUE else 1
    if i >= len(argv):
        return False
    if argv[i] == "-m":
        module, rest = (argv[i + 1] if i + 1 < len(argv) else ""), argv[i + 2 :]
        if module in SUPERVISOR_MODULES:
            return _profile_of(rest) == profile_name
        if module != "wa_onboard":
            return False
    elif _basename(argv[i]).lower() in ("wa-onboard", "wa-onboard-script.py"):
        rest = argv[i + 1 :]
    else:
        return False
    return bool(_SUPERVISING_COMMANDS & set(rest)) and _profile_of(rest) == profile_name


def _basename(path: str) -> str:
    return re.split(r"[\\/]", path)[-1]


def _profile_of(args: list[str]) -> str:
    """The ``--profile`` an argv names (the default when none)."""
    for i, arg in enumerate(args):
        if arg == "--profile" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--profile="):
            return arg.split("=", 1)[1]
    return DEFAULT_PROFILE


# --- local ports ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortHolder:
    pid: int | None
    name: str

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})" if self.pid else self.name


class PortState(str, enum.Enum):
    """What binding a local port for the forward would meet."""

    FREE = "free"
    BUSY = "busy"
    """Another program listens on 127.0.0.1 or [::1] (either wins ``localhost`` in a browser)."""
    DENIED = "denied"
    """The system refuses us the port itself: below 1024 only root (Administrator) may listen."""


#: Ports below this one are privileged on POSIX systems (Linux: ``net.ipv4.ip_unprivileged_port_start``).
PRIVILEGED_BELOW = 1024


def port_state(port: int) -> PortState:
    """Can we listen on port ``port`` of the loopback? Both loopbacks count: browsers try ``[::1]``
    first for ``localhost``, so a program there hides our forward from anyone typing that name."""
    state = _bind_state(socket.AF_INET, "127.0.0.1", port)
    if state is PortState.FREE:
        state = _bind_state(socket.AF_INET6, "::1", port)
    return state


def _bind_state(family: socket.AddressFamily, host: str, port: int) -> PortState:
    """Bind, and tell why it fails (SO_REUSEADDR like ssh, so TIME_WAIT does not count as busy)."""
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        return PortState.FREE  # no IPv6 on this laptop: nothing can listen on [::1] either
    with sock:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return bind_error_state(exc, ipv6=family == socket.AF_INET6)
    return PortState.FREE


def bind_error_state(exc: OSError, *, ipv6: bool = False) -> PortState:
    """EACCES is the system refusing the port (privileged), not another program holding it."""
    if exc.errno == errno.EACCES or isinstance(exc, PermissionError):
        return PortState.DENIED
    if ipv6 and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return PortState.FREE  # no ::1 configured: no one can take it
    return PortState.BUSY


def port_is_free(port: int) -> bool:
    """Can we listen on ``port`` on both loopbacks (see port_state)?"""
    return port_state(port) is PortState.FREE


def next_free_port(start: int, tries: int = 100) -> int | None:
    for port in range(max(start, 1), min(start + tries, 65536)):
        if port_is_free(port):
            return port
    return None


def port_holder(port: int) -> PortHolder | None:
    """Who listens on ``port``: psutil's socket table; ``lsof`` where psutil may not read it (macOS
    without root). On Linux another user's socket shows without its process: named as such."""
    import psutil

    try:
        pids = [
            conn.pid
            for conn in psutil.net_connections("tcp")
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
        ]
    except (psutil.AccessDenied, OSError):
        return _holder_from_lsof(port)
    seen = [pid for pid in pids if pid]
    if seen:
        pid = min(seen)  # a listener shared by a parent and its children: the parent, which made it
        return PortHolder(pid, _name(pid))
    return PortHolder(None, "a process of another user") if pids else None


def _name(pid: int) -> str:
    import psutil

    try:
        return str(psutil.Process(pid).name()) or "a process"
    except (psutil.Error, OSError):
        return "a process"


def _holder_from_lsof(port: int) -> PortHolder | None:
    try:
        done = subprocess.run(
            ["lsof", "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-Fpc"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    pid = re.search(r"^p(\d+)", done.stdout, re.M)
    name = re.search(r"^c(.+)", done.stdout, re.M)
    if not pid:
        return None
    return PortHolder(int(pid.group(1)), name.group(1) if name else "a process")
