"""The tunnel layer: the supervisor, the forward, the hub through it, and websocket upgrades.

What the websocket check proves, and what it cannot. The notebook's kernel channels are a
websocket (``<base>/user/<name>/api/kernels/<id>/channels``) and need the member's login, which the
doctor does not have. An ssh ``-L`` forward is a byte pipe and cannot itself refuse an upgrade;
what breaks kernels on this path is something else answering on the local port (another local
server, a proxy), or a hop that speaks HTTP and drops the ``Upgrade`` (a reset, a hang, or an
answer from something that is not JupyterHub). So the check sends a real RFC 6455 opening
handshake through the forward to a websocket of the member's own server, and accepts:

- ``101`` with the right ``Sec-WebSocket-Accept``, then a close frame answered by a close frame:
  the full proof, frames pass both ways (happens when a server lets the request through);
- an HTTP answer stamped ``X-JupyterHub-Version`` (a redirect to the login page, 403, 404 ...):
  the Upgrade request crossed the forward and the hub's proxy and JupyterHub answered it, on the
  same path a logged-in browser's upgrade takes. This does not prove frames after a 101; over a
  byte pipe, nothing between here and the proxy can tell those frames from any other bytes.

Which websocket: once the member's server runs (JupyterLab open), the proxy hands everything under
``<base>/user/<name>/`` to that server, not to the hub. Its kernel-channels handler drops the
default headers, so its 403 there carries no stamp and looks like any other server's. Its event
bus socket (``api/events/subscribe``, which JupyterLab opens too) answers 403 with the stamp the
hub's single-user extension puts on every answer of a hub-spawned server; with no server running,
the hub answers that URL itself (a stamped redirect). So one URL gives a stamped answer in both
states, from the hub or from the member's own server, and an impostor's answer stays unstamped.

A reset or close without an answer, a 5xx from the proxy, or an answer without JupyterHub's stamp
is a failure.
"""

from __future__ import annotations

import time

from wa_onboard.core import tunnel
from wa_onboard.core.doctor.checks_local import _is_ours
from wa_onboard.core.doctor.context import DoctorContext
from wa_onboard.core.doctor.registry import Outcome, Registry, fail, ok, warn

#: the websocket JupyterLab opens to its server's event bus (jupyter_server 2+); unlike the kernel
#: channels, its answers carry the ``X-JupyterHub-Version`` stamp of the hub's single-user extension
EVENTS_SOCKET = "api/events/subscribe"


def running(ctx: DoctorContext) -> Outcome:
    name = ctx.profile_name
    connect = ctx.command("connect --detach")
    live = ctx.live_tunnel()
    if live is not None:
        since = time.strftime("%H:%M", time.localtime(live.since)) if live.since else "?"
        if live.state == "connected":
            extra = f", {live.reconnects} reconnects" if live.reconnects else ""
            return ok(f"supervisor running (pid {live.pid}, up since {since}{extra})")
        # alive but not connected: it keeps watching and retrying; what it sees is named by the
        # checks below it (hub down, path lost), so here it is a warning, not a second failure
        return warn(
            f"supervisor running (pid {live.pid}), {live.state}: {live.message}",
            live.hint or "it reconnects by itself once the cause is fixed",
        )
    holder = tunnel.port_holder(ctx.profile.local_port)
    if holder is not None and _is_ours(holder.pid, ctx):
        return warn(
            f"an ssh forward of ours holds the port ({holder}), but no supervisor watches it",
            f"it will not reconnect by itself: stop it (kill {holder.pid}) and run {connect}",
        )
    record = tunnel.read_record(name)
    if record is not None:
        last = f" (last: {record.message})" if record.message else ""
        return fail(f"the tunnel is not running{last}", connect)
    return fail("no tunnel is running for this profile", f"{ctx.command('connect')} (or {connect})")


def _probe(ctx: DoctorContext) -> tunnel.Probe:
    p, port = ctx.profile, ctx.tunnel_port
    return ctx.once("tunnel-probe", lambda: tunnel.probe_hub(port, p.base_url, p.remote_port))


