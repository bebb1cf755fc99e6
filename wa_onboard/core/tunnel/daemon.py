"""The background tunnel: start the supervisor detached (forked, or ``python -m
wa_onboard.core.tunnel.daemon``), wait on its readiness pipe, verify what it says, stop it, and the
detached process's own life (lock, start, watch, stop).

``status``, ``disconnect``, ``connect --detach``, ``open``, setup's tunnel step and the TUI's
dashboard all come through here; the watch loop itself is core.tunnel.supervisor's.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wa_onboard.core import validate
from wa_onboard.core.errors import InvalidInput, WaError
from wa_onboard.core.profile import DEFAULT_PROFILE, Profile
from wa_onboard.core.results import TunnelState, TunnelStatus
from wa_onboard.core.tunnel import prestart, procs, state as tunnelstate
from wa_onboard.core.tunnel.engines import make_engine
from wa_onboard.core.tunnel.engines.base import ConnectError, Engine, Failure
from wa_onboard.core.tunnel.probe import hub_version, probe_hub
from wa_onboard.core.tunnel.state import TunnelRecord
from wa_onboard.core.tunnel.supervisor import StatusCallback, Supervisor

# --- what status, disconnect and connect --detach use ---------------------------------------------


def verify_status(profile_name: str, profile: Profile | None = None) -> TunnelStatus:
    """Check, do not trust: a supervisor holds the lock, its pid is ours, the port answers, the hub
    is healthy through it."""
    record = tunnelstate.read_record(profile_name)
    port = record.local_port if record else (profile.local_port if profile else 0)
    url = record.url if record else (profile.url if profile else "")
    down = TunnelStatus(profile_name, TunnelState.DOWN, url=url, local_port=port)
    if record is None:
        return down
    if not tunnelstate.supervisor_alive(profile_name, record):
        last = f"not running (it ended while {record.message})" if record.message else "not running"
        return TunnelStatus(
            profile_name, TunnelState.DOWN, url=url, local_port=port, message=last, hint=record.hint
        )
    state = TunnelState(record.state)
    common: dict[str, Any] = {
        "url": url,
        "local_port": port,
        "pid": record.pid,
        "since": record.since,
        "reconnects": record.reconnects,
    }
    if state is TunnelState.RECONNECTING:
        return TunnelStatus(profile_name, state, message=_reconnecting(record), hint=record.hint, **common)
    if state is not TunnelState.UP:
        return TunnelStatus(profile_name, state, message=record.message, hint=record.hint, **common)
    base = record.base_url
    probe = probe_hub(port, base, record.remote_port)
    if not probe.ok:
        if probe.failure in (Failure.TUNNEL_CLOSED, Failure.TIMEOUT):
            # the supervisor (alive, checked above) notices within seconds and reconnects on its own
            return TunnelStatus(
                profile_name,
                TunnelState.RECONNECTING,
                message=f"{probe.message}: the connection was lost just now; the background tunnel "
                f"(pid {record.pid}) reconnects on its own",
                **common,
            )
        return TunnelStatus(profile_name, TunnelState.DOWN, message=probe.message, hint=probe.hint, **common)
    return TunnelStatus(
        profile_name,
        TunnelState.UP,
        hub_version=hub_version(port, base, probe=probe),
        latency_ms=probe.latency_ms,
        message="connected",
        **common,
    )


def _reconnecting(record: TunnelRecord) -> str:
    """``reconnecting since 10:42:07, attempt 3; last error: cannot reach the jump host ...``"""
    text = "reconnecting"
    if record.reconnect_since:
        text += " since " + time.strftime("%H:%M:%S", time.localtime(record.reconnect_since))
    if record.reconnect_attempt:
        text += f", attempt {record.reconnect_attempt}"
    if record.last_error:
        text += f"; last error: {record.last_error}"
    return text


def spawn_detached(
    profile: Profile, profile_name: str, *, explicit_port: bool, ready_fd: int | None = None
) -> subprocess.Popen[bytes]:
    """Start ``python -m wa_onboard.core.tunnel.daemon`` in the background, detached from this terminal.
    ``ready_fd`` (POSIX): the write end of the readiness pipe, handed to the child."""
    argv = [
        sys.executable,
        "-m",
        "wa_onboard.core.tunnel.daemon",
        "--profile",
        profile_name,
        "--profile-json",
        json.dumps(profile.to_dict()),
    ]
    if explicit_port:
        argv.append("--explicit-port")
    kwargs: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
        "close_fds": True,
    }
    if sys.platform == "win32":  # pragma: no cover
        flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
        kwargs["creationflags"] = flags
    else:
        kwargs["start_new_session"] = True
        if ready_fd is not None:
            argv += ["--ready-fd", str(ready_fd)]
            kwargs["pass_fds"] = (ready_fd,)
    return subprocess.Popen(argv, **kwargs)


@dataclass
class Launched:
    """A background supervisor just started: its pid and, on POSIX, the read end of the pipe on
    which it says ``connected`` or ``down`` (so the caller wakes at once instead of polling)."""

    pid: int
    ready: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    """Set when it was spawned (a child we reap); a forked one is re-parented to init."""
    pinned: procs.Pinned | None = field(default=None, init=False, repr=False)
    """A forked one, held by its start time from the first look on (its pid, once it has ended, may be
    another's); not sooner, so a connect that never needs to look never loads psutil."""

    def _forked(self) -> procs.Pinned:
        if self.pinned is None:
            self.pinned = procs.Pinned(self.pid)
        return self.pinned

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self._forked().alive()

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
        else:
            self._forked().signal(getattr(signal, "SIGKILL", signal.SIGTERM))

    def close(self) -> None:
        if self.ready is not None:
            os.close(self.ready)
            self.ready = None


def _read_line(fd: int, deadline: float, alive: Callable[[], bool]) -> str | None:
    """One line from the readiness pipe; None on EOF (the writer is gone), timeout, or death."""
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not ready:
            if not alive():
                return None
            continue
        chunk = os.read(fd, 1)  # byte by byte: the next line stays in the pipe for the next call
        if not chunk:
            return None
        data += chunk
    return data.decode("ascii", "replace").strip()


def launch_detached(
    profile: Profile, profile_name: str, *, explicit_port: bool = False, fork: bool = False
) -> Launched:
    """Start the background supervisor.

    ``fork`` (POSIX): fork this already-imported process instead of starting a second interpreter,
    which saves the interpreter start and every import again (~0.1 s of a ~0.5 s connect). Only for
    a caller that is about to exit and holds nothing it must not share: the child keeps every open
    file of the caller, flock()s included (setup's own lock once kept "setup is running" true for as
    long as the tunnel ran). It is also refused while other threads run (the TUI, setup with its
    engine's readers): a fork copies only the calling thread, and any lock another thread held stays
    locked forever. Otherwise, and always on Windows, ``python -m wa_onboard.core.tunnel.daemon``."""
    if sys.platform == "win32":  # pragma: no cover
        proc = spawn_detached(profile, profile_name, explicit_port=explicit_port)
        return Launched(proc.pid, None, proc)
    if fork:  # one started at the entry point may be waiting for this profile (core/prestart)
        ready = prestart.take(profile_name, profile.to_dict(), explicit_port)
        if ready is not None:
            line = _read_line(ready, time.monotonic() + 10, lambda: True)
            if line and line.isdigit():
                return Launched(int(line), ready)
            os.close(ready)  # it is gone: fork a fresh one
    read, write = os.pipe()  # both ends non-inheritable: no ssh we start ever holds them
    try:
        if fork and threading.active_count() == 1 and hasattr(os, "fork"):
            # what lives now lives on in both processes: out of the collector's sight, the child's
            # GC does not touch (and copy) those pages, and this process exits ~15 ms sooner
            gc.freeze()
            return Launched(_fork_detached(profile, profile_name, explicit_port, read, write), read)
        proc = spawn_detached(profile, profile_name, explicit_port=explicit_port, ready_fd=write)
        return Launched(proc.pid, read, proc)
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)


