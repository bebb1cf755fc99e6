"""The tunnel supervisor: bring the forward up, prove it with the hub's health URL, keep it up.

Ready means ``GET <base>/hub/health`` through the forward answers 200. While running it probes
every few seconds; when the path is lost it reconnects with capped exponential backoff and jitter,
key only (no prompt ever reaches a person), and stops with a clear reason if the server now wants
a password. The foreground ``connect`` and the detached one (``python -m wa_onboard.core.tunnel.supervisor``)
run the same object; states reach the front end through a callback and the state file.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from wa_onboard.core.profile import DEFAULT_PROFILE, Profile
from wa_onboard.core.prompts import NoPrompter, Prompter
from wa_onboard.core.results import TunnelState, TunnelStatus
from wa_onboard.core.tunnel import prestart
from wa_onboard.core.tunnel import state as tunnelstate
from wa_onboard.core.tunnel.engines import make_engine as make_engine  # where callers and tests find it
from wa_onboard.core.tunnel.engines.base import ConnectError, Engine, Failure
from wa_onboard.core.tunnel.state import TunnelRecord

StatusCallback = Callable[[TunnelStatus], None]
EngineFactory = Callable[[bool], Engine]
"""Makes a fresh engine; the flag says it is for a reconnect (short connect timeout)."""

#: failures a reconnect loop must not retry: a person has to act
STOP_FAILURES = frozenset(
    {
        Failure.PASSWORD_NEEDED,
        Failure.HOST_KEY_CHANGED,
        Failure.HOST_KEY_REJECTED,
        Failure.PORT_PRIVILEGED,
        Failure.SSH_MISSING,
    }
)


# --- probing the hub -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    ok: bool
    failure: Failure | None = None
    message: str = ""
    hint: str = ""
    status: int | None = None
    latency_ms: float = 0.0
    version: str | None = None
    """JupyterHub's version, from the ``X-JupyterHub-Version`` header every hub handler sets."""


_MAX_ANSWER = 65536


class _NoAnswer(ConnectionResetError):
    """The local port accepted and closed without an HTTP answer: what ssh's forward does when the
    far end refuses the channel."""


def _http_get(port: int, path: str, timeout: float, *, body: bool = True) -> tuple[int, bytes, bytes]:
    """``GET path`` on 127.0.0.1:port over a plain socket: (status, header block, body).

    Why not urllib: this runs on the connect path, and http.client/urllib/ssl/email cost ~20 ms of
    imports per start. HTTP/1.0 keeps the answer simple (never a chunked body), and no proxy from
    the environment can ever see localhost traffic. Keep-alive, and we close as soon as we have
    what we need: the side that closes first keeps the TIME_WAIT, and it must not be the forward's
    own port (a program that binds it without SO_REUSEADDR would then fail for a minute)."""
    request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: keep-alive\r\n\r\n"
    data = b""
    # a numeric address and no getaddrinfo: that would import the idna codec (~4 ms) on first use
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request.encode("ascii"))
        while b"\r\n\r\n" not in data and len(data) < _MAX_ANSWER:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        words = head.split(b"\r\n", 1)[0].split()
        if len(words) < 2 or not words[0].startswith(b"HTTP/") or not words[1].isdigit():
            raise _NoAnswer("no HTTP answer")
        length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        wanted = min(int(length.group(1)), _MAX_ANSWER) if length else _MAX_ANSWER
        while body and len(rest) < wanted:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return int(words[1]), head, rest[:wanted]


def _header(head: bytes, name: str) -> str | None:
    match = re.search(rb"(?im)^" + re.escape(name.encode("ascii")) + rb":[ \t]*(\S[^\r\n]*?)[ \t]*\r?$", head)
    return match.group(1).decode("ascii", "replace") if match else None


_VERSION_CHARS = re.compile(r"[^A-Za-z0-9.+_-]")


