"""Start the jump host's login before Python has imported the rest of wa-onboard.

A daily ``wa-onboard connect --detach`` (or ``open``) used to spend ~90 ms (on the lab's 2-core
machine) importing its modules before ssh even started, and the jump host's login takes ~170 ms
after that. Both can run at once. The entry point calls :func:`maybe_start` first thing: it forks
the background supervisor-to-be, which starts the jump master at once (the very argv the engine
would use), then imports the rest while ssh logs in, and waits for its orders. The CLI meanwhile
runs exactly as before, and where it would fork a supervisor (``daemon.launch_detached``) it
hands this one the profile instead (:func:`take`). The supervisor adopts the master only if our
ssh_config is still byte for byte what ssh read; otherwise it stops it and logs in afresh.

If the CLI ends any other way (a bad flag, an error, Ctrl-C, a crash), the orders pipe closes, and
the speculative supervisor stops its master and exits: nothing is left. It starts only for the
daily command, settings from the profile (a ``--jump`` on the command line must not first log in
to the host the old setting names), and never when a control socket of ours exists (a tunnel or a
member's ``ssh wa-ws`` may be up: nothing to gain, and the normal path reuses it), nor when any
profile uses the paramiko engine. In the lab it saves ~35 ms of a ~0.5 s connect (interleaved
runs with and without ``WA_ONBOARD_NO_PRESTART``): less than the imports it hides, because the two
Python processes and ssh's key exchange now share the 2 cores.

This module imports only ``os``, ``sys`` and the two leaves it shares with the engine (core/places: where
our files are; tunnel/sshcmd: the master's argv) at the top: it runs before everything else.
"""

# ruff: noqa: PTH111, PTH118, PTH123, PTH208 - os.path, not pathlib: pathlib costs ~5 ms to import here

from __future__ import annotations

import os
import sys

from wa_onboard.core import places
from wa_onboard.core.places import DEFAULT_PROFILE
from wa_onboard.core.tunnel import sshcmd
from wa_onboard.core.tunnel.sshcmd import Prestarted as Prestarted  # the supervisor adopts it

TYPE_CHECKING = False  # typing and dataclasses cost ~15 ms to import here: this module runs first
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Serve = Callable[[bytes, str, int, Prestarted | None], int]
    """The supervisor's side: given the CLI's orders, the profile name, the readiness pipe and the
    early master, run the tunnel; its exit code."""


# --- background processes (here, because this module runs before anything heavy is loaded) --------


def fork_daemon(run: Callable[[], int], close_in_child: tuple[int, ...] = ()) -> None:
    """Fork twice and ``run()`` in the grandchild: in a session of its own (the terminal's Ctrl-C
    and hang-up are not its), never a child of the caller, and no zombie (the middle child is
    reaped here). The grandchild ends with ``run()``'s exit code."""
    if sys.platform == "win32":  # no fork there: callers spawn instead (this tells mypy's Windows run)
        raise NotImplementedError("no fork on Windows")
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked processes (the lab tests cover it)
        code = 1
        try:
            for fd in close_in_child:
                os.close(fd)
            os.setsid()
            code = run() if os.fork() == 0 else 0
        finally:
            os._exit(code)
    os.waitpid(child, 0)


