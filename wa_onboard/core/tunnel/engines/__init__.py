"""The SSH engines: the contract (base), OpenSSH (openssh, with transcript: its logins read), paramiko
(paramiko, paramiko_auth, paramiko_channels), and :func:`make_engine`, which picks one for a profile.

Only the engine a profile names is imported (paramiko costs ~100 ms, and a Windows laptop never runs
the OpenSSH engine).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from wa_onboard.core.tunnel.engines.base import (
    INSTALL_SSH_HINT,
    ConnectError,
    Engine,
    Failure,
    Hop,
    hops,
)
from wa_onboard.core.tunnel.engines.transcript import classify

if TYPE_CHECKING:
    from wa_onboard.core.profile import Profile

__all__ = [
    "INSTALL_SSH_HINT",
    "RECONNECT_CONNECT_TIMEOUT",
    "ConnectError",
    "Engine",
    "Failure",
    "Hop",
    "classify",
    "hops",
    "make_engine",
]

RECONNECT_CONNECT_TIMEOUT = 3
"""Seconds per TCP connect while reconnecting: a fresh SYN soon after the network returns."""


def make_engine(profile: Profile, profile_name: str, *, reconnecting: bool = False) -> Engine:
    """The engine the profile names; a reconnect uses a short connect timeout."""
    timeout = RECONNECT_CONNECT_TIMEOUT if reconnecting else None
    if profile.engine == "paramiko":
        module = importlib.import_module("wa_onboard.core.tunnel.engines.paramiko")  # only when chosen
        engine: Engine = module.ParamikoEngine(profile, profile_name, connect_timeout=timeout)
        return engine
    from wa_onboard.core.tunnel.engines.openssh import OpenSshEngine

    return OpenSshEngine(profile, profile_name, connect_timeout=timeout)