def _fork_detached(profile: Profile, profile_name: str, explicit_port: bool, read: int, write: int) -> int:
    """The supervisor in a grandchild of a new session (prestart.fork_daemon); its pid comes back
    through the pipe."""

    def run() -> int:  # pragma: no cover - runs in the forked supervisor (the lab tests cover it)
        os.write(write, f"{os.getpid()}\n".encode("ascii"))
        prestart.detach_stdio()
        return _serve(profile, profile_name, explicit_port, write)

    prestart.fork_daemon(run, (read,))
    line = _read_line(read, time.monotonic() + 10, lambda: True)
    if not line or not line.isdigit():
        raise ConnectError(
            Failure.OTHER,
            "the background tunnel did not start",
            "run wa-onboard connect --no-tui to see why",
        )
    return int(line)


def wait_detached(launched: Launched, profile_name: str, timeout: float = 90.0) -> TunnelRecord | None:
    """Wait until the background supervisor says UP or DOWN (or exits); its last record."""
    deadline = time.monotonic() + timeout
    if launched.ready is not None:
        _read_line(launched.ready, deadline, launched.running)
        record = tunnelstate.read_record(profile_name)
        return record if record is not None and record.pid == launched.pid else None
    while time.monotonic() < deadline:  # pragma: no cover - Windows: no readiness pipe
        record = tunnelstate.read_record(profile_name)
        if record is not None and record.pid == launched.pid and record.state in ("connected", "down"):
            return record
        if not launched.running():
            record = tunnelstate.read_record(profile_name)
            return record if record is not None and record.pid == launched.pid else None
        time.sleep(0.05)
    return tunnelstate.read_record(profile_name)


