"""What a running tunnel leaves on disk, and the facts ``status`` checks instead of trusting it.

One state file and one lock per profile in the state directory. The supervisor holds the lock for
its whole life, so "is a supervisor running for this profile?" is answered by the kernel (the lock
dies with the process), not by a pid that may have been reused. Process and port facts: procs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO

from wa_onboard.core import filelock, paths
from wa_onboard.core.results import TunnelState
from wa_onboard.core.tunnel import procs


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
        """Raises ValueError for anything but a record: the file is on disk, and disks and people
        write other things (an empty list, a pid in quotes, a state no version ever wrote)."""
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("the state file does not hold a record")
        values = {f.name: raw[f.name] for f in fields(cls) if f.name in raw}
        for name, value in values.items():
            kinds = _KINDS[name]
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise ValueError(f"the state file's {name} is not a {kinds[0].__name__}")
        if values.get("state") not in {s.value for s in TunnelState}:
            raise ValueError("the state file's state is not one of ours")
        return cls(**values)


_NUMBER = (float, int)
#: what each field of a record may hold (a field missing from the file takes its default)
_KINDS: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("pid", "local_port", "reconnects", "remote_port", "reconnect_attempt"), (int,)),
    **dict.fromkeys(("since", "reconnect_since"), (*_NUMBER, type(None))),
    "started": _NUMBER,
    **dict.fromkeys(
        ("profile", "url", "engine", "state", "base_url", "message", "hint", "failure", "last_error"), (str,)
    ),
}


def state_file(profile_name: str) -> Path:
    return paths.state_dir() / f"tunnel-{profile_name}.json"


def lock_file(profile_name: str) -> Path:
    return paths.state_dir() / f"tunnel-{profile_name}.lock"


def log_file(profile_name: str) -> Path:
    return paths.state_dir() / f"tunnel-{profile_name}.log"


def read_record(profile_name: str) -> TunnelRecord | None:
    try:
        return TunnelRecord.from_json(state_file(profile_name).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):  # missing, unreadable, or not a record: no tunnel
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


# --- is the supervisor alive --------------------------------------------------------------------


def supervisor_alive(profile_name: str, record: TunnelRecord) -> bool:
    """Check, do not trust: a supervisor holds the profile's lock and the record's pid is this
    profile's supervisor (alive, by its argv). The one answer status, disconnect and the doctor use."""
    return lock_is_held(profile_name) and procs.is_our_supervisor(record.pid, profile_name)


def live_record(profile_name: str) -> TunnelRecord | None:
    """This profile's record when its supervisor is alive (see supervisor_alive)."""
    record = read_record(profile_name)
    return record if record is not None and supervisor_alive(profile_name, record) else None


# --- drops and recoveries -------------------------------------------------------------------------

#: how far back ``status --log`` looks, and how much the file keeps
DROPS_KEPT_SECONDS = 24 * 3600
DROPS_KEPT_MAX = 500


@dataclass(frozen=True)
class Drop:
    """One loss of the tunnel and how it ended: back (after ``seconds``), or not (``outcome`` says why)."""

    lost: float
    """Wall-clock time the connection was found lost."""
    cause: str
    ended: float
    """When it was back, or when the supervisor stopped trying."""
    outcome: str = "back"
    """``back``, ``stopped`` (disconnect), or what a person must do."""

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended - self.lost)


def drops_file(profile_name: str) -> Path:
    return paths.state_dir() / f"{profile_name}.drops.jsonl"


def recent_drops(profile_name: str, now: float | None = None) -> list[Drop]:
    """The drops of the last day, oldest first (lines that do not parse are left out)."""
    now = time.time() if now is None else now
    try:
        lines = drops_file(profile_name).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    found: list[Drop] = []
    for line in lines:
        try:
            data = json.loads(line)
            drop = Drop(float(data["lost"]), str(data["cause"]), float(data["ended"]), str(data["outcome"]))
        except (ValueError, KeyError, TypeError):
            continue
        if now - drop.ended <= DROPS_KEPT_SECONDS:
            found.append(drop)
    return found[-DROPS_KEPT_MAX:]


def record_drop(profile_name: str, drop: Drop) -> None:
    """Add a drop; the file keeps the last day only (at most DROPS_KEPT_MAX lines), 0600."""
    kept = [*recent_drops(profile_name, now=drop.ended), drop][-DROPS_KEPT_MAX:]
    text = "".join(json.dumps(asdict(d), sort_keys=True) + "\n" for d in kept)
    paths.write_private_file(drops_file(profile_name), text)


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
