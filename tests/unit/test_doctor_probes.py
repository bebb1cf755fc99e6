"""The laptop-side probes against small local servers: an SSH greeting (or silence), and the websocket check's
three outcomes: a real 101 with frames both ways, an answer stamped by JupyterHub, and a drop without answer."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from wa_onboard.core.doctor import checks_tunnel
from wa_onboard.core.doctor.context import DoctorContext
from wa_onboard.core.profile import Profile
from wa_onboard.core.results import CheckStatus
from wa_onboard.core.tunnel import probe as probes

Handler = Callable[[socket.socket], None]


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], int]]:
    servers: list[socket.socket] = []

    def start(handler: Handler) -> int:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        servers.append(srv)

        def loop() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                with conn:
                    handler(conn)

        threading.Thread(target=loop, daemon=True).start()
        return int(srv.getsockname()[1])

    yield start
    for srv in servers:
        srv.close()


def test_banner_and_silence(serve: Callable[[Handler], int]) -> None:
    port = serve(lambda c: c.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"))
    assert probes.tcp_banner("127.0.0.1", port, 2).banner == "SSH-2.0-OpenSSH_9.2p1 Debian-2"
    port = serve(lambda c: c.recv(10))  # accepts, says nothing, closes
    assert probes.tcp_banner("127.0.0.1", port, 0.5).banner == ""


def request_of(conn: socket.socket) -> dict[str, str]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(4096)
    lines = data.decode().split("\r\n")[1:]
    return {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ":" in ln)}


def websocket_server(conn: socket.socket) -> None:
    key = request_of(conn)["sec-websocket-key"]
    accept = base64.b64encode(hashlib.sha1((key + probes.WS_GUID).encode()).digest()).decode()
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
    )
    frame = conn.recv(8)
    if frame[:1] == b"\x88":
        conn.sendall(b"\x88\x02\x03\xe8")  # close, 1000


def hub_redirect(conn: socket.socket) -> None:
    request_of(conn)
    conn.sendall(
        b"HTTP/1.1 302 Found\r\nLocation: /jupyter/hub/login\r\nX-JupyterHub-Version: 5.2.1\r\n"
        b"Content-Length: 0\r\n\r\n"
    )


def not_jupyterhub(conn: socket.socket) -> None:
    request_of(conn)
    conn.sendall(b"HTTP/1.0 404 File not found\r\nServer: SimpleHTTP/0.6\r\n\r\n")


def drop(conn: socket.socket) -> None:
    request_of(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close


def websocket_check(port: int) -> tuple[CheckStatus, str]:
    ctx = DoctorContext()
    ctx.set_profile(Profile(user="bbadger", local_port=port))
    outcome = checks_tunnel.websocket(ctx)
    return outcome.status, outcome.summary


def test_websocket_outcomes(serve: Callable[[Handler], int]) -> None:
    answer = probes.websocket_handshake(serve(websocket_server), "/x")
    assert answer.status == 101 and answer.accept_ok and answer.echoed_close
    assert websocket_check(serve(websocket_server)) == (
        CheckStatus.OK,
        "websocket upgrade: 101, and frames pass both ways",
    )
    status, summary = websocket_check(serve(hub_redirect))
    assert status is CheckStatus.OK and "reaches JupyterHub" in summary and "302" in summary
    status, summary = websocket_check(serve(not_jupyterhub))
    assert status is CheckStatus.FAIL and "something that is not JupyterHub" in summary
    with pytest.raises(probes.NoAnswer):
        probes.websocket_handshake(serve(drop), "/x")
    status, summary = websocket_check(serve(drop))
    assert status is CheckStatus.FAIL and "dropped without an answer" in summary


def request_line(conn: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(4096)
    return data.split(b"\r\n", 1)[0].decode()


def lab_open(conn: socket.socket) -> None:
    """What the lab's JupyterHub 6.1 + jupyter_server 2 answered with bbadger's server running (seen with
    tests/lab): the kernel channels 403 without the hub's stamp, the event bus 403 with it."""
    path = request_line(conn).split()[1]
    stamp = b"" if path.endswith("/channels") else b"X-JupyterHub-Version: 6.1.1\r\n"
    conn.sendall(
        b"HTTP/1.1 403 Forbidden\r\nServer: TornadoServer/6.6.1\r\n" + stamp
        + b"Content-Security-Policy: frame-ancestors 'none'\r\nContent-Length: 0\r\n\r\n"
    )  # fmt: skip


def lab_stopped(conn: socket.socket) -> None:
    """The same URLs with no server running: the hub answers them itself, stamped, redirecting into /hub/."""
    path = request_line(conn).split()[1]
    conn.sendall(
        f"HTTP/1.1 302 Found\r\nX-JupyterHub-Version: 6.1.1\r\nLocation: /jupyter/hub{path[len('/jupyter') :]}\r\n"
        "Content-Security-Policy: frame-ancestors 'none'; report-uri /jupyter/hub/security/csp-report\r\n"
        "Content-Length: 0\r\n\r\n".encode()
    )


def forbidden_unstamped(conn: socket.socket) -> None:
    """Another local server that refuses every upgrade, as jupyter_server's kernel channels do."""
    request_line(conn)
    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nServer: TornadoServer/6.6.1\r\nContent-Length: 0\r\n\r\n")


def test_websocket_passes_with_jupyterlab_open_and_closed_but_not_for_an_impostor(
    serve: Callable[[Handler], int],
) -> None:
    status, summary = websocket_check(serve(lab_open))
    assert status is CheckStatus.OK, summary
    assert summary.startswith("websocket upgrade reaches your running Jupyter server") and "403" in summary
    status, summary = websocket_check(serve(lab_stopped))
    assert status is CheckStatus.OK, summary
    assert summary.startswith("websocket upgrade reaches JupyterHub") and "302" in summary
    status, summary = websocket_check(serve(forbidden_unstamped))
    assert status is CheckStatus.FAIL and "403 by something that is not JupyterHub" in summary