def stop_supervisor(profile_name: str, timeout: float = 15.0) -> int | None:
    """Ask this profile's supervisor (ours, verified) to stop; wait until its lock is free.
    Returns the pid that was stopped, or None when none was running."""
    record = tunnelstate.read_record(profile_name)
    if record is None or record.pid == os.getpid() or not tunnelstate.supervisor_alive(profile_name, record):
        return None
    target = procs.Pinned(record.pid)  # the signals reach this process only, never a later one of its pid
    target.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and tunnelstate.lock_is_held(profile_name):
        time.sleep(0.05)
    if tunnelstate.lock_is_held(profile_name) and target.alive():
        target.signal(getattr(signal, "SIGKILL", signal.SIGTERM))
    return record.pid


def _settled_status(profile_name: str, profile: Profile, wait: float = 8.0) -> TunnelStatus:
    """The running supervisor's status, given a few probe rounds to catch up when it is not connected:
    after the hub comes back (a retry in setup), its record says "down" until its next probe, which
    judges the hub through its own live connection (a probe from here could not tell our forward from
    another program on the port)."""
    deadline = time.monotonic() + wait
    while True:
        status = verify_status(profile_name, profile)
        if status.connected or time.monotonic() >= deadline or not tunnelstate.lock_is_held(profile_name):
            return status
        time.sleep(0.25)


def start_detached(
    profile: Profile, profile_name: str = DEFAULT_PROFILE, *, explicit_port: bool = False, fork: bool = False
) -> str:
    """``connect --detach``: reuse a live supervisor for this profile, or start one in the background
    and wait until the hub is healthy. Returns a one-line summary; raises ConnectError.
    ``fork``: see launch_detached (the CLI's connect and open, which exit right after)."""
    if tunnelstate.lock_is_held(profile_name):
        status = _settled_status(profile_name, profile)
        if status.connected:
            return f"already running at {status.url} (pid {status.pid})"
        raise ConnectError(
            Failure.OTHER,
            f"the tunnel of profile {profile_name} runs but is down: {status.message or status.state}",
            status.hint or "stop it with wa-onboard disconnect, then connect again",
        )
    launched = launch_detached(profile, profile_name, explicit_port=explicit_port, fork=fork)
    try:
        record = wait_detached(launched, profile_name)
    finally:
        launched.close()
    if record is not None and record.state == TunnelState.UP.value:
        moved = ""
        if record.local_port != profile.local_port:  # the profile's port was taken: say so, and by whom
            holder = procs.port_holder(profile.local_port)
            moved = f" (port {profile.local_port} is in use by {holder or 'another program'})"
        return f"tunnel up at {record.url} (background pid {launched.pid}){moved}"
    if launched.running():
        stop_supervisor(profile_name)
    launched.kill()
    if record is None:
        raise ConnectError(
            Failure.OTHER,
            "the background tunnel did not start",
            f"see the log {tunnelstate.log_file(profile_name)}, or run wa-onboard connect --no-tui",
        )
    failure = Failure(record.failure) if record.failure else Failure.OTHER
    raise ConnectError(failure, record.message or "the background tunnel stopped", record.hint)


