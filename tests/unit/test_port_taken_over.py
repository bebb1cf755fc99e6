"""The forward dies and another program takes its port at once (another local user's fake login page
polls for it): the supervisor must not go on saying "connected" because something answers there.

A dead forward frees the port the same instant; the supervisor probes every 2 s, an attacker's bind
loop every few ms. Before this test the supervisor trusted any 2xx on the port, never looked at its
own connection again, and `status` said connected (with the impostor's hub version) for good.
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from wa_onboard.core.profile import Profile
from wa_onboard.core.results import TunnelState, TunnelStatus
from wa_onboard.core.tunnel import supervisor as supervisor_module
from wa_onboard.core.tunnel.engines import Engine
from wa_onboard.core.tunnel.reach import PathWatch
from wa_onboard.core.tunnel.supervisor import Backoff, Supervisor


class _Hub(BaseHTTPRequestHandler):
    version = "5.2.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("X-JupyterHub-Version", self.version)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _Impostor(_Hub):
    version = "6.6.6"


def _serve(port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _Engine(Engine):
    """A forward that is a local server standing in for the hub; ``die()`` is the master's end."""

    name = "fake"

    def __init__(self) -> None:
        self.server: ThreadingHTTPServer | None = None
        self.alive = False

    def login(self, prompter: Any, *, interactive: bool, forward: tuple[int, int] | None = None) -> None:
        self.alive = True
        if forward:
            self.forward(*forward)

    def forward(self, local_port: int, remote_port: int) -> None:
        self.server = _serve(local_port, _Hub)

    def is_alive(self) -> bool:
        return self.alive

    def die(self) -> None:
        self.alive = False
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def close(self) -> None:
        self.die()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_impostor_on_the_port_of_a_dead_forward_is_not_connected(
    monkeypatch: pytest.MonkeyPatch, open_path: PathWatch
) -> None:
    port = _free_port()
    # the forward's death and the impostor's bind happen between two probes (as with an attacker's bind
    # loop): no probe may run in between, or the supervisor reconnects onto the port first
    gate = threading.Lock()
    real_probe = supervisor_module.probe_hub

    def gated_probe(*args: Any, **kwargs: Any) -> Any:
        with gate:
            return real_probe(*args, **kwargs)

    monkeypatch.setattr(supervisor_module, "probe_hub", gated_probe)
    engines: list[_Engine] = []

    def factory(reconnecting: bool) -> _Engine:
        engines.append(_Engine())
        return engines[-1]

    seen: list[TunnelStatus] = []
    supervisor = Supervisor(
        Profile(user="bbadger", local_port=port),
        engine_factory=factory,  # type: ignore[arg-type]
        on_status=seen.append,
        probe_interval=0.2,
        backoff=Backoff(base=0.05, cap=0.1),
        record_state=False,
        path_watch=open_path,
    )
    supervisor.start()
    stop = threading.Event()
    watcher = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
    watcher.start()
    impostor: ThreadingHTTPServer | None = None
    try:
        time.sleep(0.3)
        with gate:
            engines[0].die()
            impostor = _serve(port, _Impostor)  # takes the port before the next probe
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(engines) < 2:
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join(10)
        supervisor.stop_engine()
        if impostor is not None:
            impostor.shutdown()
            impostor.server_close()
    assert len(engines) == 2, "the supervisor never noticed its connection was gone"
    assert any(s.state is TunnelState.RECONNECTING for s in seen)
    assert all(s.hub_version != "6.6.6" for s in seen)
