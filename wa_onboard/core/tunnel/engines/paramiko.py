"""The paramiko engine: laptop -> jump host -> workstation in-process, for Windows and ``--engine paramiko``.

Windows' OpenSSH has no control master and pexpect has no pty there, so this engine does the whole
path in Python: a paramiko Transport to the jump host, a ``direct-tcpip`` channel from it to the
workstation's sshd, and a second Transport over that channel (what ``ProxyJump`` does). The port
forward and remote scripts ride on the second transport.

Why not ``sshtunnel.SSHTunnelForwarder``: it authenticates by itself (keys, then one password given
up front) with no keyboard-interactive (MFA) callback and no first-use host-key question (without
``ssh_host_key`` it trusts any key), and chaining two forwarders routes every byte through an extra
loopback listener and a second Python copy loop. Its handler also reads 16 KiB at a time, drops
half-closed connections and never sets TCP_NODELAY. So this module authenticates the transports
itself (same key, known_hosts, prompts and failure kinds as the OpenSSH engine) and forwards on
paramiko channels with a thread per direction, sized so one chunk fits one packet on both hops.

Only this module imports paramiko; whoever selects the engine imports it lazily.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import paramiko

from wa_onboard.core import paths
from wa_onboard.core.errors import Cancelled
from wa_onboard.core.profile import DEFAULT_PROFILE, Profile
from wa_onboard.core.prompts import HostKeyQuestion, Prompter, SecretQuestion, secret_kind
from wa_onboard.core.remote import REMOTE_COMMAND, LineCallback, MarkerParser, RemoteResult, Wrapped, wrap
from wa_onboard.core.tunnel import hostkeys as known_hosts
from wa_onboard.core.tunnel.engines.base import ConnectError, Engine, Failure

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""Wrong password or code: ask again, this many times in all, then fail (never into a lockout)."""
WINDOW_SIZE = 16 * 1024 * 1024
"""Channel window we offer the servers: big enough that a fast link never waits for our acks."""
MAX_PACKET_SIZE = 256 * 1024
"""Largest packet we accept (OpenSSH's own limit); fewer, bigger packets cost less Python."""
PACKET_OVERHEAD = 160
"""Room for one SSH packet's framing, padding and MAC, so an inner packet fits one outer packet."""
READ_ALL = 1 << 30
"""Read size that takes everything a channel holds: paramiko's channel buffer moves whatever it still
holds after every partial read, so small reads from a full buffer cost O(buffered bytes) each."""
CIPHERS: tuple[str, ...] = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
"""Preferred before paramiko's own list: one C call per packet instead of a cipher pass plus a
Python HMAC (download ~1.5x faster in tests/bench/bench_paramiko.py). Servers without GCM get the rest."""
AUTH_TIMEOUT = 600.0
"""paramiko gives up on an unanswered prompt after 30 s; the server's LoginGraceTime decides instead."""
_KEY_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256")}
"""known_hosts key type -> the host-key algorithms that present such a key."""
_CHANNEL_ERRORS = (paramiko.SSHException, EOFError, OSError)


@dataclass(frozen=True)
class Hop:
    """One of the two logins on the way, and the failure kind its refusal maps to."""

    role: str
    user: str
    host: str
    port: int
    auth_failure: Failure

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}"


class AuthTransport(Protocol):
    """What authentication needs from a paramiko Transport (a fake in the unit tests)."""

    def auth_none(self, username: str) -> list[str]: ...

    def auth_publickey(self, username: str, key: Any) -> list[str]: ...

    def auth_password(self, username: str, password: str, fallback: bool = ...) -> list[str]: ...

    def auth_interactive(
        self, username: str, handler: Callable[[str, str, Sequence[tuple[str, bool]]], list[str]]
    ) -> list[str]: ...

    def is_authenticated(self) -> bool: ...

    def is_active(self) -> bool: ...


