"""The tunnel supervisor: bring the forward up, prove it with the hub's health URL, keep it up.

Ready means ``GET <base>/hub/health`` through the forward answers 200. While running it probes
every few seconds; when the path is lost it reconnects with capped exponential backoff and jitter,
key only (no prompt ever reaches a person), and stops with a clear reason if the server now wants
a password. The foreground ``connect`` and the detached one (core.tunnel.daemon) run the same
object; states reach the front end through a callback and the state file. The probes it runs are
core.tunnel.probe's; the port facts, core.tunnel.procs'.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wa_onboard.core.profile import DEFAULT_PROFILE, Profile
from wa_onboard.core.prompts import NoPrompter, Prompter
from wa_onboard.core.results import TunnelState, TunnelStatus
from wa_onboard.core.tunnel import procs, state as tunnelstate
from wa_onboard.core.tunnel.engines import make_engine as make_engine  # where callers and tests find it
from wa_onboard.core.tunnel.engines.base import ConnectError, Engine, Failure
from wa_onboard.core.tunnel.probe import Probe, hub_url, hub_version, probe_hub
from wa_onboard.core.tunnel.reach import Answer, ChangeWatch, PathWatch
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
#: failures that mean "no way to the jump host": the reconnect waits for the way back, not a timer
NO_PATH_FAILURES = frozenset({Failure.JUMP_UNREACHABLE, Failure.JUMP_UNKNOWN, Failure.TIMEOUT})
#: seconds the path watch waits for an answer before a login is tried anyway
PATH_PATIENCE = 30.0
#: after the network answers again, seconds our own connection gets to answer too before it is
#: taken for stuck (TCP retransmits back off to seconds apart during an outage) and replaced
STALE_GRACE = 0.3
#: a probe that has no answer after this many seconds has the connection checked end to end meanwhile
FIRST_LOOK = 0.5
#: between probes, how often the watch looks for a resume or a network change (a clock read and
#: one getifaddrs: nothing a quiet tunnel notices)
CHANGE_LOOK = 0.5


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
        f"port {port} is a privileged port (below {procs.PRIVILEGED_BELOW}): only root may listen on "
        "it on this laptop (nothing else is using it)",
        f"choose a port from {procs.PRIVILEGED_BELOW} up, e.g. --local-port 8000",
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
        path_watch: PathWatch | None = None,
        change_watch: ChangeWatch | None = None,
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
        self.path = path_watch or PathWatch(*profile.jump_address)
        """Is the way to the jump host open (a fresh TCP connect, one in flight at a time)."""
        self.changes = change_watch or ChangeWatch()
        """Did the laptop sleep, or its network change, since the last look."""
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
        state = procs.port_state(self.local_port)
        if state is procs.PortState.DENIED:
            raise privileged_port(self.local_port)
        if state is procs.PortState.FREE:
            forward = (self.local_port, self.profile.remote_port)
            engine.login(prompter, interactive=interactive, forward=forward)
            return
        engine.login(prompter, interactive=interactive)
        self._forward(engine)

    def _forward(self, engine: Engine) -> None:
        """Pick the local port (reusing our own forward, avoiding a foreign holder) and forward it."""
        port = self.local_port
        state = procs.port_state(port)
        if state is procs.PortState.FREE:
            engine.forward(port, self.profile.remote_port)
            return
        if state is procs.PortState.DENIED:
            raise privileged_port(port)
        holder = procs.port_holder(port)
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
        free = procs.next_free_port(port + 1)
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
        while self._next_look(stop):
            probe = self._look()
            if probe is None:
                lost = "the connection stopped answering while the network answers"
                if not self._reconnect(stop, lost):
                    break
                continue
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

    def _next_look(self, stop: threading.Event) -> bool:
        """Wait for the next probe; False when stopped. A resume (the laptop slept) or a new network
        (another Wi-Fi, a VPN) cuts the wait short: the tunnel is checked at once."""
        deadline = time.monotonic() + self.probe_interval
        while (left := deadline - time.monotonic()) > 0:
            if stop.wait(min(left, CHANGE_LOOK)):
                return False
            changed = self.changes.changed()
            if changed:
                self.log.info("%s: checking the tunnel now", changed)
                break
        return not stop.is_set()

    def _look(self) -> Probe | None:
        """Probe the hub through the tunnel. The answer usually comes in milliseconds; when none
        has come after FIRST_LOOK, the connection is checked end to end meanwhile: None when it is
        stuck (the caller then reconnects instead of waiting the probe out)."""
        answers: list[Probe] = []
        answered = threading.Event()

        def look() -> None:
            try:
                answers.append(
                    probe_hub(
                        self.local_port, self.profile.base_url, self.profile.remote_port, self.probe_timeout
                    )
                )
            finally:
                answered.set()

        threading.Thread(target=look, name="wa-probe", daemon=True).start()
        engine = self.engine
        slow = not answered.wait(FIRST_LOOK) and engine is not None and engine.is_alive()
        if slow and engine is not None and not self._answers_end_to_end(engine, answered):
            return None
        answered.wait()
        return answers[0] if answers else Probe(False, Failure.OTHER, "the probe failed", "")

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

    def _answers_end_to_end(self, engine: Engine, answered: threading.Event) -> bool:
        """Our connection did not answer in time. Ask it once more (a ping to the workstation) and,
        meanwhile, ask the network (a fresh TCP connect to the jump host). When the network answers
        and our connection still does not, soon after, it is stuck: TCP's retransmits back off to
        seconds apart during an outage, and an address that went away with a network change never
        comes back. A new login (~0.5 s) is then faster than waiting for it. True as soon as the
        probe itself (``answered``) or the ping answers."""
        pings: list[bool | None] = []
        settled = threading.Event()

        def ping() -> None:
            try:
                pings.append(engine.ping(self.probe_timeout))
            finally:
                settled.set()

        def probe_answered() -> None:
            answered.wait(self.probe_timeout + 1)
            settled.set()

        threading.Thread(target=ping, name="wa-ping", daemon=True).start()
        threading.Thread(target=probe_answered, name="wa-probe-wait", daemon=True).start()
        network = self.path.wait(settled, self.probe_timeout)
        if network is Answer.ANSWERED and not settled.wait(STALE_GRACE):
            self.log.info("the network answers and our connection does not: it is stuck; replacing it")
            return False
        settled.wait(self.probe_timeout)
        return answered.is_set() or bool(pings and pings[0])

    def _reconnect(self, stop: threading.Event, lost: str = "connection lost") -> bool:
        """Key only, capped backoff; False when a person must act (or we were stopped). The state
        file says which attempt runs, since when, and why the last one failed (``status`` shows it)."""
        lost_at = time.time()
        self.reconnect_since, self.reconnect_attempt = lost_at, 0
        self.last_error = lost
        self._publish(TunnelState.RECONNECTING, "connection lost; reconnecting")
        self.stop_engine()
        self.backoff.reset()
        outcome = "stopped"
        try:
            back = self._reconnect_attempts(stop)
            if back:
                outcome = "back"
            elif not stop.is_set():
                outcome = self.status.message or "gave up"
            return back
        finally:
            if self.record_state:
                drop = tunnelstate.Drop(lost_at, lost, time.time(), outcome)
                try:
                    tunnelstate.record_drop(self.profile_name, drop)
                except OSError as exc:  # the log of drops must never stop the tunnel
                    self.log.warning("recording the drop: %s", exc)
            self.reconnect_since, self.reconnect_attempt, self.last_error = None, 0, ""

    def _reconnect_attempts(self, stop: threading.Event) -> bool:
        failure: Failure = Failure.TIMEOUT  # the path was just lost: look at it before logging in
        while not stop.is_set():
            if not self._pause(stop, failure):
                return False
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
                failure = exc.failure
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

    def _pause(self, stop: threading.Event, failure: Failure) -> bool:
        """Before a reconnect attempt. When the way to the jump host failed, wait for it to open
        (checked every 0.2 s): the login starts the moment the jump host answers, however long the
        outage was. Otherwise (a refusal, a jump host that answers but fails the login, ssh fine
        and the hub down) the capped backoff paces the attempts. False when stopped."""
        if failure in NO_PATH_FAILURES:
            host, port = self.path.host, self.path.port
            first = self.reconnect_attempt == 0
            rounds = self.path.rounds

            def silent() -> None:
                self.last_error = f"no answer from {host}:{port}: waiting for the network"
                self._publish(TunnelState.RECONNECTING, f"reconnecting: {self.last_error}")

            answer = self.path.wait(stop, PATH_PATIENCE, on_silence=silent)
            if answer is Answer.STOPPED:
                return False
            if answer is Answer.ANSWERED and (first or self.path.rounds - rounds > 1):
                self.backoff.reset()  # the way opened (or never closed): log in now
                return True
        return not stop.wait(self.backoff.next())

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
