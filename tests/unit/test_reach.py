"""The path watch: answers, refusals, silence, one connect in flight, sleep and network changes."""

from __future__ import annotations

import socket
import threading

import pytest

from wa_onboard.core.tunnel import reach
from wa_onboard.core.tunnel.reach import Answer, ChangeWatch, PathWatch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_listening_port_answers() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        watch = PathWatch("127.0.0.1", server.getsockname()[1])
        assert watch.wait(threading.Event(), limit=5) is Answer.ANSWERED
        assert watch.rounds == 1


def test_a_closed_port_is_a_refusal_not_silence() -> None:
    watch = PathWatch("127.0.0.1", _free_port())
    assert watch.wait(threading.Event(), limit=5) is Answer.REFUSED


class _Counting(socket.socket):
    open_now = 0
    most = 0

    """Counts the sockets the watch opens (not those accept() makes: they come with a fileno)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.counted = kwargs.get("fileno") is None
        if self.counted:
            _Counting.open_now += 1
            _Counting.most = max(_Counting.most, _Counting.open_now)

    def close(self) -> None:
        if self.counted and self.fileno() != -1:
            _Counting.open_now -= 1
        super().close()


def test_silence_then_an_answer_one_connect_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener whose accept queue is full drops new SYNs, as a dead link does. The watch keeps
    sending fresh ones, one at a time, and answers once the queue has room again."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the queue: later SYNs get no answer at all
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    monkeypatch.setattr(reach.socket, "socket", _Counting)
    _Counting.open_now = _Counting.most = 0
    watch = PathWatch("127.0.0.1", port, interval=0.1)
    assert watch.wait(threading.Event(), limit=0.6) is Answer.WAITED, "a full queue must look like silence"
    silent_rounds = watch.rounds
    assert silent_rounds >= 3

    def drain() -> None:
        server.settimeout(2)
        for _ in range(8):
            try:
                server.accept()[0].close()
            except OSError:
                return

    threading.Timer(0.3, drain).start()
    assert watch.wait(threading.Event(), limit=10) is Answer.ANSWERED
    assert watch.rounds > silent_rounds
    assert _Counting.most == 1 and _Counting.open_now == 0
    for c in fillers:
        c.close()
    server.close()


def test_no_dns_is_no_answer_and_asks_again() -> None:
    calls = []

    def offline(host: str, port: int) -> list[tuple[int, tuple[str, int]]]:
        calls.append(host)
        raise socket.gaierror("Temporary failure in name resolution")

    watch = PathWatch("jump.example.edu", 22, interval=0.05, resolver=offline)
    assert watch.wait(threading.Event(), limit=0.3) is Answer.WAITED
    assert len(calls) >= 3 and watch.rounds == 0


def test_stop_ends_the_wait() -> None:
    stop = threading.Event()
    stop.set()
    assert PathWatch("127.0.0.1", _free_port()).wait(stop, limit=30) is Answer.STOPPED


def test_addresses_take_turns() -> None:
    tried = []
    port = _free_port()

    def two(host: str, p: int) -> list[tuple[int, tuple[str, int]]]:
        return [(socket.AF_INET, ("127.0.0.1", p)), (socket.AF_INET, ("127.0.0.2", p))]

    watch = PathWatch("ws", port, resolver=two)
    for _ in range(2):
        target = watch._target()
        assert target is not None
        tried.append(target[1][0])
    assert tried == ["127.0.0.1", "127.0.0.2"]


def test_resolve_puts_ipv4_first() -> None:
    found = reach.resolve("localhost", 22)
    assert found and found[0][0] == socket.AF_INET


def test_change_watch_sees_sleep_and_a_new_network() -> None:
    clock = {"mono": 100.0, "wall": 1000.0}
    addrs = {"now": frozenset({"wlan0:192.0.2.5"})}
    watch = ChangeWatch(
        monotonic=lambda: clock["mono"], wall=lambda: clock["wall"], addresses=lambda: addrs["now"]
    )
    assert watch.changed() is None  # the first look only remembers
    clock["mono"] += 2.0
    clock["wall"] += 2.0
    assert watch.changed() is None  # time passing is not sleep
    clock["mono"] += 2.0
    clock["wall"] += 65.0  # the lid was closed for a minute
    assert watch.changed() == "resumed after 63 s asleep"
    addrs["now"] = frozenset({"wlan0:198.51.100.7"})
    clock["mono"] += 2.0
    clock["wall"] += 2.0
    assert watch.changed() == "network changed"
    assert watch.changed() is None


def test_local_addresses_leave_loopback_out() -> None:
    assert not any(a.split(":", 1)[1].startswith("127.") for a in reach.local_addresses())


def test_the_clocks_are_read_at_every_look_the_addresses_every_two_seconds() -> None:
    clock = {"mono": 0.0, "wall": 0.0}
    reads: list[float] = []

    def addresses() -> frozenset[str]:
        reads.append(clock["mono"])
        return frozenset()

    watch = ChangeWatch(monotonic=lambda: clock["mono"], wall=lambda: clock["wall"], addresses=addresses)
    for _ in range(9):  # 4 s of looks, every 0.5 s
        watch.changed()
        clock["mono"] += 0.5
        clock["wall"] += 0.5
    assert reads == [0.0, 2.0, 4.0]
    clock["mono"] += 0.5
    clock["wall"] += 90.0  # a resume is seen at the very next look, addresses or not
    assert watch.changed() == "resumed after 90 s asleep"
