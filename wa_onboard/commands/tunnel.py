"""``wa-onboard connect | status | disconnect | open``: plain text, fast, no TUI.

Daily use must take about a second: a live supervisor for the profile is reused, a live control
master is reused, and nothing heavier than the core is imported.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from wa_onboard.core import tunnel
from wa_onboard.core.browser import open_url
from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import Profile, command_line
from wa_onboard.core.results import TunnelState, TunnelStatus
from wa_onboard.core.tunnel import ConnectError, Failure

if TYPE_CHECKING:
    from wa_onboard.context import CommandContext

EXIT_INTERRUPTED = 130


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _print_status_line(status: TunnelStatus) -> None:
    stamp = time.strftime("%H:%M:%S")
    text = f"{stamp} {status.state.value}: {status.message or status.state.value}"
    if status.state is TunnelState.UP:
        text += f" -> {status.url}" + (f" (hub {status.hub_version})" if status.hub_version else "")
    _out(text)
    if status.hint and status.state is not TunnelState.UP:
        _out(f"         hint: {status.hint}")


def run(command: str, ctx: CommandContext) -> int:
    profile = ctx.load_profile(save_flags=command == "connect")
    if command == "status":
        return status(ctx, profile)
    profile.require_complete()
    if command == "connect":
        return connect(ctx, profile)
    if command == "disconnect":
        return disconnect(ctx, profile)
    if command == "open":
        return open_hub(ctx, profile)
    raise WaError(f"unknown command {command}")


def _explicit_port(ctx: CommandContext) -> bool:
    return getattr(ctx.args, "local_port", None) is not None


def connect(ctx: CommandContext, profile: Profile) -> int:
    args, name = ctx.args, ctx.profile_name
    if tunnel.lock_is_held(name):
        status = tunnel.verify_status(name, profile)
        if status.connected:
            _out(f"already connected: {status.url} (background pid {status.pid})")
            _out(f"stop it with: {command_line(ctx.profile_name, 'disconnect')}")
            if not args.no_browser and not args.detach:
                open_url(status.url)
            return 0
        raise WaError(
            f"the tunnel of profile {name} already runs, but it is {status.state.value}: {status.message}",
            f"wait for it, or stop it with: {command_line(ctx.profile_name, 'disconnect')}",
        )
    _trust_new_host_keys(ctx, profile)
    if args.detach:
        summary = tunnel.start_detached(profile, name, explicit_port=_explicit_port(ctx), fork=True)
        record = tunnel.read_record(name)
        url = record.url if record else profile.url
        _out(summary)
        _out(f"open {url}   stop it with: {command_line(ctx.profile_name, 'disconnect')}")
        if not args.no_browser:
            open_url(url)
        return 0
    return _foreground(ctx, profile)


def _trust_new_host_keys(ctx: CommandContext, profile: Profile) -> None:
    """First contact with a host: show its fingerprint and ask (``--yes`` accepts), before the
    key-only, never-prompting supervisor starts. Never asks for a password."""
    from wa_onboard.core import tunnel

    if all(tunnel.known_keys(*address) for address in (profile.jump_address, profile.host_address)):
        return
    from wa_onboard.commands.prompter_cli import CliPrompter

    prompter = CliPrompter(assume_yes=ctx.args.yes, allow_secrets=False)
    if not (ctx.args.yes or prompter.interactive):
        return  # the supervisor will say the key is not trusted yet, and how to fix it
    engine = tunnel.make_engine(profile, ctx.profile_name)
    try:
        engine.login(prompter, interactive=True)
    except ConnectError as exc:
        if exc.failure is not Failure.PASSWORD_NEEDED:
            raise
    finally:
        engine.close()


def _foreground(ctx: CommandContext, profile: Profile) -> int:
    args, name = ctx.args, ctx.profile_name
    lock = tunnel.ProfileLock(name)
    try:
        lock.acquire()
    except tunnel.LockHeld:
        raise WaError(
            f"another wa-onboard is starting the tunnel for profile {name}", "try again in a moment"
        ) from None
    supervisor = tunnel.Supervisor(
        profile,
        name,
        explicit_port=_explicit_port(ctx),
        on_status=_print_status_line,
        logger=tunnel.tunnel_logger(name),
    )
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        supervisor.start()
        if not args.no_browser:
            open_url(supervisor.url)
        _out("Ctrl-C stops the tunnel")
        final = supervisor.run(stop)
        if final.state is TunnelState.DOWN and not stop.is_set():
            supervisor.stop_engine()
            return 1
        supervisor.shutdown()
        return 0
    except KeyboardInterrupt:
        supervisor.shutdown("stopped (Ctrl-C)")
        return EXIT_INTERRUPTED
    except BaseException:
        supervisor.stop_engine()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        lock.release()


def status_dict(status: TunnelStatus) -> dict[str, object]:
    """The ``status --json`` contract (tests pin these keys)."""
    return {
        "profile": status.profile,
        "connected": status.connected,
        "state": status.state.value,
        "url": status.url,
        "local_port": status.local_port,
        "pid": status.pid,
        "since": status.since,
        "reconnects": status.reconnects,
        "hub_version": status.hub_version,
        "latency_ms": round(status.latency_ms, 1) if status.latency_ms is not None else None,
        "message": status.message,
        "hint": status.hint,
    }


def drops_dicts(profile_name: str) -> list[dict[str, object]]:
    """The ``status --log --json`` contract: the last day's drops, oldest first."""
    return [
        {
            "lost": d.lost,
            "cause": d.cause,
            "ended": d.ended,
            "outcome": d.outcome,
            "seconds": round(d.seconds, 2),
        }
        for d in tunnel.recent_drops(profile_name)
    ]


