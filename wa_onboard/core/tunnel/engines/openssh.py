"""The OpenSSH engine: pexpect drives the first login, then everything rides control masters.

Two masters, one per hop: ``wa-jump`` first, then ``wa-ws``, whose ProxyCommand (``ssh -W``) rides the
jump master. Each hop therefore asks for its password once, and a failure is always known to be
the jump host's or the workstation's. The masters run in the foreground (``-N``, no ``-f``) as our
own children: with ``-f`` the pty's session leader exits and the kernel's SIGHUP kills the ProxyCommand
helper. ``LocalCommand`` prints a marker once a master listens on its control socket, which is how
we know the login is over. Later commands (``workstation()``, ``forward()``, ``-O check``) talk to
the masters and cost milliseconds. Data flows through OpenSSH itself, never through Python.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from wa_onboard.core import paths, validate
from wa_onboard.core.profile import DEFAULT_PROFILE, Profile
from wa_onboard.core.prompts import OTP_WORDS, HostKeyQuestion, Prompter, SecretQuestion, secret_kind
from wa_onboard.core.remote import RemoteShell, SubprocessShell
from wa_onboard.core.tunnel import hostkeys as known_hosts
from wa_onboard.core.tunnel import prestart, procs, sshfiles
from wa_onboard.core.tunnel.engines.base import INSTALL_SSH_HINT, ConnectError, Failure

MAX_TRIES = 3
"""Wrong password or code: ask again, at most this many tries in all (then fail: no lockouts)."""

"""(hop, line) for each line a master prints after login: logs, and the supervisor's diagnosis."""

_HOSTKEY_QUESTION = re.compile(
    r"The authenticity of host '(?P<host>[^']*)' can't be established\.(?P<body>.*?)"
    r"\(yes/no(?:/\[fingerprint\])?\)\? ?\Z",
    re.S,
)
#: ExitOnForwardFailure: the port was free when we looked, and taken before ssh could bind it
_BIND_FAILED = re.compile(
    r"bind \[?[^\]\s]*\]?:(\d+): Address already in use|Could not request local forwarding"
)
_FINGERPRINT = re.compile(r"(?P<type>[A-Z0-9-]+) key fingerprint is (?P<fp>SHA256:[A-Za-z0-9+/=]+)")
#: the changed-key warning names the key the server sent now
_NEW_FINGERPRINT = re.compile(
    r"fingerprint for the (?P<type>[A-Z0-9-]+) key sent by the remote host is\s*"
    r"(?P<fp>SHA256:[A-Za-z0-9+/=]+)"
)
#: a prompt: the last line of what ssh printed, ending in ':' (a question ssh waits on), no newline
_PROMPT = re.compile(r"(?P<line>[^\r\n]*:[ \t]?)\Z")
_PASSWORD_PROMPT = re.compile(r"(?P<who>[^\s']+@[^\s']+)'s password: ?\Z")
_KBD_PREFIX = re.compile(r"^\((?P<who>[^\s()]+@[^\s()]+)\) ")
#: lines ssh prints that are not part of a keyboard-interactive instruction
_NOISE = re.compile(
    r"(?i)^(warning:|permission denied|authenticated |the authenticity|this key is not known|"
    r"[a-z0-9-]+ key fingerprint|are you sure|please type|pseudo-terminal|channel \d|stdio forward)"
)


