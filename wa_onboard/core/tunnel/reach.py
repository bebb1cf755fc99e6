"""Knowing when the way to the jump host is back, instead of guessing with a timer.

While the tunnel is down for want of a network (Wi-Fi gone, lid closed, a train in a tunnel), a
login attempt only burns its connect timeout, and a backoff between attempts only adds to the
wait once the network is back. So between attempts the supervisor watches the path instead: a
non-blocking TCP connect to the jump host's ssh port every ``interval`` (0.2 s), never more than
one in flight (each round closes the last unanswered SYN and sends a fresh one, so a returning
link is seen within one round, not after the kernel's next SYN retransmit 1, 3, 7 ... s later).
The moment the jump host answers, the login starts.

An answer is either an accepted connection or a refusal (RST): both prove the path. A refusal
means the host is up and its sshd is not, which is for the backoff to pace, not for this watch.

Two more signs that a path may have changed under us, checked by the watch loop every round and
costing one clock read (and, every 2 s, one ``getifaddrs``): the laptop slept (the wall clock jumped
ahead of the monotonic one, which stops in suspend on Linux and macOS), or its network
addresses changed (another Wi-Fi, a VPN up or down). Either means: check the tunnel now.
"""

from __future__ import annotations

import enum
import errno
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: seconds between two connects while the path is down
INTERVAL = 0.2
#: a wall clock that ran this much further than the monotonic one means the laptop slept
SLEEP_JUMP = 2.0
#: how long a resolved address is trusted before it is looked up again
RESOLVE_AGAIN = 30.0
#: seconds between two reads of the laptop's addresses (each look reads the clocks; a quiet tunnel
#: should not pay a getifaddrs twice a second)
ADDRESSES_EVERY = 2.0

Resolver = Callable[[str, int], list[tuple[int, tuple[str, int]]]]


class Answer(str, enum.Enum):
    ANSWERED = "answered"
    """A TCP connection to the jump host's port was accepted."""
    REFUSED = "refused"
    """The jump host (or a router on the way) said no: the network is back, its sshd may not be."""
    WAITED = "waited"
    """The time allowed passed without an answer."""
    STOPPED = "stopped"


