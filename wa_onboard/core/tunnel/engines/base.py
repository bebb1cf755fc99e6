"""What an SSH engine offers the rest of the core, and how its failures are told apart.

Two engines implement this: OpenSSH (pexpect for the first, interactive login; a control master
that later commands and the forward ride on) and paramiko (two transports chained jump ->
workstation in-process, with our own forwarder), the fallback for Windows. Setup steps and the
supervisor see only this; the doctor also runs ssh itself (core/doctor/sshcmd.py), since it must
tell apart the layers an engine hides.
"""

from __future__ import annotations

import enum
from typing import Protocol

from wa_onboard.core.errors import WaError
from wa_onboard.core.prompts import Prompter
from wa_onboard.core.remote import RemoteShell


class Failure(str, enum.Enum):
    """Which layer broke. Each one gets its own message and hint."""

    JUMP_UNKNOWN = "jump-unknown"
    """The jump host's name does not resolve."""
    JUMP_UNREACHABLE = "jump-unreachable"
    """No TCP connection to the jump host (offline, firewall, VPN needed)."""
    JUMP_AUTH = "jump-auth"
    """The jump host refused the key/password/code."""
    WS_UNREACHABLE = "ws-unreachable"
    """The jump host could not open a connection to the workstation (down, sshd stopped)."""
    WS_AUTH = "ws-auth"
    """The workstation refused the key/password."""
    HOST_KEY_CHANGED = "host-key-changed"
    """A known host presented a different key: refused, never overwritten."""
    HOST_KEY_REJECTED = "host-key-rejected"
    """The member (or --yes's absence) did not trust a new host key."""
    PASSWORD_NEEDED = "password-needed"  # noqa: S105 - a failure kind, not a password
    """Key login failed where no prompt is allowed (daily connect, reconnect)."""
    PORT_BUSY = "port-busy"
    """The local port is held by another process."""
    PORT_PRIVILEGED = "port-privileged"
    """The system refuses us the local port itself (below 1024 only root may listen)."""
    TUNNEL_CLOSED = "tunnel-closed"
    """Nothing listens on the tunnel's local port any more (its ssh ended)."""
    SSH_MISSING = "ssh-missing"
    """No OpenSSH client on this laptop's PATH."""
    FORWARD_REFUSED = "forward-refused"
    """Nothing listens on the workstation's hub port."""
    HUB_UNAVAILABLE = "hub-unavailable"
    """The proxy answers 503: the hub process is down."""
    HUB_WRONG_URL = "hub-wrong-url"
    """404 for the health URL: the base URL is wrong."""
    TIMEOUT = "timeout"
    OTHER = "other"


INSTALL_SSH_HINT = (
    "install the OpenSSH client (Debian/Ubuntu: sudo apt install openssh-client; Fedora: sudo dnf install "
    "openssh-clients; macOS has it), or use --engine paramiko"
)
"""What to do without an ``ssh`` on PATH: every command that needs one says the same."""


class ConnectError(WaError):
    """A connection failed; ``failure`` says which layer, ``hint`` what to do."""

    def __init__(self, failure: Failure, message: str, hint: str = "", detail: str = "") -> None:
        super().__init__(message, hint)
        self.failure = failure
        self.detail = detail


class Engine(Protocol):
    """An authenticated path laptop -> jump host -> workstation."""

    name: str

    def login(self, prompter: Prompter, *, interactive: bool, forward: tuple[int, int] | None = None) -> None:
        """Authenticate on both hops. With ``interactive=False`` only keys are tried (no prompt ever
        reaches a person), and a server that wants a password raises PASSWORD_NEEDED.
        ``forward`` (local, remote): also do ``forward()``, as part of the login where that is cheaper."""
        ...

    def is_alive(self) -> bool:
        """The authenticated connection still stands (cheap: no new login)."""
        ...

    def key_logs_in(self) -> bool:
        """This profile's key alone logs in to both hosts, proved by the login itself or by a fresh
        one: a connection this engine reused (a running tunnel's) proves nothing about the key."""
        ...

    def workstation(self) -> RemoteShell:
        """Run scripts on the workstation over the live connection."""
        ...

    def jump(self) -> RemoteShell:
        """Run scripts on the jump host (for installing the key there)."""
        ...

    def forward(self, local_port: int, remote_port: int) -> None:
        """Forward 127.0.0.1:local_port to the workstation's localhost:remote_port."""
        ...

    def close(self) -> None:
        """End the connection and every process or thread the engine started."""
        ...
