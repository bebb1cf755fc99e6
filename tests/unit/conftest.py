"""Fixtures of the unit tests."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.fake_workstation import Workstation, make_workstation
from wa_onboard.core.tunnel.reach import PathWatch


@pytest.fixture
def ws(tmp_path: Path) -> Workstation:
    """A workstation on this machine: a login bash with its own HOME and a fake conda."""
    return make_workstation(tmp_path)


@pytest.fixture
def open_path() -> Iterator[PathWatch]:
    """The way to the jump host, open: a loopback listener (accepting, so it never fills up) that
    a supervisor's path watch reaches (the profile's real campus jump host is never contacted)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                server.accept()[0].close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield PathWatch("127.0.0.1", server.getsockname()[1])
    stop.set()
    thread.join(2)
    server.close()