def drops_log(ctx: CommandContext) -> int:
    drops = drops_dicts(ctx.profile_name)
    if ctx.args.json:
        _out(json.dumps(drops, indent=2))
        return 0
    if not drops:
        _out("no drops in the last 24 hours")
        return 0
    _out(f"drops in the last 24 hours ({len(drops)}):")
    for d in drops:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(d["lost"])))  # type: ignore[arg-type]
        end = f"back after {d['seconds']:.2f} s" if d["outcome"] == "back" else f"not back: {d['outcome']}"
        _out(f"  {when}  {d['cause']}; {end}")
    return 0


def status(ctx: CommandContext, profile: Profile) -> int:
    if ctx.args.log:
        return drops_log(ctx)
    current = tunnel.verify_status(ctx.profile_name, profile)
    if ctx.args.json:
        _out(json.dumps(status_dict(current), indent=2))
        return 0 if current.connected else 1
    if current.connected:
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(current.since)) if current.since else "?"
        _out(f"connected: {current.url}")
        _out(f"  pid {current.pid}, up since {since}, {current.reconnects} reconnect(s)")
        if current.hub_version:
            _out(f"  JupyterHub {current.hub_version}")
        return 0
    if current.state in (TunnelState.RECONNECTING, TunnelState.CONNECTING) and current.pid:
        # a live supervisor is at work: "start it" would be wrong advice
        _out(f"not connected yet: {current.message or current.state.value}")
        if current.hint:
            _out(f"  hint: {current.hint}")
        stop = command_line(ctx.profile_name, "disconnect")
        _out(f"  it keeps trying on its own (pid {current.pid}); stop it with: {stop}")
        return 1
    _out(f"not connected ({current.state.value}){': ' + current.message if current.message else ''}")
    if current.hint:
        _out(f"  hint: {current.hint}")
    elif not profile.is_complete:  # nothing to connect with yet: "connect" would only say so
        setup = command_line(ctx.profile_name, "setup --user YOUR_CAE_USERNAME")
        _out(f"  set this laptop up first: {setup}")
    else:
        _out(f"  start it with: {command_line(ctx.profile_name, 'connect')}")
    return 1


def disconnect(ctx: CommandContext, profile: Profile) -> int:
    name = ctx.profile_name
    # the supervisor's masters end with it, even after a crash (their pty hangs up); masters the
    # member opened (`ssh wa-ws` through the Include) are theirs, and stay
    pid = tunnel.stop_supervisor(name)
    if not tunnel.lock_is_held(name):
        tunnel.remove_record(name)
    _out(f"stopped the tunnel of profile {name} (pid {pid})" if pid else f"no tunnel was running for {name}")
    return 0


def open_hub(ctx: CommandContext, profile: Profile) -> int:
    current = tunnel.verify_status(ctx.profile_name, profile)
    url = current.url
    if not current.connected:
        if tunnel.lock_is_held(ctx.profile_name):
            raise WaError(
                f"the tunnel is running but {current.state.value}: {current.message}",
                current.hint or command_line(ctx.profile_name, "status"),
            )
        _out(tunnel.start_detached(profile, ctx.profile_name, fork=True))
        record = tunnel.read_record(ctx.profile_name)
        url = record.url if record else profile.url
    if open_url(url):
        _out(f"opened {url}")
    else:
        _out(f"open {url} in your browser")
    return 0
