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
from wa_onboard.core.prompts import Prompter
from wa_onboard.core.remote import RemoteShell, SubprocessShell
from wa_onboard.core.tunnel import procs, sshcmd, sshfiles
from wa_onboard.core.tunnel.engines import transcript
from wa_onboard.core.tunnel.engines.base import INSTALL_SSH_HINT, ConnectError, Engine, Failure, Hop, hops

# --- the engine ----------------------------------------------------------------------------------


@dataclass
class _Master:
    """A control master we started: the pexpect child and a thread that drains its pty."""

    hop: Hop
    child: Any
    reader: threading.Thread | None = None


class OpenSshEngine(Engine):
    """The Engine contract over OpenSSH control masters."""

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
        self._prestarted: sshcmd.Prestarted | None = None
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

    def _control(self, hop: Hop, command: str, *extra: str, timeout: float = 10.0) -> tuple[int, str]:
        """``ssh -O command``: talk to a master. Returns (exit code, stderr+stdout)."""
        try:
            done = subprocess.run(
                sshcmd.control_argv(self.ssh, self.config, hop.alias, command, *extra),
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
        argv = sshcmd.master_argv(
            self.ssh,
            self.config,
            hop.alias,
            marker,
            interactive=interactive,
            connect_timeout=self.connect_timeout,
            extra=tuple(extra),
        )
        return sshcmd.spawn_master(argv)

    def adopt(self, prestarted: sshcmd.Prestarted) -> bool:
        """Take over a jump master started before the supervisor knew its profile (core/prestart);
        login() uses it if it is what login would have started, and stops it otherwise."""
        self._prestarted = prestarted
        return True

    def _can_adopt(self, early: sshcmd.Prestarted, interactive: bool) -> bool:
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
        early: sshcmd.Prestarted | None = None,
    ) -> None:
        if early is not None:
            child, marker = early.child, early.marker
        else:
            marker = sshcmd.new_marker()
            child = self._spawn(hop, interactive, marker, extra)
        transcript.converse(
            child, marker, hop, self.jump_hop, prompter, interactive=interactive, timeout=self.login_timeout
        )
        master = _Master(hop, child)
        master.reader = threading.Thread(
            target=self._drain, args=(master,), name=f"ssh-{hop.alias}", daemon=True
        )
        with self._lock:
            self._masters[hop.role] = master
        master.reader.start()

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
            argv = sshcmd.key_check_argv(self.ssh, self.config, hop.alias, str(paths.key_file()))
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
        return sshcmd.shell_argv(self.ssh, self.config, hop.alias)

    def workstation(self) -> RemoteShell:
        return SubprocessShell(self._shell_argv(self.ws_hop))

    def jump(self) -> RemoteShell:
        return SubprocessShell(self._shell_argv(self.jump_hop))

    def ping(self, timeout: float = 5.0) -> bool | None:
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
