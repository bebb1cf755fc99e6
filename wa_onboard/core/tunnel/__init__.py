"""The tunnel: log in through the jump host, forward the hub's port, keep it up. Its public face.

Setup, the doctor and the front ends see the tunnel through the names below only (an
import-linter contract in pyproject.toml holds setup and the doctor to it). Inside, one module
per question:

- ``engines/``: how we talk ssh. ``base`` is the contract (Engine, its optional features with
  defaults, Failure, ConnectError, Hop); ``openssh`` (+ ``transcript``: reading ssh's dialogue) and
  ``paramiko`` (+ ``paramiko_auth``, ``paramiko_channels``); the package's ``make_engine`` picks one.
- ``sshcmd``: every ssh command line and environment we run (a leaf; ``sshclient`` runs the
  doctor's own ssh calls on top of it).
- ``sshfiles``: our ssh_config, key and the Include line; ``hostkeys``: our known_hosts.
- ``supervisor``: the watch loop (probe, reconnect with backoff); ``reach``: when the path is back;
  ``daemon``: the background supervisor (detach, readiness, verify, stop, ``python -m`` entry).
- ``probe``: the hub's health through the forward, banners and websockets (shared with the doctor).
- ``state``: the state file, the profile lock, the log; ``procs``: process and port facts (psutil).
- ``prestart``: the early jump-host login at the CLI's first line (imports only ``sshcmd``/places).

Names load on first use (PEP 562): the CLI's early login imports ``tunnel.prestart`` before
anything heavy, and this file runs first then, so it must stay cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~15 ms to import, and this runs on the CLI's early path
if TYPE_CHECKING:  # the same names as _FACE below, for type checkers (a unit test holds them equal)
    from wa_onboard.core.tunnel.daemon import (
        start_detached as start_detached,
        stop_supervisor as stop_supervisor,
        verify_status as verify_status,
    )
    from wa_onboard.core.tunnel.engines import (
        make_engine as make_engine,
    )
    from wa_onboard.core.tunnel.engines.base import (
        INSTALL_SSH_HINT as INSTALL_SSH_HINT,
        ConnectError as ConnectError,
        Engine as Engine,
        Failure as Failure,
        Hop as Hop,
        hops as hops,
    )
    from wa_onboard.core.tunnel.engines.transcript import (
        classify as classify,
    )
    from wa_onboard.core.tunnel.hostkeys import (
        known_keys as known_keys,
    )
    from wa_onboard.core.tunnel.probe import (
        HttpAnswer as HttpAnswer,
        NoAnswer as NoAnswer,
        Probe as Probe,
        TcpAnswer as TcpAnswer,
        WebsocketAnswer as WebsocketAnswer,
        hub_version as hub_version,
        not_found_hint as not_found_hint,
        probe_hub as probe_hub,
        tcp_banner as tcp_banner,
        websocket_handshake as websocket_handshake,
    )
    from wa_onboard.core.tunnel.procs import (
        PortState as PortState,
        next_free_port as next_free_port,
        port_holder as port_holder,
        port_state as port_state,
        process_cmdline as process_cmdline,
        process_parent as process_parent,
    )
    from wa_onboard.core.tunnel.sshclient import (
        client_version as client_version,
        effective_options as effective_options,
        master_alive as master_alive,
        run_quiet as run_quiet,
        ssh_argv as ssh_argv,
    )
    from wa_onboard.core.tunnel.sshcmd import (
        quiet_env as quiet_env,
    )
    from wa_onboard.core.tunnel.sshfiles import (
        add_include as add_include,
        aliases as aliases,
        config_path as config_path,
        ensure_key as ensure_key,
        known_hosts_path as known_hosts_path,
        proxy_command as proxy_command,
        public_key_text as public_key_text,
        user_config_path as user_config_path,
        write_config as write_config,
    )
    from wa_onboard.core.tunnel.state import (
        Drop as Drop,
        LockHeld as LockHeld,
        ProfileLock as ProfileLock,
        TunnelRecord as TunnelRecord,
        live_record as live_record,
        lock_is_held as lock_is_held,
        log_file as log_file,
        read_record as read_record,
        recent_drops as recent_drops,
        remove_record as remove_record,
        tunnel_logger as tunnel_logger,
    )
    from wa_onboard.core.tunnel.supervisor import (
        Supervisor as Supervisor,
        privileged_port as privileged_port,
    )

#: public name -> the module under this package that defines it
_FACE = {
    **dict.fromkeys(("start_detached", "stop_supervisor", "verify_status"), "daemon"),
    "make_engine": "engines",
    **dict.fromkeys(("INSTALL_SSH_HINT", "ConnectError", "Engine", "Failure", "Hop", "hops"), "engines.base"),
    "classify": "engines.transcript",
    "known_keys": "hostkeys",
    **dict.fromkeys(
        (
            "HttpAnswer",
            "NoAnswer",
            "Probe",
            "TcpAnswer",
            "WebsocketAnswer",
            "hub_version",
            "not_found_hint",
            "probe_hub",
            "tcp_banner",
            "websocket_handshake",
        ),
        "probe",
    ),
    **dict.fromkeys(("PortState", "next_free_port", "port_holder", "port_state", "process_cmdline"), "procs"),
    "process_parent": "procs",
    **dict.fromkeys(
        ("client_version", "effective_options", "master_alive", "run_quiet", "ssh_argv"), "sshclient"
    ),
    "quiet_env": "sshcmd",
    **dict.fromkeys(
        (
            "add_include",
            "aliases",
            "config_path",
            "ensure_key",
            "known_hosts_path",
            "proxy_command",
            "public_key_text",
            "user_config_path",
            "write_config",
        ),
        "sshfiles",
    ),
    **dict.fromkeys(
        (
            "Drop",
            "LockHeld",
            "ProfileLock",
            "TunnelRecord",
            "live_record",
            "lock_is_held",
            "log_file",
            "read_record",
            "recent_drops",
            "remove_record",
            "tunnel_logger",
        ),
        "state",
    ),
    **dict.fromkeys(("Supervisor", "privileged_port"), "supervisor"),
}

__all__ = sorted(_FACE)


def __dir__() -> list[str]:
    return sorted({*globals(), *_FACE} - {"TYPE_CHECKING"})


def __getattr__(name: str) -> object:
    where = _FACE.get(name)
    if where is None:  # a submodule (``from wa_onboard.core.tunnel import state``) is found by import
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    # Not kept here: each use asks the defining module, so there is one binding of every name
    # (a test that replaces state.read_record replaces it for the doctor too).
    return getattr(importlib.import_module(f"{__name__}.{where}"), name)
