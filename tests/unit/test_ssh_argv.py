"""Every ssh command line we run, pinned word for word: the early login's master, the engine's masters,
control commands, shells and key check, and the doctor's quiet logins. One module builds them all
(core/tunnel/sshcmd); these say what each use gets, so moving that code cannot change what ssh sees."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from wa_onboard.core.profile import Profile
from wa_onboard.core.tunnel import sshfiles

PROFILE = Profile(user="bbadger", jump="best-tux.cae.wisc.edu", host="carproject-06.engr.wisc.edu:2222")


def _master(alias: str, marker: str, *tail: str) -> list[str]:
    return [
        "ssh", "-F", str(sshfiles.config_path()), "-N",
        "-o", "ControlMaster=yes", "-o", "ControlPersist=no",
        "-o", "PermitLocalCommand=yes", "-o", f"LocalCommand=echo {marker}",
        *tail, alias,
    ]  # fmt: skip


def test_the_master_argv(isolated_home: Path) -> None:
    from wa_onboard.core.tunnel import sshcmd

    config = str(sshfiles.config_path())
    assert sshcmd.master_argv("ssh", config, "wa-jump", "M", interactive=False) == _master(
        "wa-jump", "M", "-o", "BatchMode=yes"
    )
    assert sshcmd.master_argv("ssh", config, "wa-jump", "M", interactive=True) == _master("wa-jump", "M")
    got = sshcmd.master_argv(
        "ssh",
        config,
        "wa-ws",
        "M",
        interactive=False,
        connect_timeout=3,
        extra=("-L", "127.0.0.1:1:localhost:2"),
    )
    assert got == _master(
        "wa-ws", "M", "-L", "127.0.0.1:1:localhost:2", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3"
    )


def test_the_engine_spawns_its_masters_with_that_argv(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wa_onboard.core.tunnel import sshcmd
    from wa_onboard.core.tunnel.engines import openssh

    spawned: list[list[str]] = []
    monkeypatch.setattr(sshcmd, "spawn_master", lambda argv: spawned.append(argv))
    engine = openssh.OpenSshEngine(PROFILE, connect_timeout=3)
    engine._spawn(engine.ws_hop, False, "M", ["-L", "127.0.0.1:1:localhost:2"])
    engine._spawn(engine.jump_hop, True, "N", [])
    assert spawned == [
        _master(
            "wa-ws", "M", "-L", "127.0.0.1:1:localhost:2", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3"
        ),
        _master("wa-jump", "N", "-o", "ConnectTimeout=3"),
    ]


def _runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, Any]]]:
    seen: list[tuple[list[str], dict[str, Any]]] = []

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append((list(argv), kwargs))
        return subprocess.CompletedProcess(argv, 0, "", "Master running (pid=4242)\n")

    monkeypatch.setattr(subprocess, "run", run)
    return seen


def test_the_engines_control_shell_and_key_commands(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wa_onboard.core import paths
    from wa_onboard.core.tunnel.engines.openssh import OpenSshEngine

    engine = OpenSshEngine(PROFILE, ssh="/usr/bin/ssh")
    cfg = str(sshfiles.config_path())
    seen = _runs(monkeypatch)
    assert engine.master_pid(engine.ws_hop) == 4242
    assert engine.ping(1.0)
    engine.forward(8001, 8000)
    engine._reused = {"jump", "ws"}
    assert engine.key_logs_in()
    shell = ["/usr/bin/ssh", "-F", cfg, "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-T"]
    key = [
        "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes", "-o", "PreferredAuthentications=publickey",
        "-i", str(paths.key_file()), "-T",
    ]  # fmt: skip
    assert [argv for argv, _ in seen] == [
        ["/usr/bin/ssh", "-F", cfg, "-O", "check", "wa-ws"],
        [*shell, "wa-ws", "true"],
        ["/usr/bin/ssh", "-F", cfg, "-O", "forward", "-L", "127.0.0.1:8001:localhost:8000", "wa-ws"],
        ["/usr/bin/ssh", "-F", cfg, *key, "wa-jump", "true"],
        ["/usr/bin/ssh", "-F", cfg, *key, "wa-ws", "true"],
    ]
    assert all("env" not in kwargs for _, kwargs in seen)  # the member's own environment
    assert engine.workstation().argv == [*shell, "wa-ws", "exec bash -l -s"]  # type: ignore[attr-defined]
    assert engine.jump().argv == [*shell, "wa-jump", "exec bash -l -s"]  # type: ignore[attr-defined]


def test_the_login_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from wa_onboard.core.tunnel import sshcmd

    monkeypatch.setenv("SSH_ASKPASS", "/bin/askpass")
    monkeypatch.setenv("SSH_ASKPASS_REQUIRE", "force")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("SHELL", "/bin/zsh")
    env = sshcmd.login_env()
    assert "SSH_ASKPASS" not in env and "SSH_ASKPASS_REQUIRE" not in env
    assert env["SHELL"] == "/bin/sh" and env["LC_ALL"] == "C" and env["DISPLAY"] == ":0"
    quiet = sshcmd.quiet_env()
    assert "SSH_ASKPASS" not in quiet and "DISPLAY" not in quiet
    assert quiet["SSH_ASKPASS_REQUIRE"] == "never" and quiet["SHELL"] == "/bin/zsh"


def _doctor_opts(fresh: bool) -> list[str]:
    opts = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=8", "-o", "ControlMaster=no"]
    return [*opts, "-o", "ControlPath=none"] if fresh else opts


@pytest.mark.parametrize("fresh", [True, False])
def test_the_doctors_commands(isolated_home: Path, monkeypatch: pytest.MonkeyPatch, fresh: bool) -> None:
    from wa_onboard.core.tunnel import sshclient

    cfg = str(sshfiles.config_path())
    assert sshclient.ssh_argv("work", "jump", fresh=fresh) == [
        "ssh",
        "-F",
        cfg,
        *_doctor_opts(fresh),
        "wa-work-jump",
    ]
    proxy = f"ssh -F {cfg} {' '.join(_doctor_opts(fresh))} -W '[%h]:%p' wa-work-jump"
    assert sshclient.ssh_argv("work", "ws", fresh=fresh) == [
        "ssh", "-F", cfg, *_doctor_opts(fresh), "-o", "ProxyJump=none", "-o", f"ProxyCommand={proxy}", "wa-work-ws"
    ]  # fmt: skip
    seen = _runs(monkeypatch)
    assert sshclient.master_alive("default")
    sshclient.effective_options("default", "ws")
    assert [argv for argv, _ in seen] == [
        ["ssh", "-F", cfg, "-O", "check", "wa-ws"],
        ["ssh", "-G", "-F", cfg, "wa-ws"],
    ]
    for _, kwargs in seen:
        assert kwargs["env"]["SSH_ASKPASS_REQUIRE"] == "never" and kwargs["stdin"] == subprocess.DEVNULL
