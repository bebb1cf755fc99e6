"""What the paramiko engine carries over its workstation transport: the tunnel channel as a socket for
that transport, remote scripts (:class:`ChannelShell`), and the port forward (:class:`Forward`: a thread
per direction per connection, bound to 127.0.0.1 only).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import threading
import time

import paramiko

from wa_onboard.core.remote import REMOTE_COMMAND, LineCallback, MarkerParser, RemoteResult, Wrapped, wrap
from wa_onboard.core.tunnel.engines.base import ConnectError, Failure

log = logging.getLogger("wa_onboard.core.tunnel.engines.paramiko")

READ_ALL = 1 << 30
"""Read size that takes everything a channel holds: paramiko's channel buffer moves whatever it still
holds after every partial read, so small reads from a full buffer cost O(buffered bytes) each."""
CHANNEL_ERRORS = (paramiko.SSHException, EOFError, OSError)
"""What a broken channel or transport raises."""


class ChannelSocket:
    """The tunnel channel as the workstation transport's socket, read in big gulps.

    paramiko's packetizer reads each packet in two small pieces (its first block, then the rest);
    straight from a Channel each piece would cost a move of everything still buffered behind it."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self._pending = b""
        self._offset = 0

    def recv(self, size: int) -> bytes:
        if self._offset >= len(self._pending):
            self._pending, self._offset = self.channel.recv(READ_ALL), 0  # may raise socket.timeout
        start, self._offset = self._offset, min(self._offset + size, len(self._pending))
        return self._pending[start : self._offset]

    def send(self, data: bytes) -> int:
        sent: int = self.channel.send(data)
        return sent

    def settimeout(self, timeout: float | None) -> None:
        self.channel.settimeout(timeout)

    def close(self) -> None:
        self.channel.close()

    @property
    def _closed(self) -> bool:
        """What paramiko's Transport.stop_thread looks at on a real socket."""
        return bool(self.channel.closed)


class ChannelShell:
    """A RemoteShell over an authenticated transport: ``exec bash -l -s`` with the script on stdin."""

    def __init__(self, transport: paramiko.Transport, hop: str) -> None:
        self.transport = transport
        self.hop = hop

    def run(self, script: str, *, timeout: float = 60.0, on_line: LineCallback | None = None) -> RemoteResult:
        """Every wait is bounded by ``timeout``: opening the channel, the server's answer to exec
        (paramiko waits for it without a limit), the output and the exit status. When time is up the
        channel is closed, which wakes whatever waits on it."""
        wrapped = wrap(script)
        parser = MarkerParser(wrapped, on_line)
        started = time.monotonic()
        expired = threading.Event()
        opened: list[paramiko.Channel] = []
        guard = threading.Lock()

        def expire() -> None:
            with guard:
                expired.set()
                channels = list(opened)
            for channel in channels:
                with contextlib.suppress(*CHANNEL_ERRORS):  # the connection may be gone already
                    channel.close()

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            return self._run(wrapped, parser, opened, guard, expired, started, timeout)
        finally:
            timer.cancel()

    def _run(
        self,
        wrapped: Wrapped,
        parser: MarkerParser,
        opened: list[paramiko.Channel],
        guard: threading.Lock,
        expired: threading.Event,
        started: float,
        timeout: float,
    ) -> RemoteResult:
        try:
            channel = self.transport.open_session(timeout=timeout)
            with guard:
                opened.append(channel)
                late = expired.is_set()
            if late:
                channel.close()
            channel.exec_command(REMOTE_COMMAND)  # waits for the server's reply: the timer bounds it
        except CHANNEL_ERRORS as exc:
            if expired.is_set():
                return parser.result(-1, expired=True, stderr=f"{self.hop}: no answer", started=started)
            return RemoteResult(255, "", f"{self.hop}: {exc}", seconds=time.monotonic() - started)
        errors: list[bytes] = []
        err_reader = threading.Thread(
            target=lambda: errors.append(channel.makefile_stderr("rb").read()), daemon=True
        )
        err_reader.start()
        try:
            with contextlib.suppress(*CHANNEL_ERRORS):
                channel.sendall(wrapped.script.encode("utf-8"))
                channel.shutdown_write()
            with contextlib.suppress(*CHANNEL_ERRORS):
                for raw in channel.makefile("rb"):
                    parser.feed(raw.decode("utf-8", errors="replace"))
            code = channel.recv_exit_status()
        finally:
            channel.close()
        err_reader.join(timeout=5)
        stderr = b"".join(errors).decode("utf-8", errors="replace")
        return parser.result(code, expired=expired.is_set(), stderr=stderr, started=started)