def resolve(host: str, port: int) -> list[tuple[int, tuple[str, int]]]:
    """(family, address) for each TCP address of ``host``, IPv4 first (as ssh's own order would
    not matter here: any answer proves the path)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[tuple[int, tuple[str, int]]] = []
    for family, _type, _proto, _name, addr in infos:
        item = (int(family), (str(addr[0]), int(addr[1])))
        if item not in found:
            found.append(item)
    return sorted(found, key=lambda item: item[0] != socket.AF_INET)


@dataclass
class PathWatch:
    """Waits for the jump host to answer on its port: one connect in flight at a time."""

    host: str
    port: int
    interval: float = INTERVAL
    resolver: Resolver = resolve
    clock: Callable[[], float] = time.monotonic
    rounds: int = 0
    """Connects started so far (for tests and the log)."""
    _addresses: list[tuple[int, tuple[str, int]]] = field(default_factory=list)
    _resolved_at: float | None = None
    _next: int = 0

    def wait(
        self, stop: threading.Event, limit: float, on_silence: Callable[[], None] | None = None
    ) -> Answer:
        """Until the jump host answers (or refuses), ``limit`` seconds pass, or ``stop`` is set.
        ``on_silence`` is called once, when the first round went unanswered."""
        deadline = self.clock() + limit
        first = True
        while not stop.is_set():
            if not first and on_silence is not None:
                on_silence()
                on_silence = None
            first = False
            left = deadline - self.clock()
            if left <= 0:
                return Answer.WAITED
            round_end = self.clock() + min(self.interval, left)
            target = self._target()
            if target is not None:
                answer = self._connect_once(target, round_end, stop)
                if answer is not None:
                    return answer
            pause = round_end - self.clock()
            if pause > 0 and stop.wait(pause):
                break
        return Answer.STOPPED

    def forget_addresses(self) -> None:
        """Look the name up again at the next round (the network changed: another DNS, a VPN)."""
        self._resolved_at = None

    def _target(self) -> tuple[int, tuple[str, int]] | None:
        now = self.clock()
        if self._resolved_at is None or now - self._resolved_at > RESOLVE_AGAIN or not self._addresses:
            try:
                self._addresses = self.resolver(self.host, self.port)
            except (OSError, UnicodeError):
                self._addresses = []  # offline: no DNS either; the next round asks again
            self._resolved_at = now if self._addresses else None
        if not self._addresses:
            return None
        target = self._addresses[self._next % len(self._addresses)]
        self._next += 1  # several addresses (IPv4 and IPv6): take turns
        return target

    def _connect_once(
        self, target: tuple[int, tuple[str, int]], round_end: float, stop: threading.Event
    ) -> Answer | None:
        family, address = target
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            return None
        self.rounds += 1
        try:
            sock.setblocking(False)
            code = sock.connect_ex(address)
            if code == 0:
                return Answer.ANSWERED
            if code not in (
                errno.EINPROGRESS,
                errno.EWOULDBLOCK,
                errno.EAGAIN,
                getattr(errno, "WSAEWOULDBLOCK", -1),
            ):
                return _judge(code)
            while not stop.is_set():
                left = round_end - self.clock()
                if left <= 0:
                    return None  # no answer this round: this SYN is dropped, the next round sends a fresh one
                _, writable, failed = select.select([], [sock], [sock], min(left, 0.05))
                if writable or failed:
                    return _judge(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
            return Answer.STOPPED
        except OSError as exc:
            return _judge(exc.errno or 0)
        finally:
            sock.close()


_PENDING = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, getattr(errno, "WSAEWOULDBLOCK", -1))


def _judge(code: int) -> Answer | None:
    """An answer from a finished connect: accepted, refused by the host, or (no route, no network,
    unreachable) no answer at all."""
    if code == 0:
        return Answer.ANSWERED
    if code == errno.ECONNREFUSED:
        return Answer.REFUSED
    return None


@dataclass
class ChangeWatch:
    """Tells when the laptop slept or its network changed since the last look (each look costs a
    clock read and one ``getifaddrs``)."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    addresses: Callable[[], frozenset[str]] = field(default_factory=lambda: local_addresses)
    _last: tuple[float, float] | None = None
    _seen: frozenset[str] | None = None
    _read_at: float | None = None

    def changed(self) -> str | None:
        """Why the path should be checked now ("resumed after 63 s", "network changed"), or None."""
        mono, wall = self.monotonic(), self.wall()
        why: str | None = None
        if self._last is not None:
            slept = (wall - self._last[1]) - (mono - self._last[0])
            if slept > SLEEP_JUMP:
                why = f"resumed after {slept:.0f} s asleep"
        self._last = (mono, wall)
        if self._read_at is not None and mono - self._read_at < ADDRESSES_EVERY:
            return why  # the clocks are read at every look; the addresses (a getifaddrs) less often
        self._read_at = mono
        seen = self.addresses()
        if self._seen is not None and seen != self._seen and why is None:
            why = "network changed"
        self._seen = seen
        return why


def local_addresses() -> frozenset[str]:
    """This laptop's addresses on interfaces that are up (loopback left out)."""
    import psutil  # only in the supervisor, never on the CLI's start path

    found: set[str] = set()
    stats = psutil.net_if_stats()
    for name, addrs in psutil.net_if_addrs().items():
        stat = stats.get(name)
        if stat is None or not stat.isup:
            continue
        for addr in addrs:
            if addr.family in (socket.AF_INET, socket.AF_INET6) and not addr.address.startswith(
                ("127.", "::1")
            ):
                found.add(f"{name}:{addr.address}")
    return frozenset(found)
