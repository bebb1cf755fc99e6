"""The network, ssh and workstation layers.

The workstation checks read one set of facts gathered by one script in one ssh round trip
(facts.py): over the tunnel's live control master when there is one (started while the fresh
login checks run), else in the fresh login that ``ssh.workstation`` makes anyway.
"""

from __future__ import annotations

import socket

from wa_onboard.core import tunnel
from wa_onboard.core.doctor.context import DoctorContext
from wa_onboard.core.doctor.registry import Outcome, Registry, fail, ok, warn
from wa_onboard.core.remote import quote
from wa_onboard.core.setup import conda_scripts as cs, env_scripts as es
from wa_onboard.core.tunnel import Hop, classify, hops

TCP_TIMEOUT = 5.0
_VPN = "off campus, connect to the campus VPN first"


# ----------------------------------------------------------------------------- network


def resolve(ctx: DoctorContext) -> Outcome:
    host, port = ctx.profile.jump_address
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return fail(
            f"the jump host {host} does not resolve ({exc.strerror})",
            f"check the name ({ctx.command('setup')} --jump HOST) and your network/DNS; {_VPN}",
        )
    addresses = sorted({str(info[4][0]) for info in infos})
    return ok(f"{host} resolves to {', '.join(addresses)}")


def _banner(ctx: DoctorContext) -> tunnel.TcpAnswer:
    host, port = ctx.profile.jump_address
    return ctx.once("banner", lambda: tunnel.tcp_banner(host, port, TCP_TIMEOUT))


def tcp(ctx: DoctorContext) -> Outcome:
    host, port = ctx.profile.jump_address
    try:
        answer = _banner(ctx)
    except TimeoutError:
        return fail(
            f"no answer from {host}:{port} within {TCP_TIMEOUT:.0f} s",
            f"a firewall or the network drops the connection: {_VPN}; otherwise check Wi-Fi/cable",
        )
    except ConnectionRefusedError:
        return fail(
            f"{host}:{port} refuses connections: no ssh server on that port",
            f"check the port ({ctx.command('setup')} --jump HOST:PORT), or ask the lab admins",
        )
    except OSError as exc:
        return fail(
            f"cannot reach {host}:{port}: {exc.strerror or exc}",
            f"check your network connection (Wi-Fi, cable); {_VPN}",
        )
    return ok(f"{host}:{port} ({answer.address}) accepts TCP connections")


def banner(ctx: DoctorContext) -> Outcome:
    host, port = ctx.profile.jump_address
    text = _banner(ctx).banner
    if text.startswith(("SSH-2.0-", "SSH-1.99-")):
        return ok(f"SSH server answers: {text}")
    if not text:
        return fail(
            f"{host}:{port} accepted the connection but sent no SSH greeting",
            "something between you and the jump host intercepts it (a captive portal or firewall): "
            f"log in to the network's portal, or {_VPN}",
        )
    return fail(
        f"{host}:{port} is not an SSH server (it says {text[:60]!r})",
        f"check the jump host and port in the profile ({ctx.command('setup')} --jump HOST:PORT)",
    )


# ----------------------------------------------------------------------------- ssh


def _hops(ctx: DoctorContext) -> tuple[Hop, Hop]:
    return hops(ctx.profile, ctx.profile_name)


def _login_failed(ctx: DoctorContext, stderr: str, hop: Hop) -> Outcome:
    jump, _ = _hops(ctx)
    error = classify(stderr, hop, jump, interactive=False)
    hint = error.hint.replace("wa-onboard setup", ctx.command("setup"))
    return fail(error.message, hint, stderr.strip()[-800:])


def ssh_jump(ctx: DoctorContext) -> Outcome:
    ctx.prefetch_workstation()  # rides the live master, if any, while the fresh logins run
    jump, _ = _hops(ctx)
    done = ctx.ssh("jump", "true")
    if done.returncode != 0:
        return _login_failed(ctx, done.stderr, jump)
    return ok(f"key login as {jump.who} works (BatchMode)")


def ssh_workstation(ctx: DoctorContext) -> Outcome:
    jump, ws = _hops(ctx)
    if ctx.master_alive():
        # the facts ride the live connection; this proves a new key login works too
        done = ctx.ssh("ws", "true")
        if done.returncode != 0:
            return _login_failed(ctx, done.stderr, ws)
        return ok(f"key login as {ws.who} through {jump.host} works; the tunnel's connection is live")
    run = ctx.workstation()
    if not run.result.reached_script:
        if run.result.exit_code == -1:
            return fail(
                f"the workstation did not answer within {int(run.result.seconds)} s",
                "it may be overloaded or stuck in a login script: try again, or ask the lab admins",
            )
        return _login_failed(ctx, run.result.stderr, ws)
    return ok(f"key login as {ws.who} through {jump.host} works (BatchMode)")