class Forward:
    """127.0.0.1:port -> workstation localhost:remote_port, a thread per direction per connection."""

    def __init__(
        self, transport: paramiko.Transport, local_port: int, remote_port: int, chunk: int, timeout: float
    ) -> None:
        self.transport = transport
        self.remote_port = remote_port
        self.chunk = chunk
        self.timeout = timeout
        self.failure: ConnectError | None = None
        self.listener = listen(local_port)
        self.port: int = self.listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._open: set[tuple[socket.socket, paramiko.Channel | None]] = set()
        self._threads: set[threading.Thread] = set()
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, name=f"wa-forward-{self.port}", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            ready, _, _ = select.select([self.listener, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                sock, peer = self.listener.accept()
            except OSError:
                continue
            thread = threading.Thread(
                target=self._serve, args=(sock, peer), name="wa-forward-conn", daemon=True
            )
            with self._lock:
                if self._closed:
                    sock.close()
                    return
                self._threads.add(thread)
            thread.start()

    def _serve(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        entry: tuple[socket.socket, paramiko.Channel | None] = (sock, None)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.add(entry)
            try:
                channel = self.transport.open_channel(
                    "direct-tcpip", ("localhost", self.remote_port), peer[:2], timeout=self.timeout
                )
            except CHANNEL_ERRORS as exc:
                self.failure = _forward_failure(exc, self.remote_port)
                log.warning("forward to localhost:%d: %s", self.remote_port, exc)
                return
            channel.settimeout(None)
            with self._lock:
                self._open.discard(entry)
                entry = (sock, channel)
                self._open.add(entry)
                if self._closed:
                    return
            self.failure = None
            upstream = threading.Thread(
                target=self._upstream, args=(sock, channel), name="wa-forward-up", daemon=True
            )
            upstream.start()
            self._downstream(sock, channel)
            upstream.join()
        finally:
            with self._lock:
                self._open.discard(entry)
                self._threads.discard(threading.current_thread())
            if entry[1] is not None:
                entry[1].close()
            sock.close()

    def _upstream(self, sock: socket.socket, channel: paramiko.Channel) -> None:
        with contextlib.suppress(*CHANNEL_ERRORS):
            while data := sock.recv(self.chunk):
                channel.sendall(data)
            channel.shutdown_write()  # the browser half-closed: pass the EOF on, keep reading
            return
        channel.close()  # the local side broke: end both directions

    def _downstream(self, sock: socket.socket, channel: paramiko.Channel) -> None:
        with contextlib.suppress(*CHANNEL_ERRORS):
            while data := channel.recv(READ_ALL):
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the upstream thread

    def stop(self) -> None:
        """Stop listening and end every connection; ``join`` waits for their threads."""
        with self._lock:
            self._closed = True
            entries = list(self._open)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._acceptor.join(timeout=5)
        self.listener.close()
        for sock, channel in entries:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            if channel is not None:
                channel.close()

    def join(self) -> None:
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)
        self._wake_r.close()
        self._wake_w.close()


def listen(port: int) -> socket.socket:
    """Bind 127.0.0.1 only; a port held by someone else is PORT_BUSY (the supervisor names the holder)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.name == "nt":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined,unused-ignore]
    else:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only, never a live listener
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        busy = exc.errno in (errno.EADDRINUSE, errno.EACCES, getattr(errno, "WSAEADDRINUSE", -1))
        raise ConnectError(
            Failure.PORT_BUSY if busy else Failure.OTHER,
            f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
            "another program uses that port: stop it, or choose another with --local-port",
        ) from None
    return sock


def _forward_failure(exc: BaseException, remote_port: int) -> ConnectError:
    if isinstance(exc, paramiko.ChannelException) and exc.code == paramiko.common.OPEN_FAILED_CONNECT_FAILED:
        return ConnectError(
            Failure.FORWARD_REFUSED,
            f"nothing listens on the workstation's port {remote_port}: {exc.text}",
            "the hub is not running there (or on another port: --remote-port); tell the lab admins",
            detail=str(exc),
        )
    return ConnectError(
        Failure.OTHER,
        f"the workstation did not open the forward to its port {remote_port}: {exc}",
        "try `wa-onboard doctor`",
        detail=str(exc),
    )