def forward(ctx: DoctorContext) -> Outcome:
    probe = _probe(ctx)
    port = ctx.tunnel_port
    if probe.ok or probe.status is not None:
        return ok(
            f"127.0.0.1:{port} reaches the workstation (HTTP {probe.status}, {probe.latency_ms:.0f} ms)"
        )
    return fail(probe.message, probe.hint or f"reconnect: {ctx.command('connect --detach')}")


def hub(ctx: DoctorContext) -> Outcome:
    probe = _probe(ctx)
    p, port = ctx.profile, ctx.tunnel_port
    if not probe.ok:
        hint = probe.hint.replace("wa-onboard setup", ctx.command("setup"))  # this profile's command
        return fail(probe.message, hint or f"{ctx.command('doctor --report FILE')} and send it to the lab")
    version = tunnel.hub_version(port, p.base_url)
    if not version:
        return fail(
            f"127.0.0.1:{port} answers, but not as JupyterHub ({p.base_url}/hub/api has no version)",
            f"another server answers on that port: check `lsof -nP -iTCP:{port}`",
        )
    ctx.once("hub-version", lambda: version)
    return ok(f"JupyterHub {version} is healthy through the tunnel at {p.updated(local_port=port).url}")


def _answered_by(answer: tunnel.WebsocketAnswer, base_url: str) -> str:
    """Who stamped the answer: the hub points into ``<base>/hub/`` (a redirect there, or its CSP report
    URL); the member's own server does not."""
    prefix = f"{base_url}/hub/"
    pointers = answer.headers.get("location", "") + " " + answer.headers.get("content-security-policy", "")
    return "JupyterHub" if prefix in pointers else "your running Jupyter server"


def websocket(ctx: DoctorContext) -> Outcome:
    p, port = ctx.profile, ctx.tunnel_port
    path = f"{p.base_url}/user/{p.user}/{EVENTS_SOCKET}"
    fix = f"reconnect ({ctx.command('disconnect')}; {ctx.command('connect --detach')}); if it persists, " + (
        f"send {ctx.command('doctor --report FILE')} to the lab admins"
    )
    try:
        answer = tunnel.websocket_handshake(port, path)
    except tunnel.NoAnswer:
        return fail("a websocket upgrade through the tunnel was dropped without an answer", fix, path)
    except TimeoutError:
        return fail("a websocket upgrade through the tunnel got no answer within 5 s", fix, path)
    except OSError as exc:
        return fail(f"a websocket upgrade through the tunnel failed: {exc}", fix, path)
    if answer.status == 101:
        if answer.accept_ok and answer.echoed_close:
            return ok("websocket upgrade: 101, and frames pass both ways", path)
        return fail("a websocket upgrade got 101 but the handshake or frames were wrong", fix, path)
    stamped = "x-jupyterhub-version" in answer.headers
    if answer.status >= 500 or not stamped:
        who = "JupyterHub's proxy" if stamped else "something that is not JupyterHub"
        return fail(f"a websocket upgrade was answered {answer.status} by {who}", fix, path)
    who = _answered_by(answer, p.base_url)
    return ok(
        f"websocket upgrade reaches {who} through the tunnel (answered {answer.status} without a login)",
        f"{path}\nA 101 needs your login; a stamped answer from JupyterHub or your server shows the "
        "Upgrade crossed the forward and the proxy.",
    )


def register(reg: Registry) -> None:
    reg.check("tunnel.supervisor", "tunnel", "tunnel supervisor running", ("local.port",))(running)
    reg.check(
        "tunnel.forward",
        "tunnel",
        "the forward reaches the workstation",
        ("tunnel.supervisor", "workstation.hub-port"),
    )(forward)
    reg.check(
        "tunnel.hub", "tunnel", "hub healthy through the tunnel", ("tunnel.forward", "workstation.hub-health")
    )(hub)
    reg.check("tunnel.websocket", "tunnel", "a websocket upgrade passes through", ("tunnel.hub",))(websocket)
