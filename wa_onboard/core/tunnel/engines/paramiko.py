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

Only this module and its two parts (paramiko_auth: the logins; paramiko_channels: shells and the
forward) import paramiko; whoever selects the engine imports it lazily (engines.make_engine).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paramiko

from wa_onboard.core import paths
from wa_onboard.core.profile import DEFAULT_PROFILE, Profile
from wa_onboard.core.prompts import HostKeyQuestion, Prompter
from wa_onboard.core.tunnel import hostkeys as known_hosts
from wa_onboard.core.tunnel.engines.base import ConnectError, Engine, Failure, Hop, hops
from wa_onboard.core.tunnel.engines.paramiko_auth import authenticate, load_key
from wa_onboard.core.tunnel.engines.paramiko_channels import (
    CHANNEL_ERRORS,
    ChannelShell,
    ChannelSocket,
    Forward,
)

log = logging.getLogger(__name__)

WINDOW_SIZE = 16 * 1024 * 1024
"""Channel window we offer the servers: big enough that a fast link never waits for our acks."""
MAX_PACKET_SIZE = 256 * 1024
"""Largest packet we accept (OpenSSH's own limit); fewer, bigger packets cost less Python."""
PACKET_OVERHEAD = 160
"""Room for one SSH packet's framing, padding and MAC, so an inner packet fits one outer packet."""
CIPHERS: tuple[str, ...] = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
"""Preferred before paramiko's own list: one C call per packet instead of a cipher pass plus a
Python HMAC (download ~1.5x faster in tests/bench/bench_paramiko.py). Servers without GCM get the rest."""
AUTH_TIMEOUT = 600.0
"""paramiko gives up on an unanswered prompt after 30 s; the server's LoginGraceTime decides instead."""
_KEY_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256")}
"""known_hosts key type -> the host-key algorithms that present such a key."""


class ParamikoEngine(Engine):
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
        self.jump_hop, self.ws_hop = hops(profile, profile_name)
        self.key_path = key_path or paths.key_file()
        self.known_hosts_path = known_hosts_path or known_hosts.default_path()
        self.timeout = timeout
        self.connect_timeout = connect_timeout or timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_count = keepalive_count
        self._outer: paramiko.Transport | None = None
        self._tunnel: paramiko.Channel | None = None
        self._inner: paramiko.Transport | None = None
        self._forwards: list[Forward] = []
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._replied = threading.Condition()
        self._keepalive: threading.Thread | None = None
        self._last_reply = 0.0
        self._key_only = False
        """The login offered the key alone (non-interactive)."""

    # -- the Engine contract ---------------------------------------------------------------------

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
            self._inner = self._handshake(ChannelSocket(self._tunnel), self.ws_hop, prompter)
            self._authenticate(self._inner, self.ws_hop, key, prompter, interactive)
        except BaseException:
            self.close()
            raise
        self._key_only = not interactive
        self._last_reply = time.monotonic()
        self._keepalive = threading.Thread(target=self._keep_alive, name="wa-paramiko-keepalive", daemon=True)
        self._keepalive.start()
        log.info("logged in to %s via %s", self.ws_hop.who, self.jump_hop.who)

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
        return ChannelShell(self._require(self._inner), self.ws_hop.who)

    def jump(self) -> ChannelShell:
        return ChannelShell(self._require(self._outer), self.jump_hop.who)

    def forward(self, local_port: int, remote_port: int) -> None:
        """Listen on 127.0.0.1:local_port (0 picks a free port: see ``local_port``)."""
        inner = self._require(self._inner)
        assert self._tunnel is not None
        # An inner packet must fit one packet of the outer channel, or every chunk costs two.
        chunk = min(self._tunnel.out_max_packet_size - 64, 64 * 1024) - 64 - PACKET_OVERHEAD
        self._forwards.append(Forward(inner, local_port, remote_port, chunk, self.timeout))

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
        except CHANNEL_ERRORS as exc:  # the connection broke mid-login (not a refusal)
            raise ConnectError(
                Failure.TIMEOUT if isinstance(exc, TimeoutError) else hop.auth_failure,
                f"the connection to {hop.who} broke during login",
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
        self, sock: socket.socket | ChannelSocket, hop: Hop, prompter: Prompter
    ) -> paramiko.Transport:
        """SSH key exchange and host-key check; nothing secret is sent before the key is trusted."""
        unreachable = Failure.JUMP_UNREACHABLE if hop is self.jump_hop else Failure.WS_UNREACHABLE
        transport = paramiko.Transport(
            sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
        )
        transport.banner_timeout = self.timeout
        transport.handshake_timeout = self.timeout
        transport.auth_timeout = AUTH_TIMEOUT
        known = known_hosts.known_keys(hop.host, hop.port, self.known_hosts_path)
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
                f"the {hop.noun} {hop.host} did not complete the SSH handshake",
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
                f"the {hop.noun} {name} presented a different host key ({key_type} {fingerprint}) than "
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
        except CHANNEL_ERRORS as exc:
            raise ConnectError(
                Failure.WS_UNREACHABLE,
                f"the jump host could not reach the workstation {hop.host} port {hop.port}: "
                f"{exc or 'no answer'}",
                "the workstation may be down: try again later, or ask the lab admins",
                detail=str(exc),
            ) from None
        channel.settimeout(None)
        return channel

    def ping(self, timeout: float = 5.0) -> bool | None:
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
            with contextlib.suppress(*CHANNEL_ERRORS):
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
