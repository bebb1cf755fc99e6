"""The laptop layer: the ssh client, the profile, the key, our ssh config, the local port."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from wa_onboard.core import paths, tunnel
from wa_onboard.core.doctor.context import DoctorContext
from wa_onboard.core.doctor.registry import Outcome, Registry, fail, ok, warn
from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import DEFAULT_PROFILE, ProfileStore, command_line
from wa_onboard.core.tunnel import INSTALL_SSH_HINT


def ssh_client(ctx: DoctorContext) -> Outcome:
    version = ctx.once("ssh-version", tunnel.client_version)
    if version is None:
        return fail("no ssh client on PATH", INSTALL_SSH_HINT)
    if not version.has_proxyjump:
        return fail(
            f"{version.short} is older than OpenSSH 7.3 and has no ProxyJump",
            "update the OpenSSH client to 7.3 or newer (" + INSTALL_SSH_HINT.split("(", 1)[1],
            version.text,
        )
    return ok(f"{version.short} (ProxyJump supported)", version.text)


def profile(ctx: DoctorContext) -> Outcome:
    try:
        prof = ctx.load_profile()
    except WaError as exc:
        return fail(exc.message, exc.hint or f"fix it with {ctx.command('setup')}")
    if not prof.is_complete:
        return fail(
            f"profile '{ctx.profile_name}' is not set up yet (no user name)",
            f"{ctx.command('setup')} --user YOUR_CAE_USERNAME",
        )
    ctx.set_profile(prof)
    return ok(
        f"profile '{ctx.profile_name}': {prof.user} on {prof.host} via {prof.jump}",
        "\n".join(f"{k} = {v}" for k, v in prof.to_dict().items()),
    )


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def key(ctx: DoctorContext) -> Outcome:
    path = paths.key_file()
    pub = path.with_name(path.name + ".pub")
    if not path.exists():
        return fail(
            f"no key at {path}", f"{ctx.command('setup')} makes one and installs it (asks your password once)"
        )
    if sys.platform != "win32":  # not os.name: mypy narrows on sys.platform only (os.getuid)
        if path.stat().st_uid != os.getuid():
            return fail(f"{path} belongs to another user", f"sudo chown $USER {path}")
        if _mode(path) & 0o077:
            return fail(
                f"{path} is readable by others (mode {_mode(path):04o}): ssh refuses to use it",
                f"chmod 600 {path}",
            )
    if not pub.exists():
        return warn(
            f"key {path} has no public half ({pub.name})",
            f"ssh-keygen -y -f {path} > {pub}",
        )
    try:
        out = subprocess.run(
            ["ssh-keygen", "-l", "-f", str(pub)], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ok(f"key {path} (mode {_mode(path):04o})")
    if out.returncode != 0:
        return fail(
            f"{pub} is not a valid public key",
            f"ssh-keygen -y -f {path} > {pub}",
            out.stderr.strip(),
        )
    fingerprint = out.stdout.split()[1] if len(out.stdout.split()) > 1 else ""
    mode = f"mode {_mode(path):04o}, " if os.name == "posix" else ""
    return ok(f"key {path.name} ({mode}{fingerprint})", out.stdout.strip())


def ssh_config(ctx: DoctorContext) -> Outcome:
    """Compare what ssh will really use (``ssh -G``) with the profile, field by field."""
    prof = ctx.profile
    cfg = tunnel.config_path()
    fix = f"{ctx.command('setup')} rewrites it"
    if not cfg.exists():
        return fail(f"no ssh config at {cfg}", fix)
    if os.name == "posix" and _mode(cfg) & 0o022:
        return fail(
            f"{cfg} is writable by others (mode {_mode(cfg):04o}): ssh refuses it", f"chmod 600 {cfg}"
        )
    names = tunnel.aliases(ctx.profile_name)
    problems: list[str] = []
    key_path = str(paths.key_file())
    known = str(tunnel.known_hosts_path())
    for role, alias, (host, port) in (
        ("jump", names.jump, prof.jump_address),
        ("ws", names.ws, prof.host_address),
    ):
        try:
            opts = tunnel.effective_options(ctx.profile_name, role)
        except ValueError as exc:
            return fail(f"ssh cannot read {cfg}", fix, str(exc))
        except (OSError, subprocess.TimeoutExpired) as exc:
            return fail(f"cannot run ssh -G: {exc}", INSTALL_SSH_HINT)

        def first(name: str, opts: dict[str, list[str]] = opts) -> str:
            return opts.get(name, [""])[0]

        if first("hostname") == alias:
            problems.append(f"no Host block for {alias}")
            continue
        expected = {"hostname": host, "port": str(port), "user": prof.user}
        for field, want in expected.items():
            if first(field).lower() != want.lower():
                problems.append(f"{alias}: {field} is {first(field)!r}, the profile says {want!r}")
        identities = [str(Path(p).expanduser()) for p in opts.get("identityfile", [])]
        if key_path not in identities:
            problems.append(f"{alias}: IdentityFile is not {key_path}")
        if known not in " ".join(opts.get("userknownhostsfile", [])).split():
            problems.append(f"{alias}: UserKnownHostsFile is not {known}")
        if role == "ws" and first("proxycommand") != tunnel.proxy_command(names.jump):
            problems.append(
                f"{alias}: ProxyCommand is {first('proxycommand') or 'missing'}, not via {names.jump}"
            )
    if problems:
        return fail(f"our ssh config does not match the profile: {problems[0]}", fix, "\n".join(problems))
    return ok(f"{cfg} matches the profile ({names.jump}, {names.ws})")


def _ssh_profile(pid: int) -> str | None:
    """The profile whose tunnel ``pid`` is, when it is an ssh started with our config file for one of a
    profile's hosts (a master's last argument is its host alias); None for anything else."""
    argv = tunnel.process_cmdline(pid) or []
    if not argv or not Path(argv[0]).name.startswith("ssh") or str(tunnel.config_path()) not in argv:
        return None
    try:
        known = ProfileStore().names()
    except WaError:
        known = []
    for name in dict.fromkeys([DEFAULT_PROFILE, *known]):
        hosts = tunnel.aliases(name)
        if argv[-1] in (hosts.jump, hosts.ws):
            return name
    return None


def _is_ours(pid: int | None, ctx: DoctorContext) -> bool:
    """The port holder is this profile's live supervisor, or an ssh it started (another profile's tunnel on
    the same port is not ours: its pid must not be offered to kill as an orphan of this one)."""
    if pid is None:
        return False
    record = ctx.live_tunnel()
    if record is not None and record.pid == pid:
        return True
    if _ssh_profile(pid) == ctx.profile_name:
        return True
    return record is not None and tunnel.process_parent(pid) == record.pid


def local_port(ctx: DoctorContext) -> Outcome:
    """The same policy as connect (core.tunnel.supervisor): a port held by another program is not a fault,
    connect moves to the next free one on its own; only "no free port near it" is."""
    port = ctx.profile.local_port
    live = ctx.live_tunnel()
    moved = live if live is not None and live.local_port != port else None
    state = tunnel.port_state(port)
    if state is tunnel.PortState.DENIED:  # the system's refusal, not another program: connect's words
        refused = tunnel.privileged_port(port)
        return fail(refused.message, refused.hint)
    if state is tunnel.PortState.FREE:
        if moved is not None:  # e.g. connect --local-port N, not saved in the profile
            return ok(f"127.0.0.1:{port} is free; your tunnel uses {moved.local_port}: {moved.url}")
        return ok(f"127.0.0.1:{port} is free for the tunnel")
    holder = tunnel.port_holder(port)
    if holder is not None and _is_ours(holder.pid, ctx):
        return ok(f"127.0.0.1:{port} is held by our tunnel ({holder})")
    if holder is None or holder.pid is None:
        who = holder.name if holder is not None else "a program this user cannot see"
        find = f"find it with `lsof -nP -iTCP:{port} -sTCP:LISTEN` (or `sudo ss -ltnp`) and stop it"
        argv: list[str] = []
    elif (other := _ssh_profile(holder.pid)) is not None:
        who = f"the tunnel of wa-onboard profile '{other}' ({holder})"
        find = f"stop it ({command_line(other, 'disconnect')})"
        argv = tunnel.process_cmdline(holder.pid) or []
    else:
        who = f"another program: {holder}"
        find = f"stop that program (kill {holder.pid})"
        argv = tunnel.process_cmdline(holder.pid) or []
    detail = " ".join(argv)
    if moved is not None:
        return ok(
            f"port {port} is taken by {who}; your tunnel uses {moved.local_port} instead: {moved.url}", detail
        )
    spare = tunnel.next_free_port(port + 1)
    if spare is None:
        return fail(
            f"127.0.0.1:{port} is taken by {who}, and no port after it is free",
            f"{find}, or choose a port: {ctx.command('connect')} --local-port N",
            detail,
        )
    return warn(
        f"port {port} is taken by {who}; {ctx.command('connect')} will use {spare} instead",
        f"to keep port {port}: {find}",
        detail,
    )


def register(reg: Registry) -> None:
    reg.check("local.ssh-client", "local", "OpenSSH client present, 7.3 or newer")(ssh_client)
    reg.check("local.profile", "local", "profile valid and complete")(profile)
    reg.check("local.key", "local", "key present with safe permissions")(key)
    reg.check(
        "local.ssh-config",
        "local",
        "our ssh config matches the profile",
        ("local.profile", "local.ssh-client"),
    )(ssh_config)
    reg.check("local.port", "local", "local port free, ours, or a free one next to it", ("local.profile",))(
        local_port
    )
