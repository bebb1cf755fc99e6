"""Network probes from the laptop: TCP + SSH banner, and a websocket handshake through the tunnel.
Plain sockets, so each answer is exactly what came over the wire. (The hub's health through the
tunnel and who holds a local port are the supervisor's own probes: core.tunnel.)"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import struct
from dataclasses import dataclass

from wa_onboard.core.doctor.facts import HttpAnswer

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(frozen=True)
class TcpAnswer:
    address: str
    banner: str
    """The first line the server sent (``SSH-2.0-OpenSSH_9.2p1 ...``), or "" when it sent none."""


def _read_until(sock: socket.socket, end: bytes, limit: int, tolerate: type[OSError]) -> bytes:
    """What the peer sends until ``end`` (or EOF, or ``limit`` bytes); ``tolerate`` ends it quietly."""
    data = b""
    try:
        while end not in data and len(data) < limit:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except tolerate:
        pass
    return data


def tcp_banner(host: str, port: int, timeout: float) -> TcpAnswer:
    """Connect and read the server's first line; raises OSError (refused, unreachable, timeout)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        address = sock.getpeername()[0]
        # connected, but no banner in time (or a reset): the banner check says so
        data = _read_until(sock, b"\n", 1024, OSError)
    first = data.split(b"\n", 1)[0].decode("latin-1").strip()
    return TcpAnswer(str(address), first)


class NoAnswer(OSError):
    """The connection was accepted and then closed or reset without an HTTP answer."""


@dataclass(frozen=True)
class WebsocketAnswer:
    status: int
    headers: dict[str, str]
    accept_ok: bool
    """101 came with the right Sec-WebSocket-Accept for our key."""
    echoed_close: bool
    """After a 101, our close frame got a close frame back: frames pass both ways."""


def websocket_handshake(port: int, path: str, timeout: float = 5.0) -> WebsocketAnswer:
    """Send an RFC 6455 opening handshake; on 101 also trade close frames.

    Raises NoAnswer when the upgrade request is reset or dropped without an answer, which is what a
    forward or proxy that cannot carry upgrades does.
    """
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://localhost:{port}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = _read_until(sock, b"\r\n\r\n", 65536, ConnectionResetError)
        answer = HttpAnswer.parse(data.decode("utf-8", "replace"))
        if answer is None:
            raise NoAnswer("the upgrade request was closed without an HTTP answer")
        expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()  # noqa: S324 - RFC 6455
        accept_ok = answer.status == 101 and answer.headers.get("sec-websocket-accept") == expected
        echoed = False
        if accept_ok:
            mask = secrets.token_bytes(4)
            payload = struct.pack("!H", 1000)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            sock.sendall(bytes([0x88, 0x80 | len(payload)]) + mask + masked)
            try:
                reply = sock.recv(2)
                echoed = len(reply) >= 1 and reply[0] & 0x0F == 0x8
            except OSError:
                echoed = False
    return WebsocketAnswer(answer.status, dict(answer.headers), accept_ok, echoed)
