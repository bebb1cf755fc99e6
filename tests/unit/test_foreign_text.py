"""What a server on the local port says about its version is shown as letters and digits only: that
server may be another user's program, and its words must not reach a terminal (escape codes) or the app
(markup)."""

from __future__ import annotations

import socket
import threading

from wa_onboard.core.tunnel import probe as probes


def _serve_once(answer: bytes) -> int:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def run() -> None:
        conn, _ = server.accept()
        with conn, server:
            conn.recv(65536)
            conn.sendall(answer)

    threading.Thread(target=run, daemon=True).start()
    return int(server.getsockname()[1])


def test_a_hub_version_header_cannot_carry_escape_codes_or_markup() -> None:
    header = b"X-JupyterHub-Version: 5.2.1\x1b]0;owned\x07\x1b[2J[/][link=http://x]\r\n"
    port = _serve_once(b"HTTP/1.0 200 OK\r\n" + header + b"Content-Length: 0\r\n\r\n")
    probe = probes.probe_hub(port, "/jupyter", timeout=5)
    assert probe.ok
    assert probe.version == "5.2.10owned2Jlinkhttpx"  # letters and digits only: harmless, still visible


def test_the_hub_api_version_is_cleaned_too() -> None:
    body = b'{"version": "5\\u001b[31m.2 [/]"}'
    answer = b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    port = _serve_once(answer)
    assert probes.hub_version(port, "/jupyter", timeout=5) == "531m.2"
