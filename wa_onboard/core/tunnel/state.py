"""What a running tunnel leaves on disk, and the facts ``status`` checks instead of trusting it.

One state file and one lock per profile in the state directory. The supervisor holds the lock for
its whole life, so "is a supervisor running for this profile?" is answered by the kernel (the lock
dies with the process), not by a pid that may have been reused. Also here: who holds a local port.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import json
import logging
import logging.handlers
import os
import re
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO

from wa_onboard.core import filelock, paths
from wa_onboard.core.places import DEFAULT_PROFILE


@dataclass(frozen=True)
class TunnelRecord:
    """The state file: written atomically by the supervisor on every state change."""

    profile: str
    pid: int
    local_port: int
    url: str
    engine: str
    state: str
    """A TunnelState value."""
    since: float | None = None
    """Unix time the tunnel last came up."""
    reconnects: int = 0
    remote_port: int = 0
    base_url: str = ""
    started: float = 0.0
    message: str = ""
    hint: str = ""
    failure: str = ""
    """A Failure value when the supervisor stopped on a failure."""
    reconnect_attempt: int = 0
    """While reconnecting: the attempt under way (1, 2, ...); 0 otherwise."""
    reconnect_since: float | None = None
    """While reconnecting: Unix time the connection was lost."""
    last_error: str = ""
    """While reconnecting: why the last attempt failed (or what was lost)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TunnelRecord:
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def state_file(profile_name: str) -> Path:
    return paths.state_dir() / f"tunnel-{profile_name}.json"


def lock_file(profile_name: str) -> Path:
    return paths.state_dir() / f"tunnel-{profile_name}.lock"


def log_file(profile_name: str) -> Path:
    return paths.state_dir() / f"tunnel-{profile_name}.log"


def read_record(profile_name: str) -> TunnelRecord | None:
    try:
        return TunnelRecord.from_json(state_file(profile_name).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def write_record(record: TunnelRecord) -> None:
    paths.write_private_file(state_file(record.profile), record.to_json())


def remove_record(profile_name: str, pid: int | None = None) -> None:
    """Remove the state file (only if it is ``pid``'s, when given)."""
    if pid is not None:
        current = read_record(profile_name)
        if current is not None and current.pid != pid:
            return
    state_file(profile_name).unlink(missing_ok=True)


class LockHeld(Exception):
    """Another process holds this profile's lock: a supervisor is running."""


class ProfileLock:
    """An exclusive, non-blocking lock per profile (``core.filelock``)."""

    def __init__(self, profile_name: str) -> None:
        self.path = lock_file(profile_name)
        self._handle: IO[str] | None = None

    def acquire(self) -> ProfileLock:
        paths.ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = os.fdopen(fd, "r+")
        if not filelock.try_lock(handle):
            handle.close()
            raise LockHeld(str(self.path))
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                filelock.unlock(self._handle)
            self._handle.close()
            self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def __enter__(self) -> ProfileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_is_held(profile_name: str) -> bool:
    """True when some process (a supervisor) holds the profile's lock right now."""
    if not lock_file(profile_name).exists():
        return False
    probe = ProfileLock(profile_name)
    try:
        probe.acquire()
    except LockHeld:
        return True
    probe.release()
    return False


# --- processes -----------------------------------------------------------------------------------


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover
        done = subprocess.run(
            ["tasklist", "/FI", f"PID eq {pid}", "/NH"], capture_output=True, text=True, check=False
        )
        return str(pid) in done.stdout
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def process_cmdline(pid: int) -> list[str] | None:
    """A process's argv (Linux /proc; ``ps`` elsewhere), or None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    except OSError:
        pass
    if sys.platform == "win32":  # pragma: no cover
        return None
    try:
        done = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.split() if done.returncode == 0 and done.stdout.strip() else None


def is_our_supervisor(pid: int, profile_name: str) -> bool:
    """The pid is alive and is this profile's supervisor by its argv (so a reused pid, or a
    ``less .../wa-onboard/x.log``, is never mistaken for ours, nor signalled)."""
    if not process_alive(pid):
        return False
    argv = process_cmdline(pid)
    if argv is None:
        return sys.platform == "win32"  # no way to look; the lock vouches for it
    return supervisor_argv_matches(argv, profile_name)


#: the supervisor's ``python -m`` entry, and the name it had before the tunnel became a package (a
#: tunnel started by the previous version is still ours to see and stop after an upgrade)
SUPERVISOR_MODULES = frozenset({"wa_onboard.core.tunnel.supervisor", "wa_onboard.core.supervisor"})
#: the CLI commands whose process holds a profile's lock (``connect``; forked by ``connect --detach``
#: and ``open``)
_SUPERVISING_COMMANDS = frozenset({"connect", "open"})
#: interpreter options that take a value (``python -X dev -m ...``)
_PY_OPTIONS_WITH_VALUE = frozenset({"-X", "-W", "-Q"})


def supervisor_argv_matches(argv: list[str], profile_name: str) -> bool:
    """The argv shapes of our supervisors, and only those: a Python interpreter running
    ``-m wa_onboard.core.tunnel.supervisor --profile NAME`` (spawned), or our CLI (``-m wa_onboard`` or
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
    """Who listens on ``port``: /proc on Linux, ``lsof`` elsewhere (best effort)."""
    if sys.platform.startswith("linux"):
        found = _holder_from_proc(port)
        if found is not None:
            return found
    return _holder_from_lsof(port)


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def _fd_links(proc_dir: Path) -> set[str]:
    """What a process's fds point at; fds that close while we look are passed over, not fatal."""
    links: set[str] = set()
    try:
        fds = list((proc_dir / "fd").iterdir())
    except OSError:
        return links
    for fd in fds:
        try:
            links.add(str(fd.readlink()))
        except OSError:
            continue
    return links


def _holder_from_proc(port: int) -> PortHolder | None:
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        if _fd_links(entry) & wanted:
            try:
                name = (entry / "comm").read_text().strip()
            except OSError:
                name = "a process"
            return PortHolder(int(entry.name), name)
    return PortHolder(None, "a process of another user")


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


# --- the log -------------------------------------------------------------------------------------


def tunnel_logger(profile_name: str) -> logging.Logger:
    """A rotating log file per profile in the state directory, 0600. Only states and ssh's own
    messages go in, never a password or code (the engines never hand those to anyone)."""
    logger = logging.getLogger(f"wa_onboard.tunnel.{profile_name}")
    path = log_file(profile_name)
    if any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
        return logger
    paths.ensure_private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=512 * 1024, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