# ----------------------------------------------------------------------------- workstation


def _size(kb: int) -> str:
    gb = kb / 1024 / 1024
    return f"{gb:.1f} GB" if gb >= 1 else f"{kb // 1024} MB"


LOW_KB, VERY_LOW_KB = 1024 * 1024, 200 * 1024


def disk(ctx: DoctorContext) -> Outcome:
    facts = ctx.facts()
    free = facts.free_kb
    quota = facts.quota
    clean = "free space in your home on the workstation (e.g. `conda clean --all -y` drops cached packages)"
    detail = facts.block("df") + ("\n" + facts.block("quota") if facts.block("quota") else "")
    if free is None:
        return warn(f"could not read the free space in {facts.home}", "", detail)
    avail, _ = free
    text = f"{_size(avail)} free in {facts.home}"
    if quota is not None:
        left = max(quota.limit_kb - quota.used_kb, 0)
        text += f"; quota {_size(quota.used_kb)} of {_size(quota.limit_kb)} used"
        avail = min(avail, left)
    if avail < VERY_LOW_KB:
        return fail(f"almost no space left: {text}", clean, detail)
    if avail < LOW_KB:
        return warn(f"little space left: {text}", clean, detail)
    return ok(text, detail)


def conda(ctx: DoctorContext) -> Outcome:
    facts = ctx.facts()
    loc = facts.conda
    module = ctx.profile.conda_module
    if loc is None:
        if not facts.out.has("modules"):
            return fail(
                "conda not found, and the login shell has no `module` command",
                "ask the lab admins where conda lives on the workstation",
                facts.conda_report,
            )
        return fail(
            f"conda not found: `module load {module}` failed and no other conda was found",
            f"on the workstation, `module avail` lists the modules; set the right one with "
            f"{ctx.command('setup')} --conda-module NAME, or ask the lab admins",
            facts.conda_report,
        )
    version = f"conda {loc.version}" if loc.version else "conda"
    summary = f"{version} via {loc.source}"
    if loc.how == "module" and loc.requested_module and loc.module != loc.requested_module:
        return warn(
            summary,
            f"there is no module {module}: {ctx.command('setup')} --conda-module {loc.module}",
            facts.conda_report,
        )
    return ok(summary, loc.exe)


def env(ctx: DoctorContext) -> Outcome:
    facts = ctx.facts()
    name = ctx.profile.env
    state = facts.env
    if facts.env_list is None or state is None:
        return fail(
            "`conda env list` failed on the workstation",
            "run it on the workstation to see conda's error; then ask the lab admins",
            facts.block("envs")[-800:],
        )
    if not state.exists:
        listed = ", ".join(p.rsplit("/", 1)[-1] for p in facts.env_list[1:]) or "none"
        return fail(
            f"your conda env '{name}' does not exist",
            f"{ctx.command('setup')} creates it (an existing env is never recreated)",
            f"envs conda knows: {listed}",
        )
    if not state.listed:
        return fail(
            f"{state.prefix} exists but conda does not list it as an env (half-made?)",
            _rebuild_hint(ctx, state, facts.conda),
        )
    if not state.python_version:
        return fail(
            f"env '{name}' at {state.prefix} has no working python", _rebuild_hint(ctx, state, facts.conda)
        )
    return ok(f"env '{name}' at {state.prefix} (Python {state.python_version})")


def _rebuild_hint(ctx: DoctorContext, state: es.EnvState, loc: cs.CondaLocation | None) -> str:
    """What setup would do: rebuild an env in conda's envs folders (with --repair, asking first);
    never delete one outside them (a prefix from environments.txt, e.g. on /scratch)."""
    if loc is not None and state.prefix not in loc.env_prefixes(state.name):
        return es.outside_env_hint(state.prefix, f"{ctx.command('setup')} --env NAME")
    return f"{ctx.command('setup')} --repair rebuilds it (it asks first)"


def ipykernel(ctx: DoctorContext) -> Outcome:
    facts = ctx.facts()
    state = facts.env
    if state is None or not state.exists:
        return fail("the env is missing", f"{ctx.command('setup')}")
    if state.ipykernel:
        return ok(f"ipykernel {state.ipykernel} imports in env '{state.name}'")
    error = facts.ipykernel_error(state.prefix)
    return fail(
        f"ipykernel does not import in env '{state.name}'" + (f": {error}" if error else ""),
        f"{ctx.command('setup')} installs it "
        f"(or, on the workstation: conda install -p {quote(state.prefix)} ipykernel)",
        error,
    )


