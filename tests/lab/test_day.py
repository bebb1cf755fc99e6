"""A laptop's day against the real lab: the network going and coming back, the servers restarting.

Each case has a bound only against a hang (speed is measured, against autossh, by
tests/bench/bench_recovery.py); what is checked is what the member sees: the tunnel comes back on
its own, ``status`` says what is happening meanwhile, and nothing reconnects that need not.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from lab import Lab, Member
from lab_helpers import authorize_key, connect_args, laptop_get, wa

PORT = 18000


@pytest.fixture
def tunnel(lab: Lab, member: Member, laptop_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A member's background tunnel, up (key login), both engines; stopped at the end."""
    authorize_key(laptop_home, member, monkeypatch)

    def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return wa(lab, laptop_home, *args, timeout=timeout)

    def up(engine: str = "openssh") -> None:
        r = cli(*connect_args(lab, member, "--detach", "--local-port", str(PORT), engine=engine))
        assert r.returncode == 0, r.stderr

    cli.up = up  # type: ignore[attr-defined]
    yield cli
    cli("disconnect", timeout=60)


def _status(cli: Any) -> dict[str, Any]:
    return json.loads(cli("status", "--json").stdout)


def _until(what: str, check: Any, limit: float) -> float:
    """Seconds until ``check()`` is true (fails the test after ``limit``)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {limit} s")


@pytest.mark.parametrize("engine", ["openssh", "paramiko"])
def test_back_soon_after_the_network_returns(lab: Lab, tunnel: Any, engine: str) -> None:
    tunnel.up(engine)
    lab.link_down("laptop-jump")
    try:
        _until(
            "status says it waits for the network",
            lambda: "waiting for the network" in tunnel("status").stdout,
            30,
        )
        during = _status(tunnel)
        assert during["state"] == "reconnecting" and not during["connected"], during
    finally:
        lab.link_up("laptop-jump")
    took = _until("the hub answers through the tunnel again", lambda: laptop_get(lab, PORT) == 200, 15)
    print(f"{engine}: the hub answered {took:.2f} s after the link came back")
    after = _status(tunnel)
    assert after["connected"] and after["reconnects"] >= 1, after


@pytest.mark.parametrize("host", ["ws", "jump"])
def test_an_sshd_restarting_is_survived(lab: Lab, tunnel: Any, host: str) -> None:
    """The workstation's (our master dies with its session) or the jump host's sshd restarts; while
    it is away the jump host refuses or the login fails, which the backoff paces (not hammered)."""
    tunnel.up()
    lab.stop_sshd(host, kill_sessions=True)
    try:
        _until("the tunnel notices", lambda: not _status(tunnel)["connected"], 30)
        time.sleep(3)
    finally:
        lab.start_sshd(host)
    _until("the tunnel is back", lambda: laptop_get(lab, PORT) == 200, 30)
    assert _status(tunnel)["reconnects"] >= 1


def test_a_hub_restart_keeps_the_tunnel_and_says_hub_down(lab: Lab, tunnel: Any) -> None:
    tunnel.up()
    before = _status(tunnel)
    lab.stop_hub(keep_proxy=True)  # the proxy answers 503 for the hub, as during a restart
    try:
        _until("status says the hub is down", lambda: not _status(tunnel)["connected"], 30)
        down = tunnel("status").stdout
        assert "hub" in down.lower(), down
    finally:
        lab.start_hub()
    _until("status says connected again", lambda: _status(tunnel)["connected"], 30)
    after = _status(tunnel)
    assert after["reconnects"] == before["reconnects"], "ssh was fine: no reconnect churn"
    assert after["pid"] == before["pid"]


def test_a_second_connect_says_where_the_first_is(lab: Lab, member: Member, tunnel: Any) -> None:
    tunnel.up()
    first = _status(tunnel)
    again = tunnel(*connect_args(lab, member, "--detach"))
    assert again.returncode == 0, again.stderr
    text = again.stdout + again.stderr
    assert str(first["pid"]) in text or first["url"] in text, text
    assert _status(tunnel)["pid"] == first["pid"], "one supervisor per profile"
