"""Every day: the tunnel's state at a glance, and the keys to act on it."""

from __future__ import annotations

from dataclasses import replace

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Footer, Label, Static

from wa_onboard.core.profile import command_line
from wa_onboard.core.prompts import ConfirmQuestion
from wa_onboard.core.results import TunnelState, TunnelStatus
from wa_onboard.tui.modals import ConfirmModal
from wa_onboard.tui.screen import WaScreen
from wa_onboard.tui.widgets import TitleBar, fmt_uptime

STATE_LABELS = {
    TunnelState.CONNECTING: ("◌", "connecting"),
    TunnelState.UP: ("●", "connected"),
    TunnelState.RECONNECTING: ("◐", "reconnecting"),
    TunnelState.DOWN: ("○", "down"),
}
FIELDS = (
    ("url", "URL"),
    ("port", "Local port"),
    ("uptime", "Uptime"),
    ("reconnects", "Reconnects"),
    ("latency", "Last probe"),
    ("hub", "Hub"),
    ("route", "Route"),
)


class DashboardScreen(WaScreen):
    HELP = (
        "The tunnel to the hub. It reconnects by itself after Wi-Fi changes and sleep; "
        "r forces it now. When you quit with the tunnel up, you choose whether it keeps running "
        "in the background."
    )
    BINDINGS = [
        Binding("o", "open", "Open", tooltip="open the hub in your browser"),
        Binding("r", "reconnect", "Reconnect", tooltip="bring the tunnel up again now"),
        Binding("x", "disconnect", "Disconnect", tooltip="stop the tunnel"),
        Binding("d", "diagnostics", "Diagnose", tooltip="check every layer and say what is wrong"),
        Binding("p", "switch_profile", "Profile", tooltip="switch to another profile, or make one"),
        Binding("q", "app.quit", "Quit", tooltip="leave (asks whether the tunnel keeps running)"),
    ]

    def subtitle(self) -> str:
        return f"{self.wa.profile_name}: {self.wa.profile.user}@{self.wa.profile.host}"

    def compose(self) -> ComposeResult:
        yield TitleBar(self.subtitle())
        with VerticalScroll(id="dashboard"):
            with Vertical(id="tunnel") as box:
                box.border_title = "Tunnel"
                yield Label("", id="state")
                with Grid(id="facts"):
                    for key, label in FIELDS:
                        yield Label(label, classes="fact-label")
                        yield Label("-", id=f"f-{key}", classes="fact-value", markup=False)
            yield Static("", id="tunnel-message")
            yield Static("", id="daily", classes="muted")
        yield Footer()

    def on_mount(self) -> None:
        profile = self.wa.profile
        self._set("route", f"{profile.user}@{profile.jump} → {profile.host}")
        self.query_one("#daily", Static).update(
            f"From a terminal: {command_line(self.wa.profile_name, 'connect')}  ·  "
            f"{command_line(self.wa.profile_name, 'status')}"
        )
        self.show(self.wa.last_status or TunnelStatus(self.wa.profile_name, TunnelState.CONNECTING))
        self.set_interval(1.0, self._tick)
        self.wa.ensure_tunnel()

    def _set(self, key: str, value: str) -> None:
        self.query_one(f"#f-{key}", Label).update(value)

    def show(self, status: TunnelStatus) -> None:
        """Render one snapshot from the supervisor."""
        icon, word = STATE_LABELS[status.state]
        state = self.query_one("#state", Label)
        state.update(f" {icon} {word} ")
        for other in TunnelState:
            state.set_class(other is status.state, f"-{other.name.lower()}")
        profile = self.wa.profile
        url = status.url or profile.url
        self._set("url", url)
        self._set("port", f"{status.local_port or profile.local_port} (127.0.0.1 only)")
        self._set("reconnects", str(status.reconnects))
        self._set("latency", "-" if status.latency_ms is None else f"{status.latency_ms:.0f} ms")
        self._set("hub", f"JupyterHub {status.hub_version}" if status.hub_version else "-")
        message = self.query_one("#tunnel-message", Static)
        if status.state is TunnelState.DOWN and self.wa.prompter.take_declined():
            # the core's hint is for the command line ("--password-stdin"); here, r asks again
            status = replace(status, hint="you cancelled the login dialog: press r to connect again")
        if status.message or status.hint:
            message.update(
                Content.assemble(
                    status.message, ("\n→ " if status.hint else "", "bold $text-warning"), status.hint
                )
            )
        else:
            message.update("")
        self._tick()
        if self.open_when_up and status.state is TunnelState.UP:
            self.open_when_up = False
            self.wa.open_browser(url)

    def _tick(self) -> None:
        status = self.wa.last_status
        if status is not None and status.state is TunnelState.UP and status.since is not None:
            self._set("uptime", fmt_uptime(self.wa.clock() - status.since))
        else:
            self._set("uptime", "-")

    open_when_up = False
    """The member asked for the browser while the tunnel was not up: open it once it is."""

    def action_open(self) -> None:
        status = self.wa.last_status
        url = status.url if status and status.url else self.wa.profile.url
        if status is not None and status.state is TunnelState.UP:
            self.wa.open_browser(url)
        elif status is not None and status.state is TunnelState.DOWN:
            # the URL leads nowhere while the tunnel is down: say so, and offer to connect
            question = ConfirmQuestion(
                "The tunnel is down, so the hub cannot open. Connect now?",
                f"The hub opens in your browser once the tunnel is up ({url}).",
                default=True,
            )
            self.app.push_screen(ConfirmModal(question), self._connect_answered)
        else:
            self.open_when_up = True
            self.notify("The tunnel is not up yet: the hub opens in your browser once it is.", markup=False)

    def _connect_answered(self, yes: bool | None) -> None:
        if yes:
            self.open_when_up = True
            self.wa.reconnect_tunnel()

    def action_reconnect(self) -> None:
        self.wa.reconnect_tunnel()

    def action_disconnect(self) -> None:
        self.wa.stop_tunnel()

    def action_diagnostics(self) -> None:
        self.wa.show_diagnostics()

    def action_switch_profile(self) -> None:
        self.wa.pick_profile()
