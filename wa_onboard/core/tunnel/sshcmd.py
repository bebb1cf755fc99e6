"""Every ssh command line wa-onboard runs, and the environment it runs in: built here and nowhere else.

Who runs which: the early login (tunnel/prestart) and the OpenSSH engine start control masters
(:func:`master_argv`, :func:`login_env`, :func:`spawn_master`; the early one is handed over as a
:class:`Prestarted`); the engine talks to them (:func:`control_argv`), runs shells on
them (:func:`shell_argv`) and proves the key (:func:`key_check_argv`); our ssh_config's ProxyCommand and
the doctor's quiet logins (:func:`quiet_argv`, :func:`quiet_env`) replace ProxyJump
(:func:`proxy_command`). Each function returns the argv word for word as ssh gets it.

A leaf that the early login imports first thing: only ``os`` and ``places`` at the top (no typing,
dataclasses or pathlib).
"""

from __future__ import annotations

import os

from wa_onboard.core.places import DEFAULT_PROFILE

TYPE_CHECKING = False  # typing costs ~15 ms to import on the early path
if TYPE_CHECKING:
    from typing import Any

INSTALL_SSH_HINT = (
    "install the OpenSSH client (Debian/Ubuntu: sudo apt install openssh-client; Fedora: sudo dnf install "
    "openssh-clients; macOS has it), or use --engine paramiko"
)
"""What to do without an ``ssh`` on PATH: every command that needs one says the same."""
DOCTOR_CONNECT_TIMEOUT = 8
"""Seconds per TCP connect for the doctor's logins."""


def alias_names(profile_name: str = DEFAULT_PROFILE) -> tuple[str, str]:
    """(jump, workstation): the Host names a profile gets in our ssh_config."""
    if profile_name == DEFAULT_PROFILE:
        return "wa-jump", "wa-ws"
    return f"wa-{profile_name}-jump", f"wa-{profile_name}-ws"


# --- the OpenSSH engine's commands (and the early login's master) ------------------------------------


def master_argv(
    ssh: str,
    config: str,
    alias: str,
    marker: str,
    *,
    interactive: bool,
    connect_timeout: int | None = None,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """A control master in the foreground (``-N``), its login over once ``marker`` is printed."""
    argv = [ssh, "-F", config, "-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no"]
    argv += ["-o", "PermitLocalCommand=yes", "-o", f"LocalCommand=echo {marker}", *extra]
    if not interactive:
        argv += ["-o", "BatchMode=yes"]
    if connect_timeout is not None:
        argv += ["-o", f"ConnectTimeout={int(connect_timeout)}"]
    return [*argv, alias]


def new_marker() -> str:
    """What LocalCommand prints once a master listens (unguessable: a host cannot fake it)."""
    return f"__WA_ONBOARD_READY_{os.urandom(6).hex()}__"


def control_argv(ssh: str, config: str, alias: str, command: str, *extra: str) -> list[str]:
    """``ssh -O command``: talk to the master of ``alias`` (check, forward, cancel, exit)."""
    return [ssh, "-F", config, "-O", command, *extra, alias]


def shell_argv(ssh: str, config: str, alias: str) -> list[str]:
    """A command on ``alias`` over its live master: key only, never a master of its own."""
    return [ssh, "-F", config, "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-T", alias]


def key_check_argv(ssh: str, config: str, alias: str, key: str) -> list[str]:
    """A fresh login beside any master (no master, ``key`` only, no password): does the key log in?"""
    return [
        ssh, "-F", config,
        "-o", "ControlMaster=no",
        "-o", "ControlPath=none",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", "PreferredAuthentications=publickey",
        "-i", key,
        "-T",
        alias,
    ]  # fmt: skip


def login_env() -> dict[str, str]:
    """A login's environment: no askpass helper (prompts come to us), English messages to classify."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSH_ASKPASS")}
    env.update(SHELL="/bin/sh", LC_ALL="C")
    return env


def spawn_master(argv: list[str]) -> Any:
    """ssh on a pty of its own, which is its controlling terminal: when its supervisor dies (even
    by SIGKILL) the pty closes and the kernel hangs the master up, so no master outlives it."""
    import pexpect

    return pexpect.spawn(
        argv[0],
        argv[1:],
        env=login_env(),
        encoding="utf-8",
        codec_errors="replace",
        dimensions=(24, 500),
        echo=False,
    )


class Prestarted:
    """A jump master started before its supervisor knew its profile: the pexpect child, what it
    prints when logged in, its alias, and our ssh_config as ssh read it (the master is adopted only
    if the file is still the same)."""

    def __init__(self, child: Any, marker: str, alias: str, config: bytes) -> None:
        self.child = child
        self.marker = marker
        self.alias = alias
        self.config = config

    def discard(self) -> None:
        if self.child.isalive():
            self.child.close(force=True)


# --- the workstation's ProxyCommand, and the doctor's quiet logins ------------------------------------


def proxy_command(config: str, jump_alias: str, *options: str) -> str:
    """``ssh -F <config> [options] -W [%h]:%p <jump alias>``, every word quoted for the shell and
    %-escaped for ssh (the caller vouches for the words: tunnel/sshfiles.proxy_command)."""
    import shlex

    quoted = [shlex.quote(w).replace("%", "%%") for w in ("ssh", "-F", config, *options)]
    return " ".join([*quoted, "-W", "'[%h]:%p'", jump_alias])


def quiet_options(fresh: bool) -> list[str]:
    """What every doctor login carries, on both hops: never a prompt, never a master left behind;
    ``fresh``: a new login rather than riding a live master."""
    opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={DOCTOR_CONNECT_TIMEOUT}", "-o", "ControlMaster=no"]
    if fresh:
        opts += ["-o", "ControlPath=none"]
    return opts


def quiet_argv(config: str, alias: str, *, fresh: bool, proxy: str | None = None) -> list[str]:
    """``ssh -F <config> ... <alias>`` for the doctor; ``proxy`` (the workstation's hop, built with
    :func:`quiet_options`) replaces ProxyJump, since ``-o`` options never reach a jump hop."""
    argv = ["ssh", "-F", config, *quiet_options(fresh)]
    if proxy is not None:
        argv += ["-o", "ProxyJump=none", "-o", f"ProxyCommand={proxy}"]
    return [*argv, alias]


def effective_argv(config: str, alias: str) -> list[str]:
    """``ssh -G``: what ssh would really use for ``alias``."""
    return ["ssh", "-G", "-F", config, alias]


def quiet_env() -> dict[str, str]:
    """The environment for every ssh the doctor runs: nothing that could ask a person."""
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.pop("SSH_ASKPASS", None)
    env["SSH_ASKPASS_REQUIRE"] = "never"
    return env