def authenticate(
    transport: AuthTransport, hop: Hop, key: Any, prompter: Prompter, *, interactive: bool
) -> None:
    """Key first; then the password and any other prompt (MFA), each answered through ``prompter``.

    Where the server offers keyboard-interactive, it carries the password too (PAM asks
    ``Password:`` and then, for MFA accounts, ``Verification code:``), so it goes before the
    ``password`` method, as in OpenSSH's default order: sshd answers every PAM prompt of the
    ``password`` method with the password, so on an MFA account that method can only fail, and
    each failure counts towards a lockout. A refused answer is asked again, at most MAX_ATTEMPTS
    times. Methods required after a partial success follow in the same loop. Without
    ``interactive`` only the key is tried.
    """
    try:
        allowed = list(transport.auth_none(hop.user))
    except paramiko.BadAuthenticationType as exc:
        allowed = list(exc.allowed_types)
    except paramiko.AuthenticationException:
        allowed = ["publickey", "password", "keyboard-interactive"]
    done: set[str] = set()
    while not transport.is_authenticated():
        if key is not None and "publickey" in allowed and "publickey" not in done:
            done.add("publickey")
            allowed = _try(lambda: transport.auth_publickey(hop.user, key), allowed)
            continue
        if not interactive:
            raise ConnectError(
                Failure.PASSWORD_NEEDED,
                f"{hop.label} did not accept the key and wants a password",
                "run `wa-onboard setup` once to log in with your password and install the key",
                detail=f"server offers: {', '.join(allowed) or 'nothing'}",
            )
        rounds = {"keyboard-interactive": _interactive_round, "password": _password_round}
        method = next((m for m in rounds if m in allowed and m not in done), None)
        if method is None:
            raise ConnectError(
                hop.auth_failure,
                f"{hop.label} refused every login method we have",
                "check your user name; ask the lab admins whether your account may log in there",
                detail=f"server offers: {', '.join(allowed) or 'nothing'}",
            )
        done.add(method)
        allowed = _ask_until_accepted(transport, hop, prompter, rounds[method](transport, hop))


def _try(attempt: Callable[[], list[str]], allowed: list[str]) -> list[str]:
    """One non-interactive attempt: the methods still open afterwards."""
    try:
        return list(attempt())
    except paramiko.BadAuthenticationType as exc:
        return list(exc.allowed_types)
    except paramiko.AuthenticationException:
        return allowed


Round = Callable[[Prompter, int], "list[str] | None"]
"""One try at a prompting method: the methods still open, or None when the member declined."""


def _password_round(transport: AuthTransport, hop: Hop) -> Round:
    def run(prompter: Prompter, attempt: int) -> list[str] | None:
        question = SecretQuestion(f"{hop.label}'s password:", hop.label, "password", attempt)
        answer = prompter.secret(question)
        if answer is None:
            return None
        return list(transport.auth_password(hop.user, answer, fallback=False))

    return run


def _interactive_round(transport: AuthTransport, hop: Hop) -> Round:
    def run(prompter: Prompter, attempt: int) -> list[str] | None:
        declined = False
        raised: list[BaseException] = []

        def handler(title: str, instructions: str, prompts: Sequence[tuple[str, bool]]) -> list[str]:
            """Runs on paramiko's thread: an exception here would kill the transport, so it waits."""
            nonlocal declined
            answers: list[str] = []
            for text, _echo in prompts:
                shown = f"{instructions.strip()}\n{text.rstrip()}" if instructions.strip() else text.rstrip()
                answer = None
                if not declined:
                    try:
                        answer = prompter.secret(SecretQuestion(shown, hop.label, secret_kind(text), attempt))
                    except BaseException as exc:  # re-raised on the caller's thread below
                        raised.append(exc)
                declined = declined or answer is None
                answers.append(answer or "")
            return answers

        try:
            allowed = list(transport.auth_interactive(hop.user, handler))
        except paramiko.AuthenticationException:
            if raised:
                raise raised[0] from None
            if declined:
                return None
            raise
        if raised:
            raise raised[0]
        return allowed

    return run


def _ask_until_accepted(
    transport: AuthTransport, hop: Hop, prompter: Prompter, one_round: Round
) -> list[str]:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            allowed = one_round(prompter, attempt)
        except paramiko.BadAuthenticationType as exc:
            return list(exc.allowed_types)
        except paramiko.AuthenticationException:
            if not transport.is_active():
                raise ConnectError(
                    hop.auth_failure,
                    f"{hop.label} closed the connection during login",
                    "too many tries or too slow an answer: try again",
                ) from None
            continue
        if allowed is None:
            raise Cancelled(f"login to {hop.label} cancelled: no answer given")
        return allowed
    raise ConnectError(
        hop.auth_failure,
        f"{hop.label} refused the password or code {MAX_ATTEMPTS} times",
        "check your CAE password (and MFA code); after more failures the account may be locked",
    )


