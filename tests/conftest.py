"""Every test gets its own HOME and XDG dirs, so nothing touches the real member's files."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

LAB_DIR = Path(__file__).resolve().parent / "lab"


@pytest.fixture(autouse=True)
def isolated_home(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    home.chmod(0o700)
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "WA_ONBOARD_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BROWSER", "true")  # never open a real browser from a test
    assert os.environ["HOME"] == str(home)
    runtime = None
    if LAB_DIR not in Path(str(request.node.path)).resolve().parents:
        # pytest's HOME is too long for a socket path, so control sockets would go to the shared
        # /tmp/wa-onboard-UID, where a lab run's live masters are: a short runtime dir of the test's own.
        runtime = tempfile.mkdtemp(prefix="wa-rt-", dir="/tmp" if Path("/tmp").is_dir() else None)
        monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    yield home
    if runtime is not None:
        shutil.rmtree(runtime, ignore_errors=True)


def _local(host: object) -> bool:
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_way_out(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the lab (which has namespaces with no route out), a test reaches loopback only: a name
    that is not local does not resolve and an address that is not local is unreachable, as on a
    laptop with no network. (The product's defaults name real campus hosts; no test may touch them.)"""
    if LAB_DIR in Path(str(request.node.path)).resolve().parents:
        return
    real_getaddrinfo = socket.getaddrinfo
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if not _local(host):
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: no network in unit tests")
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    def allowed(address: object) -> bool:
        return not isinstance(address, tuple) or _local(address[0])

    def connect(self: socket.socket, address: object) -> None:
        if not allowed(address):
            raise OSError(101, "Network is unreachable (unit tests reach loopback only)")
        real_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        return real_connect_ex(self, address) if allowed(address) else 101  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