def kernelspec(ctx: DoctorContext) -> Outcome:
    facts = ctx.facts()
    kernel = facts.kernel
    name = ctx.profile.kernel_name.lower()
    fix = f"{ctx.command('setup')} registers it again with the env's python"
    if kernel is None:
        return fail("could not read the kernelspec (no python on the workstation?)", fix)
    if not kernel.exists:
        return fail(f"no kernel '{name}' is registered ({kernel.path} is missing)", fix)
    state = facts.env
    problem = kernel.problem(ctx.profile.display_name)
    inside = state is not None and kernel.argv0.startswith(state.prefix.rstrip("/") + "/bin/")
    if not problem and state is not None and state.exists and not inside:
        problem = f"the kernel points to {kernel.argv0}, not into env '{state.name}' ({state.prefix})"
    if problem.startswith("the kernel's display name"):
        return warn(f"kernel '{name}': {problem}", fix, kernel.path)
    if problem:
        return fail(f"kernel '{name}' is not usable: {problem}", fix, kernel.path)
    return ok(f"kernel '{name}' ({kernel.display_name}) runs {kernel.argv0}", kernel.path)


def hub_port(ctx: DoctorContext) -> Outcome:
    facts = ctx.facts()
    port = ctx.profile.remote_port
    if facts.hub_address is None:
        return fail(
            f"nothing listens on the workstation's port {port}: JupyterHub is not running",
            "ask the lab admins to start JupyterHub on the workstation"
            f" (or fix the port: {ctx.command('setup')} --remote-port N)",
        )
    return ok(f"something listens on the workstation's {facts.hub_address}:{port}")


def hub_health(ctx: DoctorContext) -> Outcome:
    facts = ctx.facts()
    base = ctx.profile.base_url
    answer = facts.hub_health
    url = f"{base}/hub/health"
    if answer is None:
        return fail(
            f"port {ctx.profile.remote_port} answers, but not with HTTP",
            "another program holds the hub's port on the workstation: ask the lab admins",
        )
    if answer.status == 503:
        return fail(
            "the hub's proxy answers 503: the JupyterHub process behind it is down",
            "ask the lab admins to restart JupyterHub",
        )
    if answer.status == 404:
        return fail(
            f"{url} is not found (404) on the workstation's port {ctx.profile.remote_port}",
            tunnel.not_found_hint(
                base, ctx.profile.remote_port, jupyterhub=answer.from_jupyterhub, setup=ctx.command("setup")
            ),
        )
    if answer.status != 200:
        return fail(f"{url} answered HTTP {answer.status}", "ask the lab admins to check JupyterHub")
    version = facts.hub_version
    return ok(f"JupyterHub {version or '(version unknown)'} is healthy at {url}, asked on the workstation")


def register(reg: Registry) -> None:
    reg.check("network.resolve", "network", "jump host name resolves", ("local.profile",))(resolve)
    reg.check("network.tcp", "network", "jump host's ssh port answers", ("network.resolve",))(tcp)
    reg.check("network.banner", "network", "an SSH server greets us", ("network.tcp",))(banner)
    reg.check(
        "ssh.jump",
        "ssh",
        "key login on the jump host",
        ("network.banner", "local.key", "local.ssh-config"),
    )(ssh_jump)
    reg.check("ssh.workstation", "ssh", "key login on the workstation through it", ("ssh.jump",))(
        ssh_workstation
    )
    ws = ("ssh.workstation",)
    reg.check("workstation.disk", "workstation", "free space and quota in home", ws)(disk)
    reg.check("workstation.conda", "workstation", "conda found", ws)(conda)
    reg.check("workstation.env", "workstation", "your conda env exists", ("workstation.conda",))(env)
    reg.check("workstation.ipykernel", "workstation", "ipykernel imports in the env", ("workstation.env",))(
        ipykernel
    )
    reg.check(
        "workstation.kernelspec",
        "workstation",
        "kernelspec valid and pointing at the env",
        ("workstation.env",),
    )(kernelspec)
    reg.check("workstation.hub-port", "workstation", "something listens on the hub's port", ws)(hub_port)
    reg.check(
        "workstation.hub-health",
        "workstation",
        "hub healthy, asked on the workstation",
        ("workstation.hub-port",),
    )(hub_health)