def _version_text(value: object) -> str | None:
    """A version a server claims, as we show it: only the characters a version has, at most 40.
    The server on the local port may not be the hub at all (another program, or another user's,
    holds it), so its words must not reach a terminal (escape codes) or the app (markup)."""
    text = _VERSION_CHARS.sub("", str(value))[:40] if value is not None else ""
    return text or None


def hub_url(port: int, base_url: str, path: str) -> str:
    return f"http://127.0.0.1:{port}{base_url}{path}"


def probe_hub(port: int, base_url: str, remote_port: int = 0, timeout: float = 3.0) -> Probe:
    """One ``GET <base>/hub/health`` through the forward, with the failure told apart (and the hub's
    version from its header: no second request on the connect path)."""
    started = time.monotonic()

    def took() -> float:
        return (time.monotonic() - started) * 1000

    try:
        code, head, _ = _http_get(port, f"{base_url}/hub/health", timeout, body=False)
    except OSError as exc:
        return _probe_os_error(exc, remote_port, took())
    if 200 <= code < 300:
        version = _version_text(_header(head, "X-JupyterHub-Version"))
        return Probe(True, status=code, latency_ms=took(), version=version)
    if code == 503:
        return Probe(
            False,
            Failure.HUB_UNAVAILABLE,
            "the tunnel is up, but the hub is down (its proxy answers 503)",
            "JupyterHub is not running on the workstation: ask the lab admins to restart it",
            code,
            took(),
        )
    if code == 404:
        return Probe(
            False,
            Failure.HUB_WRONG_URL,
            f"nothing answers at {base_url or '/'}/hub/health (404)",
            not_found_hint(
                base_url, remote_port, jupyterhub=_header(head, "X-JupyterHub-Version") is not None
            ),
            code,
            took(),
        )
    return Probe(False, Failure.OTHER, f"the hub answered HTTP {code}", "run wa-onboard doctor", code, took())


def not_found_hint(
    base_url: str, remote_port: int, *, jupyterhub: bool, setup: str = "wa-onboard setup"
) -> str:
    """What to do about a 404 at ``<base>/hub/health``. It suggests the lab's base URL only when the
    profile has another one; when it already is the lab's, the base URL is not what is wrong."""
    lab = Profile().base_url
    if base_url != lab:
        return f"the lab's hub lives under {lab}: fix it with {setup} --base-url {lab}"
    port = f"port {remote_port}" if remote_port else "the hub's port"
    if jupyterhub:
        return (
            f"a JupyterHub answers on the workstation's {port}, but not under {lab}: "
            "ask the lab admins whether its base URL changed"
        )
    return (
        f"the server on the workstation's {port} is not the lab's JupyterHub: check that the workstation "
        f"(--host) and the hub's port (--remote-port) are the lab's ({setup} --host HOST --remote-port N)"
    )


def _probe_os_error(reason: object, remote_port: int, latency: float) -> Probe:
    if isinstance(reason, TimeoutError):
        return Probe(False, Failure.TIMEOUT, "no answer through the tunnel (timed out)", latency_ms=latency)
    if isinstance(reason, ConnectionRefusedError):
        return Probe(False, Failure.TUNNEL_CLOSED, "the tunnel's local port is closed", latency_ms=latency)
    where = f"port {remote_port}" if remote_port else "the hub's port"
    return Probe(
        False,
        Failure.FORWARD_REFUSED,
        f"the tunnel is up, but nothing listens on the workstation's {where}",
        "JupyterHub is not running on the workstation (or --remote-port is wrong): ask the lab admins",
        latency_ms=latency,
    )


def hub_version(port: int, base_url: str, timeout: float = 3.0, probe: Probe | None = None) -> str | None:
    """The hub's version: the header of a health probe we already have, else ``<base>/hub/api``
    (no login needed; for a proxy in between that drops the header)."""
    if probe is not None and probe.version:
        return probe.version
    try:
        code, _, body = _http_get(port, f"{base_url}/hub/api", timeout)
        data = json.loads(body.decode("utf-8", "replace")) if code == 200 else None
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return _version_text(version) if version else None