def load_key(path: Path) -> paramiko.PKey | None:
    """Our dedicated key, or None when it does not exist (yet) or cannot be read without a passphrase."""
    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError:
        return None
    except (OSError, paramiko.SSHException, ValueError) as exc:
        log.warning("key %s not usable: %s", path, exc)
        return None


class ParamikoEngine:
    """An authenticated path laptop -> jump host -> workstation, all in this process."""

    name = "paramiko"

    def __init__(
        self,
        profile: Profile,
        profile_name: str = DEFAULT_PROFILE,
        *,
        key_path: Path | None = None,
        known_hosts_path: Path | None = None,
        connect_timeout: float | None = None,
        timeout: float = 15.0,
        keepalive_interval: float = 15.0,
        keepalive_count: int = 3,
    ) -> None:
        """``connect_timeout`` bounds the TCP connect to the jump host (a reconnect wants a short one),
        ``timeout`` each SSH step after it; keep-alives work like ServerAliveInterval/CountMax."""
        profile.require_complete()
        self.profile_name = profile_name
        jump_host, jump_port = profile.jump_address
        ws_host, ws_port = profile.host_address
        self.jump_hop = Hop("jump host", profile.user, jump_host, jump_port, Failure.JUMP_AUTH)
        self.ws_hop = Hop("workstation", profile.user, ws_host, ws_port, Failure.WS_AUTH)
        self.key_path = key_path or paths.key_file()
        self.known_hosts_path = known_hosts_path or known_hosts.default_path()
        self.timeout = timeout
        self.connect_timeout = connect_timeout or timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_count = keepalive_count
        self._outer: paramiko.Transport | None = None
        self._tunnel: paramiko.Channel | None = None
        self._inner: paramiko.Transport | None = None
        self._forwards: list[_Forward] = []
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._replied = threading.Condition()
        self._keepalive: threading.Thread | None = None
        self._last_reply = 0.0
        self._key_only = False
        """The login offered the key alone (non-interactive)."""

    # -- the Engine protocol ---------------------------------------------------------------------

    def login(self, prompter: Prompter, *, interactive: bool, forward: tuple[int, int] | None = None) -> None:
        self._login(prompter, interactive)
        if forward is not None:
            self.forward(*forward)

    def _login(self, prompter: Prompter, interactive: bool) -> None:
        if self.is_alive():
            return
        self.close()
        self._stop.clear()
        key = load_key(self.key_path)
        try:
            self._outer = self._handshake(self._dial_jump(), self.jump_hop, prompter)
            self._authenticate(self._outer, self.jump_hop, key, prompter, interactive)
            self._tunnel = self._open_tunnel(self._outer)
            self._inner = self._handshake(_ChannelSocket(self._tunnel), self.ws_hop, prompter)
            self._authenticate(self._inner, self.ws_hop, key, prompter, interactive)
        except BaseException:
            self.close()
            raise
        self._key_only = not interactive
        self._last_reply = time.monotonic()
        self._keepalive = threading.Thread(target=self._keep_alive, name="wa-paramiko-keepalive", daemon=True)
        self._keepalive.start()
        log.info("logged in to %s via %s", self.ws_hop.label, self.jump_hop.label)

    def key_logs_in(self) -> bool:
        """Each engine dials afresh, and a non-interactive login offers our key alone: it is the proof."""
        return self._key_only and self.is_alive()

    def is_alive(self) -> bool:
        """Both transports stand and the last keep-alive was answered in time (like ServerAliveCountMax)."""
        inner = self._inner
        if inner is None or not inner.is_active() or not inner.is_authenticated():
            return False
        if self._outer is None or not self._outer.is_active():
            return False
        if self.keepalive_interval <= 0:
            return True
        return time.monotonic() - self._last_reply < self.keepalive_interval * self.keepalive_count

    def workstation(self) -> ChannelShell:
        return ChannelShell(self._require(self._inner), self.ws_hop.label)

    def jump(self) -> ChannelShell:
        return ChannelShell(self._require(self._outer), self.jump_hop.label)

    def forward(self, local_port: int, remote_port: int) -> None:
        """Listen on 127.0.0.1:local_port (0 picks a free port: see ``local_port``)."""
        inner = self._require(self._inner)
        assert self._tunnel is not None
        # An inner packet must fit one packet of the outer channel, or every chunk costs two.
        chunk = min(self._tunnel.out_max_packet_size - 64, 64 * 1024) - 64 - PACKET_OVERHEAD
        self._forwards.append(_Forward(inner, local_port, remote_port, chunk, self.timeout))

    @property
    def local_port(self) -> int | None:
        """The port the (first) forward listens on."""
        return self._forwards[0].port if self._forwards else None

    @property
    def forward_failure(self) -> ConnectError | None:
        """Why the last forwarded connection could not be opened (hub not listening, ...), if it failed."""
        return self._forwards[0].failure if self._forwards else None

    def close(self) -> None:
        self._stop.set()
        self._poke.set()
        for fwd in self._forwards:
            fwd.stop()
        transports = [t for t in (self._inner, self._outer) if t is not None]
        for transport in transports:
            with contextlib.suppress(Exception):
                transport.close()
        if self._tunnel is not None:
            with contextlib.suppress(Exception):
                self._tunnel.close()
        for fwd in self._forwards:
            fwd.join()  # after the transports: a connection still opening its channel ends now
        self._forwards = []
        for thread in [*transports, self._keepalive]:
            if thread is not None and thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=5)
        self._inner = self._tunnel = self._outer = None
        self._keepalive = None

    # -- building the path -----------------------------------------------------------------------

    def _require(self, transport: paramiko.Transport | None) -> paramiko.Transport:
        if transport is None or not transport.is_active():
            raise ConnectError(Failure.OTHER, "not connected", "log in first (internal error)")
        return transport

    def _authenticate(
        self, transport: paramiko.Transport, hop: Hop, key: Any, prompter: Prompter, interactive: bool
    ) -> None:
        try:
            authenticate(transport, hop, key, prompter, interactive=interactive)
        except _CHANNEL_ERRORS as exc:  # the connection broke mid-login (not a refusal)
            raise ConnectError(
                Failure.TIMEOUT if isinstance(exc, TimeoutError) else hop.auth_failure,
                f"the connection to {hop.label} broke during login",
                "try again; if it keeps happening, run `wa-onboard doctor`",
                detail=str(exc) or type(exc).__name__,
            ) from None

    def _dial_jump(self) -> socket.socket:
        hop = self.jump_hop
        try:
            infos = socket.getaddrinfo(hop.host, hop.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConnectError(
                Failure.JUMP_UNKNOWN,
                f"cannot resolve the jump host {hop.host}",
                "check the name (--jump) and that this laptop is online",
                detail=str(exc),
            ) from None
        last: OSError | None = None
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.settimeout(self.connect_timeout)
            try:
                sock.connect(address)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            return sock
        reason = (
            "timed out" if isinstance(last, TimeoutError) else (last.strerror if last else "") or str(last)
        )
        raise ConnectError(
            Failure.JUMP_UNREACHABLE,
            f"cannot reach the jump host {hop.host} port {hop.port}: {reason}",
            "check your network (campus VPN if you are off campus) and the --jump port",
            detail=str(last),
        )

    def _handshake(
        self, sock: socket.socket | _ChannelSocket, hop: Hop, prompter: Prompter
    ) -> paramiko.Transport:
        """SSH key exchange and host-key check; nothing secret is sent before the key is trusted."""
        unreachable = Failure.JUMP_UNREACHABLE if hop is self.jump_hop else Failure.WS_UNREACHABLE
        transport = paramiko.Transport(
            sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
        )
        transport.banner_timeout = self.timeout
        transport.handshake_timeout = self.timeout
        transport.auth_timeout = AUTH_TIMEOUT
        known = known_hosts.read(hop.host, hop.port, self.known_hosts_path)
        options = transport.get_security_options()
        options.key_types = _prefer_known(options.key_types, [k.key_type for k in known if not k.marker])
        options.ciphers = [c for c in CIPHERS if c in options.ciphers] + [
            c for c in options.ciphers if c not in CIPHERS
        ]
        try:
            transport.start_client(timeout=self.timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            transport.close()
            raise ConnectError(
                unreachable,
                f"the {hop.role} {hop.host} did not complete the SSH handshake",
                "is it an SSH server on that port? try again; if it persists, tell the lab admins",
                detail=str(exc) or type(exc).__name__,
            ) from None
        try:
            self._check_host_key(transport, hop, known, prompter)
        except BaseException:
            transport.close()
            raise
        return transport

    def _check_host_key(
        self, transport: paramiko.Transport, hop: Hop, known: list[known_hosts.KnownKey], prompter: Prompter
    ) -> None:
        key = transport.get_remote_server_key()
        key_type, blob = key.get_name(), key.asbytes()
        verdict = known_hosts.judge(known, key_type, blob)
        fingerprint = known_hosts.fingerprint(blob)
        name = known_hosts.host_id(hop.host, hop.port)
        if verdict is known_hosts.Verdict.KNOWN:
            return
        if verdict in (known_hosts.Verdict.CHANGED, known_hosts.Verdict.REVOKED):
            command = known_hosts.removal_command(hop.host, hop.port, self.known_hosts_path)
            raise ConnectError(
                Failure.HOST_KEY_CHANGED,
                f"the {hop.role} {name} presented a different host key ({key_type} {fingerprint}) than "
                f"the one on file: refused (it may be an attack, or the host was reinstalled)",
                f"ask the lab admins whether the key changed; once confirmed, remove the old one with: "
                f"{command}",
            )
        if not prompter.confirm(HostKeyQuestion(name, key_type, fingerprint)):
            raise ConnectError(
                Failure.HOST_KEY_REJECTED,
                f"the host key of {name} ({key_type} {fingerprint}) was not trusted",
                "compare the fingerprint with the one the lab admins publish, then accept it (or --yes)",
            )
        known_hosts.append(hop.host, hop.port, key_type, blob, self.known_hosts_path)
        log.info("trusted %s key %s for %s", key_type, fingerprint, name)

    def _open_tunnel(self, outer: paramiko.Transport) -> paramiko.Channel:
        hop = self.ws_hop
        try:
            channel = outer.open_channel(
                "direct-tcpip", (hop.host, hop.port), ("127.0.0.1", 0), timeout=self.timeout
            )
        except paramiko.ChannelException as exc:
            prohibited = exc.code == paramiko.common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
            raise ConnectError(
                Failure.WS_UNREACHABLE,
                f"the jump host could not reach the workstation {hop.host} port {hop.port}: {exc.text}",
                "the jump host does not allow forwarding for your account: ask the lab admins"
                if prohibited
                else "the workstation or its sshd may be down: check --host, or ask the lab admins",
                detail=f"channel open failed: {exc.code} {exc.text}",
            ) from None
        except _CHANNEL_ERRORS as exc:
            raise ConnectError(
                Failure.WS_UNREACHABLE,
                f"the jump host could not reach the workstation {hop.host} port {hop.port}: "
                f"{exc or 'no answer'}",
                "the workstation may be down: try again later, or ask the lab admins",
                detail=str(exc),
            ) from None
        channel.settimeout(None)
        return channel

    def ping(self, timeout: float = 5.0) -> bool:
        """The workstation answers through both hops within ``timeout`` (the supervisor asks this
        when a probe timed out, to tell a slow hub from a dead path)."""
        if self._inner is None or not self._inner.is_active():
            return False
        asked = time.monotonic()
        self._poke.set()
        with self._replied:
            return self._replied.wait_for(lambda: self._last_reply >= asked, timeout)

    def _keep_alive(self) -> None:
        """Ask the workstation for a reply every interval, or when ``ping`` pokes: a dead path shows."""
        interval = self.keepalive_interval if self.keepalive_interval > 0 else None
        while True:
            self._poke.wait(interval)
            self._poke.clear()
            inner = self._inner
            if self._stop.is_set() or inner is None or not inner.is_active():
                return
            with contextlib.suppress(*_CHANNEL_ERRORS):
                inner.global_request("keepalive@openssh.com", wait=True)  # OpenSSH replies "failure"
            if inner.is_active():
                with self._replied:
                    self._last_reply = time.monotonic()
                    self._replied.notify_all()


def _prefer_known(offered: Sequence[str], known_types: Sequence[str]) -> list[str]:
    """Put host-key algorithms we already have a key for first, as OpenSSH does."""
    first: list[str] = []
    for key_type in known_types:
        first.extend(_KEY_ALGORITHMS.get(key_type, (key_type,)))
    return [a for a in offered if a in first] + [a for a in offered if a not in first]


class _ChannelSocket:
    """The tunnel channel as the workstation transport's socket, read in big gulps.

    paramiko's packetizer reads each packet in two small pieces (its first block, then the rest);
    straight from a Channel each piece would cost a move of everything still buffered behind it."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self._pending = b""
        self._offset = 0

    def recv(self, size: int) -> bytes:
        if self._offset >= len(self._pending):
            self._pending, self._offset = self.channel.recv(READ_ALL), 0  # may raise socket.timeout
        start, self._offset = self._offset, min(self._offset + size, len(self._pending))
        return self._pending[start : self._offset]

    def send(self, data: bytes) -> int:
        sent: int = self.channel.send(data)
        return sent

    def settimeout(self, timeout: float | None) -> None:
        self.channel.settimeout(timeout)

    def close(self) -> None:
        self.channel.close()

    @property
    def _closed(self) -> bool:
        """What paramiko's Transport.stop_thread looks at on a real socket."""
        return bool(self.channel.closed)


class ChannelShell:
    """A RemoteShell over an authenticated transport: ``exec bash -l -s`` with the script on stdin."""

    def __init__(self, transport: paramiko.Transport, hop: str) -> None:
        self.transport = transport
        self.hop = hop

    def run(self, script: str, *, timeout: float = 60.0, on_line: LineCallback | None = None) -> RemoteResult:
        """Every wait is bounded by ``timeout``: opening the channel, the server's answer to exec
        (paramiko waits for it without a limit), the output and the exit status. When time is up the
        channel is closed, which wakes whatever waits on it."""
        wrapped = wrap(script)
        parser = MarkerParser(wrapped, on_line)
        started = time.monotonic()
        expired = threading.Event()
        opened: list[paramiko.Channel] = []
        guard = threading.Lock()

        def expire() -> None:
            with guard:
                expired.set()
                channels = list(opened)
            for channel in channels:
                channel.close()

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            return self._run(wrapped, parser, opened, guard, expired, started, timeout)
        finally:
            timer.cancel()

    def _run(
        self,
        wrapped: Wrapped,
        parser: MarkerParser,
        opened: list[paramiko.Channel],
        guard: threading.Lock,
        expired: threading.Event,
        started: float,
        timeout: float,
    ) -> RemoteResult:
        try:
            channel = self.transport.open_session(timeout=timeout)
            with guard:
                opened.append(channel)
                late = expired.is_set()
            if late:
                channel.close()
            channel.exec_command(REMOTE_COMMAND)  # waits for the server's reply: the timer bounds it
        except _CHANNEL_ERRORS as exc:
            if expired.is_set():
                return parser.result(-1, expired=True, stderr=f"{self.hop}: no answer", started=started)
            return RemoteResult(255, "", f"{self.hop}: {exc}", seconds=time.monotonic() - started)
        errors: list[bytes] = []
        err_reader = threading.Thread(
            target=lambda: errors.append(channel.makefile_stderr("rb").read()), daemon=True
        )
        err_reader.start()
        try:
            with contextlib.suppress(*_CHANNEL_ERRORS):
                channel.sendall(wrapped.script.encode("utf-8"))
                channel.shutdown_write()
            with contextlib.suppress(*_CHANNEL_ERRORS):
                for raw in channel.makefile("rb"):
                    parser.feed(raw.decode("utf-8", errors="replace"))
            code = channel.recv_exit_status()
        finally:
            channel.close()
        err_reader.join(timeout=5)
        stderr = b"".join(errors).decode("utf-8", errors="replace")
        return parser.result(code, expired=expired.is_set(), stderr=stderr, started=started)


class _Forward:
    """127.0.0.1:port -> workstation localhost:remote_port, a thread per direction per connection."""

    def __init__(
        self, transport: paramiko.Transport, local_port: int, remote_port: int, chunk: int, timeout: float
    ) -> None:
        self.transport = transport
        self.remote_port = remote_port
        self.chunk = chunk
        self.timeout = timeout
        self.failure: ConnectError | None = None
        self.listener = _listen(local_port)
        self.port: int = self.listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._open: set[tuple[socket.socket, paramiko.Channel | None]] = set()
        self._threads: set[threading.Thread] = set()
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, name=f"wa-forward-{self.port}", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            ready, _, _ = select.select([self.listener, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                sock, peer = self.listener.accept()
            except OSError:
                continue
            thread = threading.Thread(
                target=self._serve, args=(sock, peer), name="wa-forward-conn", daemon=True
            )
            with self._lock:
                if self._closed:
                    sock.close()
                    return
                self._threads.add(thread)
            thread.start()

    def _serve(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        entry: tuple[socket.socket, paramiko.Channel | None] = (sock, None)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.add(entry)
            try:
                channel = self.transport.open_channel(
                    "direct-tcpip", ("localhost", self.remote_port), peer[:2], timeout=self.timeout
                )
            except _CHANNEL_ERRORS as exc:
                self.failure = _forward_failure(exc, self.remote_port)
                log.warning("forward to localhost:%d: %s", self.remote_port, exc)
                return
            channel.settimeout(None)
            with self._lock:
                self._open.discard(entry)
                entry = (sock, channel)
                self._open.add(entry)
                if self._closed:
                    return
            self.failure = None
            upstream = threading.Thread(
                target=self._upstream, args=(sock, channel), name="wa-forward-up", daemon=True
            )
            upstream.start()
            self._downstream(sock, channel)
            upstream.join()
        finally:
            with self._lock:
                self._open.discard(entry)
                self._threads.discard(threading.current_thread())
            if entry[1] is not None:
                entry[1].close()
            sock.close()

    def _upstream(self, sock: socket.socket, channel: paramiko.Channel) -> None:
        with contextlib.suppress(*_CHANNEL_ERRORS):
            while data := sock.recv(self.chunk):
                channel.sendall(data)
            channel.shutdown_write()  # the browser half-closed: pass the EOF on, keep reading
            return
        channel.close()  # the local side broke: end both directions

    def _downstream(self, sock: socket.socket, channel: paramiko.Channel) -> None:
        with contextlib.suppress(*_CHANNEL_ERRORS):
            while data := channel.recv(READ_ALL):
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the upstream thread

    def stop(self) -> None:
        """Stop listening and end every connection; ``join`` waits for their threads."""
        with self._lock:
            self._closed = True
            entries = list(self._open)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._acceptor.join(timeout=5)
        self.listener.close()
        for sock, channel in entries:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            if channel is not None:
                channel.close()

    def join(self) -> None:
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)
        self._wake_r.close()
        self._wake_w.close()


def _listen(port: int) -> socket.socket:
    """Bind 127.0.0.1 only; a port held by someone else is PORT_BUSY (the supervisor names the holder)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.name == "nt":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined,unused-ignore]
    else:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only, never a live listener
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        busy = exc.errno in (errno.EADDRINUSE, errno.EACCES, getattr(errno, "WSAEADDRINUSE", -1))
        raise ConnectError(
            Failure.PORT_BUSY if busy else Failure.OTHER,
            f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
            "another program uses that port: stop it, or choose another with --local-port",
        ) from None
    return sock


def _forward_failure(exc: BaseException, remote_port: int) -> ConnectError:
    if isinstance(exc, paramiko.ChannelException) and exc.code == paramiko.common.OPEN_FAILED_CONNECT_FAILED:
        return ConnectError(
            Failure.FORWARD_REFUSED,
            f"nothing listens on the workstation's port {remote_port}: {exc.text}",
            "the hub is not running there (or on another port: --remote-port); tell the lab admins",
            detail=str(exc),
        )
    return ConnectError(
        Failure.OTHER,
        f"the workstation did not open the forward to its port {remote_port}: {exc}",
        "try `wa-onboard doctor`",
        detail=str(exc),
    )


if TYPE_CHECKING:

    def _is_an_engine(engine: ParamikoEngine) -> Engine:
        return engine  # mypy proves the class keeps the protocol the supervisor and setup steps use
