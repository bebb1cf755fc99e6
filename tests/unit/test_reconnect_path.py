"""The reconnect waits for the way to the jump host, not for a timer; a stuck connection is told from
a slow hub; a resume or a new network is checked at once. (Timings are the benchmark's business:
these tests check what happens and in which order, with generous bounds only against hangs.)"""

from __future__ import annotations

import json
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from wa_onboard.core.profile import Profile
from wa_onboard.core.results import TunnelState, TunnelStatus
from wa_onboard.core.tunnel import supervisor as supervisor_module
from wa_onboard.core.tunnel.engines import ConnectError, Engine, Failure
from wa_onboard.core.tunnel.probe import Probe
from wa_onboard.core.tunnel.reach import ChangeWatch, PathWatch
from wa_onboard.core.tunnel.supervisor import Backoff, Supervisor

PROFILE = Profile(user="bbadger")


class _Engine(Engine):
    name = "fake"

    def __init__(
        self, fail: Failure | None = None, ping: bool | None = True, ping_after: float = 0.0
    ) -> None:
        self.fail, self._ping, self.ping_after = fail, ping, ping_after
        self.logins = 0

    def login(self, prompter: Any, *, interactive: bool, forward: tuple[int, int] | None = None) -> None:
        self.logins += 1
        if self.fail is not None:
            raise ConnectError(self.fail, "cannot reach the jump host", "")

    def forward(self, local_port: int, remote_port: int) -> None:
        pass

    def is_alive(self) -> bool:
        return True

    def ping(self, timeout: float = 5.0) -> bool | None:
        time.sleep(min(self.ping_after, timeout))
        return self._ping if self.ping_after <= timeout else False

    def close(self) -> None:
        pass


class _Listener:
    """A jump host on loopback: closed (connects refused... or, with ``offline``, no name at all)
    until ``open()``."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.offline = True

    def resolver(self, host: str, port: int) -> list[tuple[int, tuple[str, int]]]:
        if self.offline:
            raise socket.gaierror("Temporary failure in name resolution")
        return [(socket.AF_INET, ("127.0.0.1", self.port))]

    def open(self) -> None:
        self.server.listen(16)
        self.offline = False

    def close(self) -> None:
        self.server.close()


def test_after_the_network_returns_the_login_starts_at_once_not_after_a_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jump = _Listener()
    engines: list[_Engine] = []
    seen: list[TunnelStatus] = []

    def factory(reconnecting: bool) -> _Engine:
        engines.append(_Engine())
        return engines[-1]

    sup = Supervisor(
        PROFILE,
        engine_factory=factory,  # type: ignore[arg-type]
        on_status=seen.append,
        record_state=False,
        backoff=Backoff(base=3600, cap=3600),  # a timer would never fire within the test
        path_watch=PathWatch("jump.example", 22, interval=0.05, resolver=jump.resolver),
    )
    monkeypatch.setattr(supervisor_module, "probe_hub", lambda *a, **k: Probe(True, latency_ms=1.0))
    try:
        threading.Timer(0.5, jump.open).start()
        stop = threading.Event()
        threading.Timer(20, stop.set).start()  # only against a hang
        assert sup._reconnect(stop, "connection lost") is True
    finally:
        jump.close()
    assert not stop.is_set(), "the reconnect waited for the backoff, not for the network"
    assert len(engines) == 1 and engines[0].logins == 1, "one login, after the network came back"
    waiting = [s.message for s in seen if s.state is TunnelState.RECONNECTING]
    assert any("waiting for the network" in m and "jump.example:22" in m for m in waiting)
    assert seen[-1].state is TunnelState.UP


def test_a_refusing_or_failing_jump_host_is_paced_by_the_backoff() -> None:
    """The path answers at once (it never closed): a login that still fails waits for the backoff,
    so a jump host that accepts TCP and fails every login is not hammered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    waits: list[float] = []

    class _Counted(Backoff):
        def next(self) -> float:
            waits.append(super().next())
            return 0.0

    attempts: list[_Engine] = []

    def factory(reconnecting: bool) -> _Engine:
        attempts.append(_Engine(fail=Failure.JUMP_UNREACHABLE))
        return attempts[-1]

    stop = threading.Event()
    sup = Supervisor(
        PROFILE,
        engine_factory=factory,  # type: ignore[arg-type]
        record_state=False,
        backoff=_Counted(),
        path_watch=PathWatch("127.0.0.1", server.getsockname()[1]),
        on_status=lambda s: stop.set() if s.message.startswith("reconnecting (attempt 4)") else None,
    )
    threading.Timer(20, stop.set).start()
    try:
        assert sup._reconnect(stop) is False
    finally:
        server.close()
    assert len(attempts) >= 3
    assert len(waits) >= len(attempts) - 1, "every retry after the first waited for the backoff"