# --- the detached process -----------------------------------------------------------------------


def _notify_ready(fd: int | None) -> StatusCallback | None:
    """Write ``connected``/``down`` once to the readiness pipe, then close it."""
    if fd is None:
        return None
    pending = [fd]

    def notify(status: TunnelStatus) -> None:
        if pending and status.state in (TunnelState.UP, TunnelState.DOWN):
            fd = pending.pop()
            with contextlib.suppress(OSError):
                os.write(fd, f"{status.state.value}\n".encode("ascii"))
            with contextlib.suppress(OSError):
                os.close(fd)

    return notify


def serve_prestarted(
    orders: bytes, profile_name: str, ready_fd: int, early: prestart.Prestarted | None
) -> int:
    """The speculative supervisor got its orders from the CLI (core/prestart): serve, with its jump
    master handed to the first engine (which adopts it only if it is the master it would start)."""
    given = json.loads(orders)
    profile = Profile.make(given["profile"])
    return _serve(profile, profile_name, bool(given["explicit_port"]), ready_fd, early)


def _serve(
    profile: Profile,
    profile_name: str,
    explicit_port: bool,
    ready_fd: int | None,
    early: prestart.Prestarted | None = None,
) -> int:
    """The background supervisor's life: lock, start, watch, stop. It never prints: states go to the
    state file, the log and (once) the readiness pipe."""
    log = tunnelstate.tunnel_logger(profile_name)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if hasattr(signal, "SIGHUP"):
        # survive a hang-up, with a handler rather than SIG_IGN: an ignored signal stays ignored
        # across exec, and masters that ignore SIGHUP outlive us (holding the port) after a crash
        signal.signal(signal.SIGHUP, lambda *_: None)
    lock = tunnelstate.ProfileLock(profile_name)
    try:
        lock.acquire()
    except tunnelstate.LockHeld:
        log.info("another supervisor runs for profile %s; exiting", profile_name)
        return 3
    pending = [early] if early is not None else []

    def engine_factory(reconnecting: bool) -> Engine:
        engine = make_engine(profile, profile_name, reconnecting=reconnecting)
        if pending and not reconnecting:
            early = pending.pop()
            if not engine.adopt(early):
                early.discard()
        return engine

    supervisor = Supervisor(
        profile,
        profile_name,
        engine_factory=engine_factory,
        explicit_port=explicit_port,
        logger=log,
        on_status=_notify_ready(ready_fd),
    )
    try:
        log.info("supervisor starting (detached) for %s", profile_name)
        try:
            supervisor.start()
        except ConnectError as exc:
            log.info("start failed: %s", exc.message)
            return 1
        if supervisor.engine is not None and supervisor.engine.adopted_early:
            log.info("the jump host's login started at launch (prestart), and its master was adopted")
        supervisor.run(stop)
        failed = supervisor.status.state is TunnelState.DOWN and not stop.is_set()
        if failed:
            supervisor.stop_engine()
            return 1
        supervisor.shutdown()
        return 0
    except BaseException:
        log.exception("supervisor crashed")
        supervisor.stop_engine()
        return 1
    finally:
        lock.release()
        logging.shutdown()


def _main(argv: Sequence[str] | None = None) -> int:
    """Entry of the spawned background supervisor (Windows, or a caller with threads)."""
    parser = argparse.ArgumentParser(
        prog="python -m wa_onboard.core.tunnel.daemon",
        description="The background tunnel that `wa-onboard connect --detach` starts (not for direct use).",
    )
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--profile-json", required=True)
    parser.add_argument("--explicit-port", action="store_true")
    parser.add_argument("--ready-fd", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        name = validate.profile_name(args.profile)
        settings = json.loads(args.profile_json)
        if not isinstance(settings, dict):
            raise InvalidInput("profile-json", "is not a JSON object of profile settings")
        profile = Profile.make(settings)
        if args.ready_fd is not None:
            os.set_inheritable(args.ready_fd, False)  # ours alone, not the ssh processes'
    except (WaError, ValueError, OSError) as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")
    return _serve(profile, name, args.explicit_port, args.ready_fd)


if __name__ == "__main__":
    sys.exit(_main())
