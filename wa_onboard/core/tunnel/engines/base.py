"""What an SSH engine offers the rest of the core, and how its failures are told apart.

Two engines implement this: OpenSSH (pexpect for the first, interactive login; a control master
that later commands and the forward ride on) and paramiko (two transports chained jump ->
workstation in-process, with our own forwarder), the fallback for Windows. Setup steps and the
supervisor see only :class:`Engine`; the features only one engine has (a round trip to the
workstation, the processes that hold the forward, adopting the jump login started at launch) are
declared here with defaults meaning "not supported", so callers call them plainly. The doctor also
runs ssh itself (tunnel/sshclient), since it must tell apart the layers an engine hides.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wa_onboard.core.errors import WaError
from wa_onboard.core.places import DEFAULT_PROFILE
from wa_onboard.core.prompts import Prompter
from wa_onboard.core.remote import RemoteShell
from wa_onboard.core.tunnel import sshcmd
from wa_onboard.core.tunnel.sshcmd import INSTALL_SSH_HINT as INSTALL_SSH_HINT

if TYPE_CHECKING:
    from wa_onboard.core.profile import Profile
    from wa_onboard.core.tunnel.sshcmd import Prestarted


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


class ConnectError(WaError):
    """A connection failed; ``failure`` says which layer, ``hint`` what to do."""

    def __init__(self, failure: Failure, message: str, hint: str = "", detail: str = "") -> None:
        super().__init__(message, hint)
        self.failure = failure
        self.detail = detail


@dataclass(frozen=True)
class Hop:
    """One leg of the path, as our ssh_config names it."""

    role: str
    """``jump`` or ``ws``."""
    alias: str
    """Its Host name in our ssh_config (``wa-jump``, ``wa-ws``)."""
    user: str
    host: str
    port: int

    @property
    def who(self) -> str:
        """``user@host``: how ssh and our prompts name the login."""
        return f"{self.user}@{self.host}"

    @property
    def noun(self) -> str:
        return "jump host" if self.role == "jump" else "workstation"

    @property
    def auth_failure(self) -> Failure:
        """What its refusal of a login is."""
        return Failure.JUMP_AUTH if self.role == "jump" else Failure.WS_AUTH


def hops(profile: Profile, profile_name: str = DEFAULT_PROFILE) -> tuple[Hop, Hop]:
    """(jump host, workstation) for a profile."""
    jump_alias, ws_alias = sshcmd.alias_names(profile_name)
    jump_host, jump_port = profile.jump_address
    ws_host, ws_port = profile.host_address
    return (
        Hop("jump", jump_alias, profile.user, jump_host, jump_port),
        Hop("ws", ws_alias, profile.user, ws_host, ws_port),
    )


class Engine:
    """An authenticated path laptop -> jump host -> workstation.

    Every engine implements the methods up to ``close``; the ones after it are features an engine
    may lack, with defaults that say so."""

    name: str

    def login(self, prompter: Prompter, *, interactive: bool, forward: tuple[int, int] | None = None) -> None:
        """Authenticate on both hops. With ``interactive=False`` only keys are tried (no prompt ever
        reaches a person), and a server that wants a password raises PASSWORD_NEEDED.
        ``forward`` (local, remote): also do ``forward()``, as part of the login where that is cheaper."""
        raise NotImplementedError

    def is_alive(self) -> bool:
        """The authenticated connection still stands (cheap: no new login)."""
        raise NotImplementedError

    def key_logs_in(self) -> bool:
        """This profile's key alone logs in to both hosts, proved by the login itself or by a fresh
        one: a connection this engine reused (a running tunnel's) proves nothing about the key."""
        raise NotImplementedError

    def workstation(self) -> RemoteShell:
        """Run scripts on the workstation over the live connection."""
        raise NotImplementedError

    def jump(self) -> RemoteShell:
        """Run scripts on the jump host (for installing the key there)."""
        raise NotImplementedError

    def forward(self, local_port: int, remote_port: int) -> None:
        """Forward 127.0.0.1:local_port to the workstation's localhost:remote_port."""
        raise NotImplementedError

    def close(self) -> None:
        """End the connection and every process or thread the engine started."""
        raise NotImplementedError

    # -- optional features ------------------------------------------------------------------------

    adopted_early: bool = False
    """Whether the login took over the jump master started at launch (see ``adopt``)."""

    def ping(self, timeout: float = 5.0) -> bool | None:
        """One round trip to the workstation within ``timeout``: is the path alive end to end? (The
        supervisor asks when a probe timed out, to tell a slow hub from a dead path.) None: this
        engine cannot tell."""
        return None

    def pids(self) -> set[int]:
        """Processes other than ours that may hold the forwarded port (none by default)."""
        return set()

    def adopt(self, prestarted: Prestarted) -> bool:
        """Take over a jump master started at launch (tunnel/prestart), for the next login to use if
        it is what that login would have started. False: this engine cannot, and the caller stops it."""
        return False