def detach_stdio() -> None:  # pragma: no cover - runs in a forked supervisor
    """A background supervisor lets go of the terminal and of the caller's pipes: a caller that
    reads our output (a script, a test) must see EOF when the CLI exits, not when the tunnel stops."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    # fds this process inherited are inheritable (Python opens its own non-inheritable): close them
    for name in os.listdir("/dev/fd"):
        try:
            if int(name) > 2 and os.get_inheritable(int(name)):
                os.close(int(name))
        except OSError:
            pass


# --- the CLI side --------------------------------------------------------------------------------


class _Pending:
    """A speculative supervisor waiting for this CLI: ``orders`` (write end) takes the profile as
    one JSON line; ``ready`` (read end) gives its pid, then ``connected``/``down``, as a forked one."""

    def __init__(self, profile_name: str, orders: int, ready: int) -> None:
        self.profile_name = profile_name
        self.orders = orders
        self.ready = ready


_pending: _Pending | None = None


def _profile_name(argv: list[str]) -> str | None:
    """The --profile value, the default one, or None when the command line is not the daily
    ``connect --detach`` or ``open`` (which starts the tunnel in the background when it is down):
    a setting given on it (never log in to the host the old one names), or anything odd. Those are
    left to the CLI alone."""
    words, switches, name, i = [], set(), DEFAULT_PROFILE, 0
    while i < len(argv):
        flag, eq, value = argv[i].partition("=")
        if flag in ("--profile", "--engine"):
            if not eq:
                i += 1
                value = argv[i] if i < len(argv) else ""
            if flag == "--engine":
                if value != "openssh":
                    return None
                switches.add(flag)
            name = value if flag == "--profile" else name
        elif flag.startswith("-"):
            if argv[i] not in ("--detach", "--yes", "--no-browser"):
                return None
            switches.add(argv[i])
        else:
            words.append(flag)
        i += 1
    plain = name.replace("-", "").replace("_", "")
    daily = (words == ["connect"] and "--detach" in switches) or (words == ["open"] and not switches)
    return name if daily and plain.isalnum() and plain.isascii() else None


def _profiles_file() -> str:
    """Where platformdirs puts config.toml (profile.py's path; platformdirs costs ~8 ms to import
    here). A wrong guess only means the paramiko check below reads nothing."""
    override = os.environ.get("WA_ONBOARD_CONFIG")
    if override:
        return os.path.expanduser(override)
    if sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Application Support")
    else:
        base = os.environ.get("XDG_CONFIG_HOME", "").strip() or os.path.expanduser("~/.config")
    return os.path.join(base, places.APP, "config.toml")


def _worth_it(profile_name: str) -> bytes | None:
    """Our ssh_config's bytes when a prestart can help: the profile's hosts are in it, no control
    socket of ours exists, and no profile uses paramiko."""
    try:
        with open(places.ssh_config(), "rb") as handle:
            config = handle.read()
    except OSError:
        return None  # not set up yet
    sockets = places.control_dir()
    if sockets != places.ssh_dir() and places.private_dir_problem(sockets) is not None:
        return None  # the CLI's own path refuses it and says why
    try:
        with os.scandir(sockets) as entries:
            if any(entry.name.startswith("cm-") for entry in entries):
                return None
    except FileNotFoundError:
        pass  # no control dir: no socket either
    except OSError:
        return None
    if f"Host {sshcmd.alias_names(profile_name)[0]}\n".encode() not in config:
        return None
    try:
        with open(_profiles_file(), "rb") as handle:
            if b"paramiko" in handle.read():
                return None
    except OSError:
        pass
    return config


def maybe_start(argv: list[str], load: Callable[[], Serve]) -> None:
    """Called first thing by the entry point; returns at once in the parent (the CLI). ``load`` imports
    the supervisor (the heavy part, run while ssh logs in) and returns what serves the orders: the
    entry point names it, so this module never imports the supervisor, which imports it."""
    global _pending
    if sys.platform == "win32" or not hasattr(os, "fork") or os.environ.get("WA_ONBOARD_NO_PRESTART"):
        return
    name = _profile_name(argv)
    config = _worth_it(name) if name else None
    if name is None or config is None:
        return
    orders_r, orders_w = os.pipe()
    ready_r, ready_w = os.pipe()
    fork_daemon(lambda: _speculate(name, config, orders_r, ready_w, load), (orders_w, ready_r))
    os.close(orders_r)
    os.close(ready_w)
    _pending = _Pending(name, orders_w, ready_r)


def take(profile_name: str, profile: dict[str, Any], explicit_port: bool) -> int | None:
    """The CLI's hand-over: give the waiting supervisor its orders. Returns the read end of its
    readiness pipe (pid line first), or None when none waits for this profile."""
    global _pending
    pending, _pending = _pending, None
    if pending is None:
        return None
    if pending.profile_name != profile_name:
        os.close(pending.orders)  # EOF: it stops its master and exits
        os.close(pending.ready)
        return None
    import json

    line = json.dumps({"profile": profile, "explicit_port": explicit_port}) + "\n"
    try:
        os.write(pending.orders, line.encode("utf-8"))  # one short line: a pipe takes it whole
    except OSError:  # it died: the caller forks a fresh one
        os.close(pending.ready)
        return None
    finally:
        os.close(pending.orders)
    return pending.ready


# --- the speculative supervisor ------------------------------------------------------------------


def _speculate(
    name: str, config: bytes, orders: int, ready: int, load: Callable[[], Serve]
) -> int:  # pragma: no cover
    """Start the jump master, import the rest while it logs in, wait for orders, then serve."""
    os.write(ready, f"{os.getpid()}\n".encode("ascii"))
    detach_stdio()
    jump = sshcmd.alias_names(name)[0]
    marker = sshcmd.new_marker()
    argv = sshcmd.master_argv("ssh", places.ssh_config(), jump, marker, interactive=False)
    prestarted: Prestarted | None
    try:
        prestarted = Prestarted(sshcmd.spawn_master(argv), marker, jump, config)
    except Exception:  # no ssh on PATH: the supervisor's own login says so, with the fix
        prestarted = None
    try:
        serve = load()  # the heavy part, while ssh logs in
        got = b""
        while not got.endswith(b"\n"):
            chunk = os.read(orders, 65536)
            if not chunk:
                return 0  # the CLI ended without handing over: nothing to do
            got += chunk
        os.close(orders)
        return serve(got, name, ready, prestarted)
    finally:
        if prestarted is not None:
            prestarted.discard()  # unless adopted (then the engine owns it, and it is long gone here)
