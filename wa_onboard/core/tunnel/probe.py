"""Probes from the laptop: the hub's health and version through the forward (plain HTTP on
127.0.0.1), a TCP connect with the SSH banner, and a websocket handshake through the tunnel.

The supervisor, ``status`` and the doctor ask the same questions with the same code. Plain sockets,
so each answer is exactly what came over the wire (and no urllib on the connect path).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wa_onboard.core.profile import Profile
from wa_onboard.core.tunnel.engines.base import Failure

# --- the hub through the forward ---------------------------------------------------------------


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


class NoAnswer(ConnectionResetError):
    """The connection was accepted and then closed or reset without an HTTP answer: what ssh's forward
    does when the far end refuses the channel, and what a forward or proxy that cannot carry upgrades
    does to a websocket's."""


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
            raise NoAnswer("no HTTP answer")
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


# --- the SSH banner and websocket upgrades (the doctor's) ----------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(frozen=True)
class HttpAnswer:
    """An HTTP answer as text: what a websocket upgrade got here, or what the doctor's workstation
    script fetched with bash there."""

    status: int
    headers: Mapping[str, str]
    body: str

    @classmethod
    def parse(cls, raw: str) -> HttpAnswer | None:
        head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        m = re.match(r"HTTP/\d(?:\.\d)?\s+(\d{3})", lines[0] if lines else "")
        if not m:
            return None
        headers = {}
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if sep:
                headers[k.strip().lower()] = v.strip()
        return cls(int(m.group(1)), headers, body)

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def from_jupyterhub(self) -> bool:
        """JupyterHub (hub or single-user server) stamps its answers with its version."""
        return "x-jupyterhub-version" in self.headers


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
