"""The ``wa-onboard connect`` command line the lab tests give, pointed at the lab's hosts (one place, so
the engines' tests and the foreground test connect the same way)."""

from __future__ import annotations

from lab import Lab, Member


def connect_args(lab: Lab, member: Member, *extra: str, engine: str | None = None) -> list[str]:
    """``connect --yes --no-browser`` for this member through the lab's jump host to its hub; ``extra``
    adds flags (``--detach``, ``--no-tui``, ``--local-port N``)."""
    return [
        "connect",
        "--yes",
        "--no-browser",
        *(["--engine", engine] if engine else []),
        "--user",
        member.name,
        "--jump",
        lab.jump_host,
        "--host",
        lab.ws_host,
        "--remote-port",
        str(lab.hub_port),
        "--base-url",
        lab.base_url,
        *extra,
    ]


def members_own_master(alias: str = "wa-ws") -> list[str]:
    """What a member's ``ssh wa-ws`` through the Include amounts to: a master of their own on our
    config (foreground, ended by SIGTERM, which removes its control socket)."""
    from wa_onboard.core.tunnel import sshfiles

    config = str(sshfiles.config_path())
    return ["ssh", "-F", config, "-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no", alias]