# --- backoff -------------------------------------------------------------------------------------


@dataclass
class Backoff:
    """Capped exponential backoff with jitter: retries spread out, but never wait longer than cap."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 2.5
    jitter: float = 0.5
    """Each delay is scaled by a random factor in [1 - jitter, 1]."""
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next(self) -> float:
        delay = min(self.cap, self.base * self.factor**self.attempt)
        self.attempt += 1
        return delay * (1.0 - self.jitter * self.rng.random())

    def reset(self) -> None:
        self.attempt = 0


def privileged_port(port: int) -> ConnectError:
    """The system, not another program, refuses us the port: say that (not "in use"). The doctor's
    local port check says the same."""
    return ConnectError(
        Failure.PORT_PRIVILEGED,
        f"port {port} is a privileged port (below {tunnelstate.PRIVILEGED_BELOW}): only root may listen on "
        "it on this laptop (nothing else is using it)",
        f"choose a port from {tunnelstate.PRIVILEGED_BELOW} up, e.g. --local-port 8000",
    )


def _owned_pids(engine: Engine) -> set[int]:
    return engine.pids() | {os.getpid()}


# --- the supervisor ------------------------------------------------------------------------------


class Supervisor:
    """Owns one tunnel for one profile: start, watch, reconnect, stop."""

    def __init__(
        self,
        profile: Profile,
        profile_name: str = DEFAULT_PROFILE,
        *,
        engine_factory: EngineFactory | None = None,
        on_status: StatusCallback | None = None,
        explicit_port: bool = False,
        probe_interval: float = 2.0,
        probe_timeout: float = 3.0,
        backoff: Backoff | None = None,
        record_state: bool = True,
        logger: logging.Logger | None = None,
    ) -> None:
        profile.require_complete()
        self.profile = profile
        self.profile_name = profile_name
        self.engine_factory: EngineFactory = engine_factory or (
            lambda reconnecting: make_engine(profile, profile_name, reconnecting=reconnecting)
        )
        self.on_status = on_status
        self.explicit_port = explicit_port
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.backoff = backoff or Backoff()
        self.record_state = record_state
        self.log = logger or logging.getLogger("wa_onboard.tunnel")
        self.engine: Engine | None = None
        self.local_port = profile.local_port
        self.since: float | None = None
        self.reconnects = 0
        self.hub_version: str | None = None
        self.started = time.time()
        self.reconnect_attempt = 0
        self.reconnect_since: float | None = None
        self.last_error = ""
        self.status = TunnelStatus(profile_name, TunnelState.DOWN, local_port=self.local_port)

    @property
    def url(self) -> str:
        """127.0.0.1, not localhost: browsers try [::1] first for localhost, where another program
        may listen; 127.0.0.1:PORT is our forward's own address (see Profile.url)."""
        return hub_url(self.local_port, self.profile.base_url, "/")

    def _publish(
        self,
        state: TunnelState,
        message: str = "",
        hint: str = "",
        failure: Failure | None = None,
        latency_ms: float | None = None,
    ) -> TunnelStatus:
        status = TunnelStatus(
            profile=self.profile_name,
            state=state,
            url=self.url,
            local_port=self.local_port,
            pid=os.getpid(),
            since=self.since,
            reconnects=self.reconnects,
            hub_version=self.hub_version,
            latency_ms=latency_ms,
            message=message,
            hint=hint,
        )
        changed = (status.state, status.message, status.local_port) != (
            self.status.state,
            self.status.message,
            self.status.local_port,
        )
        self.status = status
        if changed:
            self.log.info("%s %s%s", state.value, message, f" (hint: {hint})" if hint else "")
            if self.record_state:
                tunnelstate.write_record(
                    TunnelRecord(
                        profile=self.profile_name,
                        pid=os.getpid(),
                        local_port=self.local_port,
                        url=self.url,
                        engine=self.profile.engine,
                        state=state.value,
                        since=self.since,
                        reconnects=self.reconnects,
                        remote_port=self.profile.remote_port,
                        base_url=self.profile.base_url,
                        started=self.started,
                        message=message,
                        hint=hint,
                        failure=failure.value if failure else "",
                        reconnect_attempt=self.reconnect_attempt,
                        reconnect_since=self.reconnect_since,
                        last_error=self.last_error,
                    )
                )
            if self.on_status is not None:
                self.on_status(status)
        return status

    # -- start ----------------------------------------------------------------------------------

    def start(self, prompter: Prompter | None = None, *, interactive: bool = False) -> TunnelStatus:
        """Log in (reusing a live control master), forward, and prove the hub answers.
        Raises ConnectError, with everything it started stopped again."""
        self._publish(TunnelState.CONNECTING, "connecting")
        engine = self.engine_factory(False)
        self.engine = engine
        try:
            self._login_and_forward(engine, prompter or NoPrompter(), interactive)
            probe = probe_hub(self.local_port, self.profile.base_url, self.profile.remote_port, 15.0)
            if not probe.ok:
                raise ConnectError(probe.failure or Failure.OTHER, probe.message, probe.hint)
            version = hub_version(self.local_port, self.profile.base_url, self.probe_timeout, probe)
        except BaseException as exc:
            self.stop_engine()
            if isinstance(exc, ConnectError):
                self._publish(TunnelState.DOWN, exc.message, exc.hint, exc.failure)
            elif isinstance(exc, Exception):  # never leave "connecting" behind for status to repeat
                self._publish(TunnelState.DOWN, f"failed: {exc}", "run wa-onboard doctor", Failure.OTHER)
            raise
        self.since = time.time()
        self.hub_version = version
        return self._publish(TunnelState.UP, "connected", latency_ms=probe.latency_ms)

    def _login_and_forward(self, engine: Engine, prompter: Prompter, interactive: bool) -> None:
        """Log in and forward the local port. A free port goes with the login (OpenSSH's new master
        listens on it from the start: one ``ssh -O forward`` less); a busy one is looked at after.
        A port the system refuses us is said before any login."""
        state = tunnelstate.port_state(self.local_port)
        if state is tunnelstate.PortState.DENIED:
            raise privileged_port(self.local_port)
        if state is tunnelstate.PortState.FREE:
            forward = (self.local_port, self.profile.remote_port)
            engine.login(prompter, interactive=interactive, forward=forward)
            return
        engine.login(prompter, interactive=interactive)
        self._forward(engine)

    def _forward(self, engine: Engine) -> None:
        """Pick the local port (reusing our own forward, avoiding a foreign holder) and forward it."""
        port = self.local_port
        state = tunnelstate.port_state(port)
        if state is tunnelstate.PortState.FREE:
            engine.forward(port, self.profile.remote_port)
            return
        if state is tunnelstate.PortState.DENIED:
            raise privileged_port(port)
        holder = tunnelstate.port_holder(port)
        if holder is not None and holder.pid in _owned_pids(engine):
            self.log.info("port %d: reusing our own forward (%s)", port, holder)
            return
        who = str(holder) if holder else "another process"
        if self.explicit_port:
            raise ConnectError(
                Failure.PORT_BUSY,
                f"port {port} on this laptop is in use by {who}",
                f"stop {who}, or choose another port with --local-port",
            )
        free = tunnelstate.next_free_port(port + 1)
        if free is None:
            raise ConnectError(Failure.PORT_BUSY, f"no free local port near {port}", "use --local-port")
        self.local_port = free
        self._publish(
            TunnelState.CONNECTING, f"port {port} is in use by {who}; using {free} instead: {self.url}"
        )
        engine.forward(free, self.profile.remote_port)

    # -- watch ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> TunnelStatus:
        """Watch until ``stop`` is set or a person must act; returns the last status."""
        while not stop.wait(self.probe_interval):
            probe = probe_hub(
                self.local_port, self.profile.base_url, self.profile.remote_port, self.probe_timeout
            )
            if probe.ok and not self._engine_alive():
                # something answers on the port, but our connection is gone: the port was free the
                # moment the forward died, and another program (another user's, a fake login page)
                # took it. Never call that "connected": reconnect, which moves off a foreign holder.
                lost = f"the connection was lost, and another program answers on port {self.local_port} now"
                self.log.info("path lost: %s", lost)
                if not self._reconnect(stop, lost):
                    break
                continue
            if probe.ok:
                if self.status.state is not TunnelState.UP:
                    self.hub_version = hub_version(self.local_port, self.profile.base_url, probe=probe)
                self._publish(TunnelState.UP, "connected", latency_ms=probe.latency_ms)
                continue
            if self._path_alive(probe):
                # ssh is fine; the hub is not (503, 404, nothing listening): say so, keep watching
                self._publish(TunnelState.DOWN, probe.message, probe.hint, probe.failure)
                continue
            self.log.info("path lost: %s", probe.message)
            if not self._reconnect(stop, probe.message):
                break
        return self.status

    def _engine_alive(self) -> bool:
        engine = self.engine
        return engine is not None and engine.is_alive()

    def _path_alive(self, probe: Probe) -> bool:
        engine = self.engine
        if engine is None or not engine.is_alive():
            return False
        if probe.failure in (Failure.HUB_UNAVAILABLE, Failure.HUB_WRONG_URL, Failure.FORWARD_REFUSED):
            return True
        if probe.failure is Failure.TIMEOUT:
            return bool(engine.ping(self.probe_timeout))
        return False

    def _reconnect(self, stop: threading.Event, lost: str = "connection lost") -> bool:
        """Key only, capped backoff; False when a person must act (or we were stopped). The state
        file says which attempt runs, since when, and why the last one failed (``status`` shows it)."""
        self.reconnect_since, self.reconnect_attempt = time.time(), 0
        self.last_error = lost
        self._publish(TunnelState.RECONNECTING, "connection lost; reconnecting")
        self.stop_engine()
        self.backoff.reset()
        try:
            return self._reconnect_attempts(stop)
        finally:
            self.reconnect_since, self.reconnect_attempt, self.last_error = None, 0, ""

    def _reconnect_attempts(self, stop: threading.Event) -> bool:
        while not stop.is_set():
            self.reconnect_attempt += 1
            self._publish(TunnelState.RECONNECTING, f"reconnecting (attempt {self.reconnect_attempt})")
            engine = self.engine_factory(True)
            self.engine = engine
            try:
                self._login_and_forward(engine, NoPrompter(), False)
            except ConnectError as exc:
                self.stop_engine()
                if exc.failure in STOP_FAILURES:
                    self._publish(TunnelState.DOWN, exc.message, exc.hint, exc.failure)
                    return False
                self.last_error = exc.message
                self._publish(
                    TunnelState.RECONNECTING,
                    f"reconnecting (attempt {self.reconnect_attempt}): {exc.message}",
                    exc.hint,
                )
                stop.wait(self.backoff.next())
                continue
            self.reconnects += 1
            self.reconnect_since, self.reconnect_attempt, self.last_error = None, 0, ""
            probe = probe_hub(self.local_port, self.profile.base_url, self.profile.remote_port, 10.0)
            if probe.ok:
                self.since = time.time()
                self._publish(TunnelState.UP, "connected again", latency_ms=probe.latency_ms)
            else:
                self._publish(TunnelState.DOWN, probe.message, probe.hint, probe.failure)
            return True
        return False

    def stop_engine(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            try:
                engine.close()
            except Exception as exc:  # closing must not hide why we are closing
                self.log.warning("closing the engine: %s", exc)

    def shutdown(self, message: str = "stopped") -> None:
        """Stop the tunnel and every process it started; the state file goes too."""
        self.stop_engine()
        self.since = None
        self._publish(TunnelState.DOWN, message)
        if self.record_state:
            tunnelstate.remove_record(self.profile_name, os.getpid())


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
    alive = tunnelstate.lock_is_held(profile_name) and tunnelstate.is_our_supervisor(record.pid, profile_name)
    if not alive:
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
    """Start ``python -m wa_onboard.core.tunnel.supervisor`` in the background, detached from this terminal.
    ``ready_fd`` (POSIX): the write end of the readiness pipe, handed to the child."""
    argv = [
        sys.executable,
        "-m",
        "wa_onboard.core.tunnel.supervisor",
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

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return tunnelstate.process_alive(self.pid)

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
        elif self.running():
            os.kill(self.pid, getattr(signal, "SIGKILL", signal.SIGTERM))

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
    locked forever. Otherwise, and always on Windows, ``python -m wa_onboard.core.tunnel.supervisor``."""
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
    if record is None or not tunnelstate.lock_is_held(profile_name):
        return None
    if record.pid == os.getpid() or not tunnelstate.is_our_supervisor(record.pid, profile_name):
        return None
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and tunnelstate.lock_is_held(profile_name):
        time.sleep(0.05)
    if tunnelstate.lock_is_held(profile_name) and tunnelstate.is_our_supervisor(record.pid, profile_name):
        os.kill(record.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
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
        moved = f" ({record.message})" if "instead" in record.message else ""
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


class BackgroundSession:
    """The TUI dashboard's tunnel: a background supervisor, watched through its state file, so the
    tunnel outlives the app when the member leaves it running."""

    can_detach = True

    def __init__(self, profile_name: str, profile: Profile, prompter: Prompter | None = None) -> None:
        self.profile_name = profile_name
        self.profile = profile
        self._done = threading.Event()
        self._restart = threading.Event()
        self._stopped = False

    def statuses(self) -> Iterator[TunnelStatus]:
        """Snapshots until stop() or detach(); a stop ends on a DOWN one, so a watcher never keeps
        showing the tunnel it just stopped as connected."""
        last: TunnelStatus | None = None
        self._restart.set()
        while not self._done.is_set():
            if self._restart.is_set():
                self._restart.clear()
                yield TunnelStatus(self.profile_name, TunnelState.CONNECTING, url=self.profile.url)
                try:
                    start_detached(self.profile, self.profile_name)
                except ConnectError as exc:
                    yield TunnelStatus(
                        self.profile_name,
                        TunnelState.DOWN,
                        url=self.profile.url,
                        message=exc.message,
                        hint=exc.hint,
                    )
                    last = None
                    self._done.wait(2.0)
                    continue
            status = verify_status(self.profile_name, self.profile)
            if status != last:
                yield status
                last = status
            self._done.wait(2.0)
        if self._stopped:
            yield TunnelStatus(
                self.profile_name,
                TunnelState.DOWN,
                url=self.profile.url,
                local_port=self.profile.local_port,
                message="stopped",
            )

    def reconnect(self) -> None:
        """A new tunnel now; after stop() too (the next statuses() starts it)."""
        stop_supervisor(self.profile_name)
        self._stopped = False
        self._done.clear()
        self._restart.set()

    def stop(self) -> None:
        stop_supervisor(self.profile_name)
        self._stopped = True
        self._done.set()

    def detach(self) -> None:
        self._done.set()


def tui_session(profile_name: str, profile: Profile, prompter: Prompter | None = None) -> BackgroundSession:
    return BackgroundSession(profile_name, profile, prompter)


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
    parser = argparse.ArgumentParser(prog="wa_onboard.core.tunnel.supervisor", add_help=False)
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--profile-json", required=True)
    parser.add_argument("--explicit-port", action="store_true")
    parser.add_argument("--ready-fd", type=int, default=None)
    args = parser.parse_args(argv)
    if args.ready_fd is not None:
        os.set_inheritable(args.ready_fd, False)  # ours alone, not the ssh processes'
    profile = Profile.make(json.loads(args.profile_json))
    return _serve(profile, args.profile, args.explicit_port, args.ready_fd)


if __name__ == "__main__":
    sys.exit(_main())