@dataclass(frozen=True)
class Hop:
    """One leg of the path, as our ssh_config names it."""

    role: str
    """``jump`` or ``ws``."""
    alias: str
    user: str
    host: str
    port: int

    @property
    def who(self) -> str:
        return f"{self.user}@{self.host}"

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts (and ``ssh-keygen -R``) names the host."""
        return known_hosts.host_id(self.host, self.port)


def hops(profile: Profile, profile_name: str = DEFAULT_PROFILE) -> tuple[Hop, Hop]:
    names = sshfiles.aliases(profile_name)
    jump_host, jump_port = profile.jump_address
    ws_host, ws_port = profile.host_address
    return (
        Hop("jump", names.jump, profile.user, jump_host, jump_port),
        Hop("ws", names.ws, profile.user, ws_host, ws_port),
    )


# --- telling failures apart ----------------------------------------------------------------------


def classify(transcript: str, hop: Hop, jump: Hop, *, interactive: bool = True) -> ConnectError:
    """Turn what ssh printed (and its exit) into the failure kind, a message and a hint.

    ``hop`` is the master being started; ``jump`` is the jump host (a workstation's login can still
    fail at the jump host, and the text says which: ssh names the host in its messages)."""
    text = transcript.replace("\r", "")
    last = _last_meaningful_line(text)
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or re.search(r"Host key for .* has changed", text):
        changed = _changed_host(text, hop, jump)
        new = _NEW_FINGERPRINT.search(text)
        now = f" (it now presents the {new.group('type')} key {new.group('fp')})" if new else ""
        return ConnectError(
            Failure.HOST_KEY_CHANGED,
            f"the host key of {changed.host} has CHANGED since it was trusted{now}; refusing to connect",
            "this can mean someone is intercepting the connection, or the host was reinstalled. "
            "Ask the lab admins to confirm the new fingerprint, then remove the old entry with: "
            + known_hosts.removal_command(changed.host, changed.port),
            detail=last,
        )
    if re.search(r"No \S+ host key is known for|Host key verification failed", text):
        return ConnectError(
            Failure.HOST_KEY_REJECTED,
            f"the host key of {hop.host} is not trusted yet",
            "connect once in a terminal to review its fingerprint (or pass --yes to accept a new key)",
            detail=last,
        )
    match = _BIND_FAILED.search(text)
    if match:
        port = f" {match.group(1)}" if match.group(1) else ""
        return ConnectError(
            Failure.PORT_BUSY,
            f"the local port{port} was taken by another program just now",
            "connect again (it picks a free port), or choose one with --local-port",
            detail=last,
        )
    match = re.search(r"Could not resolve hostname (\S+?):", text)
    if match:
        return ConnectError(
            Failure.JUMP_UNKNOWN,
            f"the jump host name {match.group(1)} does not resolve",
            "check the spelling (--jump) and your network / DNS; off campus you may need the VPN",
            detail=last,
        )
    ws_markers = (
        r"channel \d+: open failed|stdio forwarding failed|"
        r"Connection closed by UNKNOWN port 65535|kex_exchange_identification.*UNKNOWN"
    )
    if hop.role == "ws" and re.search(ws_markers, text):
        return ConnectError(
            Failure.WS_UNREACHABLE,
            f"the jump host {jump.host} cannot reach the workstation {hop.host}:{hop.port}",
            "the workstation may be off or its sshd stopped; check the name (--host) or ask the lab admins",
            detail=last,
        )
    match = re.search(
        r"connect to host (\S+) port (\d+): (Connection refused|No route to host|Network is unreachable|"
        r"Connection timed out|Operation timed out)",
        text,
    )
    if match or re.search(r"Connection timed out|timed out during banner exchange", text):
        where = match.group(1) if match else jump.host
        return ConnectError(
            Failure.JUMP_UNREACHABLE,
            f"cannot reach the jump host {where}: {match.group(3) if match else 'timed out'}",
            "check your network connection (Wi-Fi, VPN, firewall); the host may also be down",
            detail=last,
        )
    match = re.search(r"(?:(\S+)@(\S+): )?Permission denied \(([^)]*)\)", text)
    if match:
        host = match.group(2) or hop.host
        on_jump = host == jump.host if match.group(2) else hop.role == "jump"
        if not interactive:
            return ConnectError(
                Failure.PASSWORD_NEEDED,
                f"{host} did not accept the key and wants a password or code",
                "run wa-onboard setup (it installs the key), or connect in a terminal to type it",
                detail=last,
            )
        return ConnectError(
            Failure.JUMP_AUTH if on_jump else Failure.WS_AUTH,
            f"{hop.user}@{host} refused the login ({match.group(3)})",
            "check your CAE username and password; after several failures the account may be locked "
            "for a while, so wait before trying again",
            detail=last,
        )
    if re.search(r"Connection (closed|reset) by", text):
        return ConnectError(
            Failure.JUMP_UNREACHABLE if hop.role == "jump" else Failure.WS_UNREACHABLE,
            f"{hop.host} closed the connection during login",
            "the host may be restarting or limiting connections; try again in a minute",
            detail=last,
        )
    return ConnectError(
        Failure.OTHER,
        f"ssh to {hop.host} failed" + (f": {last}" if last else ""),
        "run wa-onboard doctor to find which layer is broken",
        detail=last,
    )


def _last_meaningful_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("@@@")]
    return lines[-1] if lines else ""


def _changed_host(text: str, hop: Hop, jump: Hop) -> Hop:
    match = re.search(r"Host key for (\S+) has changed", text)
    name = match.group(1) if match else ""
    if name and name in (jump.host, jump.known_hosts_name):
        return jump
    return hop


# --- the engine ----------------------------------------------------------------------------------


@dataclass
class _Master:
    """A control master we started: the pexpect child and a thread that drains its pty."""

    hop: Hop
    child: Any
    reader: threading.Thread | None = None


class OpenSshEngine:
    """The Engine protocol over OpenSSH control masters."""

    name = "openssh"

    def __init__(
        self,
        profile: Profile,
        profile_name: str = DEFAULT_PROFILE,
        *,
        ssh: str = "ssh",
        connect_timeout: int | None = None,
        login_timeout: float = 60.0,
    ) -> None:
        profile.require_complete()
        self.profile = profile
        self.profile_name = profile_name
        self.ssh = ssh
        self.connect_timeout = connect_timeout
        """Overrides ConnectTimeout for the masters (the supervisor uses a short one to retry fast)."""
        self.login_timeout = login_timeout
        """How long ssh may stay silent during login (waiting on a person does not count)."""
        self.jump_hop, self.ws_hop = hops(profile, profile_name)
        self._masters: dict[str, _Master] = {}
        self._prestarted: prestart.Prestarted | None = None
        self.adopted_early = False
        """Whether the jump master is the one core/prestart started at launch."""
        self._reused: set[str] = set()
        """Roles of the masters login() found running (a tunnel's, a member's) rather than started."""
        self._forwards: list[str] = []
        """Forwards added with ``-O forward``: on a master we did not start they outlive us unless
        cancelled (a member's own ``ssh wa-ws`` would keep listening on our port)."""
        self._lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def config(self) -> str:
        return str(sshfiles.config_path())

    def _argv(self, hop: Hop, *options: str) -> list[str]:
        return [self.ssh, "-F", self.config, *options, hop.alias]

    def _control(self, hop: Hop, command: str, *extra: str, timeout: float = 10.0) -> tuple[int, str]:
        """``ssh -O command``: talk to a master. Returns (exit code, stderr+stdout)."""
        try:
            done = subprocess.run(
                self._argv(hop, "-O", command, *extra),
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 255, "timed out talking to the control master"
        return done.returncode, (done.stderr + done.stdout).strip()

    def master_pid(self, hop: Hop) -> int | None:
        code, out = self._control(hop, "check")
        match = re.search(r"pid=(\d+)", out)
        return int(match.group(1)) if code == 0 and match else None

    def _live_master_or_clean(self, hop: Hop) -> int | None:
        """The pid of a live master for ``hop``; a socket no master answers any more (left by a
        crashed or killed master) is removed, so that the master we start next can listen there.
        With it in place ssh would say "already exists, disabling multiplexing", still print our
        marker, and every later ``-O`` command and BatchMode shell would find no master."""
        code, out = self._control(hop, "check")
        match = re.search(r"pid=(\d+)", out)
        if code == 0 and match:
            return int(match.group(1))
        stale = re.search(r"Control socket connect\((?P<path>.+)\): Connection refused", out)
        if stale:
            remove_stale_socket(stale.group("path"))
        return None

    def pids(self) -> set[int]:
        """Processes of ours that may hold a forwarded port (the workstation master)."""
        pid = self.master_pid(self.ws_hop)
        return {pid} if pid else set()

    # -- Engine ---------------------------------------------------------------------------------

    def login(
        self, prompter: Prompter, *, interactive: bool = True, forward: tuple[int, int] | None = None
    ) -> None:
        if shutil.which(self.ssh) is None:
            raise ConnectError(
                Failure.SSH_MISSING,
                f"the OpenSSH client ({self.ssh}) is not installed or not on PATH",
                INSTALL_SSH_HINT,
            )
        if not sshfiles.has_control_master():
            raise ConnectError(
                Failure.OTHER,
                "the OpenSSH engine needs connection sharing, which Windows' OpenSSH does not have",
                "use --engine paramiko",
            )
        sshfiles.write_config(self.profile, self.profile_name)
        early, self._prestarted = self._prestarted, None
        if early is not None and not self._can_adopt(early, interactive):
            early.discard()
            early = None
        # no control socket at all: no master to reuse, and no `ssh -O check` (a process each) to ask;
        # a prestarted master was started only when there was none, and its own socket is ours
        maybe_live = early is None and _control_sockets_exist()
        # (the password one hop accepted is offered to the other by the prompter: prompts.PasswordOnce)
        for hop in (self.jump_hop, self.ws_hop):
            if early is not None and hop is self.jump_hop:
                try:
                    self._start_master(hop, prompter, interactive, [], early=early)
                    self.adopted_early = True
                    continue
                except ConnectError as exc:
                    if exc.failure is not Failure.HOST_KEY_REJECTED:
                        raise
                    # it started before the CLI trusted the host key: once more, afresh
            if maybe_live and self._live_master_or_clean(hop) is not None:
                self._reused.add(hop.role)
                if hop is self.ws_hop and forward is not None:
                    self.forward(*forward)
                continue
            # a new workstation master listens on the forward itself: one ssh process less
            extra = ["-L", self._forward_spec(*forward)] if hop is self.ws_hop and forward else []
            self._start_master(hop, prompter, interactive, extra)

    def _spawn(self, hop: Hop, interactive: bool, marker: str, extra: list[str]) -> Any:
        argv = prestart.master_argv(
            self.ssh,
            self.config,
            hop.alias,
            marker,
            interactive=interactive,
            connect_timeout=self.connect_timeout,
            extra=tuple(extra),
        )
        return prestart.spawn_master(argv)

    def adopt(self, prestarted: prestart.Prestarted) -> None:
        """Take over a jump master started before the supervisor knew its profile (core/prestart);
        login() uses it if it is what login would have started, and stops it otherwise."""
        self._prestarted = prestarted

    def _can_adopt(self, early: prestart.Prestarted, interactive: bool) -> bool:
        """The prestarted master is the one login would start: same alias, key only, no custom
        timeout, and our ssh_config still byte for byte what it read."""
        try:
            config = sshfiles.config_path().read_bytes()
        except OSError:
            return False
        same = (early.alias, interactive, self.connect_timeout, early.config)
        return same == (self.jump_hop.alias, False, None, config)

    def _start_master(
        self,
        hop: Hop,
        prompter: Prompter,
        interactive: bool,
        extra: list[str],
        early: prestart.Prestarted | None = None,
    ) -> None:
        import pexpect

        if early is not None:
            child, marker = early.child, early.marker
        else:
            marker = prestart.new_marker()
            child = self._spawn(hop, interactive, marker, extra)
        transcript: list[str] = []
        sent: list[str] = []  # secrets we typed, scrubbed from anything we keep
        asked: collections.Counter[tuple[str, str]] = collections.Counter()
        chunk_start = 0
        patterns = [re.compile(re.escape(marker)), _HOSTKEY_QUESTION, _PROMPT, pexpect.EOF, pexpect.TIMEOUT]
        try:
            while True:
                index = child.expect(patterns, timeout=self.login_timeout)
                transcript.append(_scrub(child.before or "", sent))
                if index in (3, 4):
                    if index == 4:
                        child.close(force=True)
                        raise _timed_out(hop, self.login_timeout, "".join(transcript))
                    child.close()
                    raise classify("".join(transcript), hop, self.jump_hop, interactive=interactive)
                after = str(child.after)
                if index == 0:
                    break
                if index == 1:
                    transcript.append(after)
                    self._answer_host_key(child, hop, after, prompter)
                    continue
                # a prompt
                recent = "".join(transcript)[chunk_start:]
                transcript.append(after)
                question = _secret_question(after, recent, hop)
                key = (question.hop, question.kind)
                asked[key] += 1
                if asked[key] > MAX_TRIES:
                    child.close(force=True)
                    what = "password" if question.kind == "password" else "code"
                    failure = Failure.JUMP_AUTH if hop.role == "jump" else Failure.WS_AUTH
                    raise ConnectError(
                        failure,
                        f"{question.hop} refused the {what} {MAX_TRIES} times; stopped before the "
                        "account gets locked",
                        "check your CAE username and password (and the code's clock), then try again later",
                    )
                answer = prompter.secret(
                    SecretQuestion(question.prompt, question.hop, question.kind, asked[key])
                )
                if answer is None:
                    child.close(force=True)
                    raise ConnectError(
                        Failure.PASSWORD_NEEDED,
                        f"{question.hop} asks for a {question.kind}, and none was given",
                        "run wa-onboard setup in a terminal (it installs the key so that no password "
                        "is needed), or give it with --password-stdin",
                    )
                sent.append(answer)
                child.sendline(answer)
                chunk_start = len("".join(transcript))
        except BaseException:
            if child.isalive():
                child.close(force=True)
            raise
        finally:
            sent.clear()
        master = _Master(hop, child)
        master.reader = threading.Thread(
            target=self._drain, args=(master,), name=f"ssh-{hop.alias}", daemon=True
        )
        with self._lock:
            self._masters[hop.role] = master
        master.reader.start()

    def _answer_host_key(self, child: Any, hop: Hop, text: str, prompter: Prompter) -> None:
        match = _HOSTKEY_QUESTION.search(text)
        body = match.group("body") if match else text
        host = match.group("host").split(" (")[0] if match else hop.host
        fp = _FINGERPRINT.search(body)
        question = HostKeyQuestion(
            host=host,
            key_type=fp.group("type") if fp else "unknown",
            fingerprint=fp.group("fp") if fp else "",
        )
        child.sendline("yes" if fp and prompter.confirm(question) else "no")

    def _drain(self, master: _Master) -> None:
        """Read the master's pty until it ends, so ssh never blocks on a full terminal buffer."""
        import pexpect

        child = master.child
        while True:
            try:
                child.read_nonblocking(4096, timeout=1.0)
            except pexpect.TIMEOUT:
                continue
            except Exception:  # EOF, or the pty went away (close() from another thread)
                return

    def is_alive(self) -> bool:
        with self._lock:
            owned = dict(self._masters)
        for master in owned.values():
            if not master.child.isalive():
                return False
        if self.ws_hop.role in owned:
            return True  # our own master runs, and holds the forward's socket: no `ssh -O check` process
        return self.master_pid(self.ws_hop) is not None

    def key_logs_in(self) -> bool:
        """A master we started non-interactively logged in with the key (BatchMode); one we found
        running may hold a password login, so log in afresh beside it: no master (ControlPath=none),
        our key only, no password. The workstation's proxy still rides the jump master, which is
        fine: that hop's own proof is the fresh login to the jump host."""
        for hop in (self.jump_hop, self.ws_hop):
            if hop.role not in self._reused:
                continue
            argv = self._argv(
                hop,
                "-o", "ControlMaster=no",
                "-o", "ControlPath=none",
                "-o", "BatchMode=yes",
                "-o", "IdentitiesOnly=yes",
                "-o", "PreferredAuthentications=publickey",
                "-i", str(paths.key_file()),
                "-T",
            )  # fmt: skip
            try:
                done = subprocess.run(
                    [*argv, "true"], capture_output=True, timeout=60, stdin=subprocess.DEVNULL, check=False
                )
            except subprocess.TimeoutExpired:
                return False
            if done.returncode != 0:
                return False
        return True

    def _shell_argv(self, hop: Hop) -> list[str]:
        return self._argv(hop, "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-T")

    def workstation(self) -> RemoteShell:
        return SubprocessShell(self._shell_argv(self.ws_hop))

    def jump(self) -> RemoteShell:
        return SubprocessShell(self._shell_argv(self.jump_hop))

    def ping(self, timeout: float = 5.0) -> bool:
        """One round trip to the workstation over the master: is the path alive end to end?"""
        try:
            done = subprocess.run(
                [*self._shell_argv(self.ws_hop), "true"],
                capture_output=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def _forward_spec(self, local_port: int, remote_port: int) -> str:
        local = validate.port(local_port, "local-port")
        remote = validate.port(remote_port, "remote-port")
        return f"127.0.0.1:{local}:localhost:{remote}"

    def forward(self, local_port: int, remote_port: int) -> None:
        spec = self._forward_spec(local_port, remote_port)
        code, out = self._control(self.ws_hop, "forward", "-L", spec)
        if code == 0:
            with self._lock:
                self._forwards.append(spec)
        else:
            busy = "Address already in use" in out or "forwarding request failed" in out
            raise ConnectError(
                Failure.PORT_BUSY if busy else Failure.OTHER,
                f"could not forward 127.0.0.1:{local_port}: {out or 'ssh -O forward failed'}",
                "choose another port with --local-port" if busy else "run wa-onboard doctor",
                detail=out,
            )

    def close(self) -> None:
        """Stop the masters this engine started, and every ssh they started; leave the rest alone.

        Masters that were already up when we logged in (the background tunnel's, or one the member
        opened with ``ssh wa-ws``) belong to someone else: closing a setup or doctor run must not take
        the tunnel down with it.
        """
        with self._lock:
            owned = list(self._masters.values())
            self._masters.clear()
            forwards, self._forwards = self._forwards, []
        if not any(master.hop is self.ws_hop for master in owned):
            for spec in forwards:  # a borrowed master: take back only what we added to it
                self._control(self.ws_hop, "cancel", "-L", spec, timeout=5.0)
        if not owned:
            return
        # The hop's `ssh -W` is a child of the master: note the family before it is orphaned.
        family = [
            pid
            for pid in our_ssh_processes(self.config, (self.jump_hop.alias, self.ws_hop.alias))
            if procs.descends_from(pid, os.getpid())
        ]
        for master in owned:
            self._control(master.hop, "exit", timeout=5.0)
            with contextlib.suppress(Exception):  # already gone is what we want
                master.child.close(force=True)
        deadline = time.monotonic() + 3.0
        while True:
            left = [pid for pid in family if procs.process_alive(pid)]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for pid in left:
            _kill(pid)


def _timed_out(hop: Hop, seconds: float, transcript: str) -> ConnectError:
    return ConnectError(
        Failure.TIMEOUT,
        f"{hop.host} did not answer within {int(seconds)} s",
        "check your network; the host may be overloaded",
        detail=_last_meaningful_line(transcript),
    )


def _secret_question(after: str, recent: str, hop: Hop) -> SecretQuestion:
    """What the prompt asks, who asks, and the kind of secret, from the text ssh printed."""
    line = after.strip()
    match = _PASSWORD_PROMPT.search(after)
    if match:
        return SecretQuestion(line, match.group("who"), "password")
    prefixed = _KBD_PREFIX.match(line)
    who = prefixed.group("who") if prefixed else hop.who
    prompt = line[prefixed.end() :] if prefixed else line
    instructions = [
        ln.strip()
        for ln in recent.replace("\r", "").splitlines()
        if ln.strip() and not _NOISE.match(ln.strip())
    ]
    text = "\n".join([*instructions[-8:], prompt]) if OTP_WORDS.search(prompt) else prompt
    return SecretQuestion(text, who, secret_kind(prompt))


def _scrub(text: str, secrets_sent: list[str]) -> str:
    for value in secrets_sent:
        if value:
            text = text.replace(value, "******")
    return text


def _control_sockets_exist() -> bool:
    """Whether any control socket of ours exists (ssh names them ``cm-<%C>`` and removes them on
    exit). Cheaper than asking each master: most connects find none."""
    try:
        with os.scandir(sshfiles.control_dir()) as entries:
            return any(entry.name.startswith("cm-") for entry in entries)
    except OSError:
        return True  # cannot tell: ask the masters


def remove_stale_socket(path: str) -> bool:
    """Remove a control socket of ours that no process listens on (connect() is refused). Only a
    socket, only in our control directory, and only when no master answers: never a live one."""
    if sys.platform == "win32":  # no control masters there (and no AF_UNIX to ask)
        return False
    target = os.path.abspath(path)  # noqa: PTH100
    if os.path.dirname(target) != os.path.abspath(sshfiles.control_dir()):  # noqa: PTH100, PTH120
        return False
    if not os.path.basename(target).startswith("cm-"):  # noqa: PTH119
        return False
    try:
        if not stat.S_ISSOCK(os.lstat(target).st_mode):
            return False
    except OSError:
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(2.0)
        probe.connect(target)
    except ConnectionRefusedError:
        pass  # nobody listens: stale
    except OSError:
        return False  # cannot tell (busy, timeout): leave it
    else:
        return False  # a live master after all
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)  # noqa: PTH108
    return True


def our_ssh_processes(config: str, aliases: tuple[str, ...]) -> list[int]:
    """PIDs of ssh processes started with our config file for one of these aliases."""

    def ours(words: list[str]) -> bool:
        return (
            os.path.basename(words[0]).startswith("ssh")  # noqa: PTH119
            and config in words
            and any(alias in words for alias in aliases)
        )

    return procs.pids_matching(ours)


def _kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    for _ in range(20):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