@pytest.fixture
def slow_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_probe(port: int, base_url: str, remote_port: int = 0, timeout: float = 3.0) -> Probe:
        time.sleep(min(2.0, timeout))
        return Probe(False, Failure.TIMEOUT, "no answer", "")

    monkeypatch.setattr(supervisor_module, "probe_hub", slow_probe)


def test_a_connection_that_is_silent_while_the_network_answers_is_replaced(
    slow_probes: None, open_path: PathWatch
) -> None:
    engine = _Engine(ping=True, ping_after=10.0)  # our connection: no answer (TCP backing off)
    sup = Supervisor(PROFILE, engine_factory=lambda r: engine, record_state=False, path_watch=open_path)  # type: ignore[arg-type,return-value]
    sup.engine = engine
    assert sup._look() is None, "stuck: the caller reconnects now"


def test_a_slow_hub_over_a_live_connection_is_not_a_stuck_connection(
    slow_probes: None, open_path: PathWatch
) -> None:
    engine = _Engine(ping=True, ping_after=0.0)  # ssh answers at once: only the hub is slow
    sup = Supervisor(PROFILE, engine_factory=lambda r: engine, record_state=False, path_watch=open_path)  # type: ignore[arg-type,return-value]
    sup.engine = engine
    probe = sup._look()
    assert probe is not None and probe.failure is Failure.TIMEOUT, "the probe's own answer, waited out"


def test_a_resume_cuts_the_wait_for_the_next_probe_short() -> None:
    clock = {"wall": 1000.0}
    changes = ChangeWatch(wall=lambda: clock["wall"], addresses=lambda: frozenset())
    sup = Supervisor(PROFILE, record_state=False, change_watch=changes, probe_interval=30.0)
    stop = threading.Event()
    changes.changed()  # the first look only remembers
    threading.Timer(0.3, lambda: clock.__setitem__("wall", clock["wall"] + 120)).start()
    threading.Timer(20, stop.set).start()  # only against a hang
    assert sup._next_look(stop) is True
    assert not stop.is_set(), "the watch slept through a resume"


# --- the log of drops -----------------------------------------------------------------------------


def test_drops_are_kept_for_a_day_bounded_and_private(isolated_home: Path) -> None:
    from wa_onboard.core.tunnel import state

    now = time.time()
    state.record_drop("default", state.Drop(now - 2 * 86400, "old", now - 2 * 86400 + 1))
    for i in range(state.DROPS_KEPT_MAX + 5):
        state.record_drop("default", state.Drop(now - 100 + i * 0.01, f"cut {i}", now - 99 + i * 0.01))
    drops = state.recent_drops("default")
    assert len(drops) == state.DROPS_KEPT_MAX
    assert drops[-1].cause == f"cut {state.DROPS_KEPT_MAX + 4}" and all(d.cause != "old" for d in drops)
    assert drops[-1].seconds == pytest.approx(1.0)
    assert stat.S_IMODE(state.drops_file("default").stat().st_mode) == 0o600
    state.drops_file("default").write_text("not json\n" + state.drops_file("default").read_text())
    assert len(state.recent_drops("default")) == state.DROPS_KEPT_MAX  # a bad line is skipped


def test_a_reconnect_is_logged_with_its_cause_and_time_and_status_log_shows_it(
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    open_path: PathWatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from wa_onboard import cli
    from wa_onboard.core.tunnel import state

    monkeypatch.setattr(supervisor_module, "probe_hub", lambda *a, **k: Probe(True, latency_ms=1.0))
    sup = Supervisor(PROFILE, engine_factory=lambda r: _Engine(), path_watch=open_path)  # type: ignore[arg-type,return-value]
    assert sup._reconnect(threading.Event(), "the forward stopped answering") is True
    (drop,) = state.recent_drops("default")
    assert (drop.cause, drop.outcome) == ("the forward stopped answering", "back")
    assert 0 <= drop.seconds < 60
    assert cli.main(["status", "--log"]) == 0
    out = capsys.readouterr().out
    assert "the forward stopped answering; back after" in out
    assert cli.main(["status", "--log", "--json"]) == 0
    (logged,) = json.loads(capsys.readouterr().out)
    assert logged["outcome"] == "back" and logged["cause"] == "the forward stopped answering"


def test_a_reconnect_that_needs_a_person_is_logged_as_not_back(
    isolated_home: Path, open_path: PathWatch
) -> None:
    from wa_onboard.core.tunnel import state

    sup = Supervisor(
        PROFILE,
        engine_factory=lambda r: _Engine(fail=Failure.PASSWORD_NEEDED),
        path_watch=open_path,  # type: ignore[arg-type,return-value]
    )
    assert sup._reconnect(threading.Event(), "lost") is False
    (drop,) = state.recent_drops("default")
    assert drop.outcome not in ("back", "stopped") and drop.outcome == sup.status.message


def test_status_log_with_no_drops(isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wa_onboard import cli

    assert cli.main(["status", "--log"]) == 0
    assert "no drops in the last 24 hours" in capsys.readouterr().out
