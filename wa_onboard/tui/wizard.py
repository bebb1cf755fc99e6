"""The first run: welcome -> profile form; then the steps run live (tui/setup_run.py) -> done."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Collapsible, Footer, Input, Label, Static

from wa_onboard.core import validate
from wa_onboard.core.errors import InvalidInput
from wa_onboard.core.profile import Profile
from wa_onboard.core.prompts import server_text
from wa_onboard.core.setup.progress import SetupProgress
from wa_onboard.tui.widgets import TitleBar

if TYPE_CHECKING:
    pass


from wa_onboard.tui.screen import WaScreen
from wa_onboard.tui.setup_run import RunScreen


class WelcomeScreen(WaScreen):
    HELP = (
        "What setup does, and what to have ready. Enter starts; after an unfinished setup it goes on "
        "where it stopped (e edits the settings first)."
    )
    BINDINGS = [
        Binding("enter", "start", "Start"),
        Binding("e", "edit", "Settings"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, resume: SetupProgress | None = None) -> None:
        super().__init__()
        self.resume = resume
        """The last setup of this profile did not finish: Enter goes on with it."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.resume is not None if action == "edit" else True

    def compose(self) -> ComposeResult:
        yield TitleBar(self.subtitle())
        with VerticalScroll(id="welcome"):
            if self.resume is not None:
                stopped = f": {server_text(self.resume.message)}" if self.resume.message else ""
                yield Static(
                    Content.assemble(
                        ("Setup did not finish", "bold $text-warning"),
                        f" last time{stopped}.\nEnter goes on where it stopped (finished steps are skipped).",
                    ),
                    id="welcome-resume",
                )
            yield Static(
                Content.from_markup("[b]Welcome![/b] This gets you onto the lab's JupyterHub."),
                id="welcome-title",
            )
            yield Static(
                "In one run it will:\n"
                "  1. make a key for this laptop and log you in once (password, maybe an MFA code)\n"
                "  2. install the key, so you never type the password here again\n"
                "  3. create your own conda env with ipykernel on the workstation\n"
                '  4. register the "WA" kernel and check that it works\n'
                "  5. start the tunnel and open the hub in your browser",
                id="welcome-steps",
                markup=False,
            )
            yield Static(
                Content.from_markup(
                    "[b]Have ready:[/b] your CAE username and password"
                    " (and your phone, if campus asks for a code)."
                ),
                id="welcome-ready",
            )
            yield Static(
                "Running it again is safe: finished steps are skipped, your env is never recreated.",
                classes="muted",
            )
            with Center():
                yield Button("Go on" if self.resume else "Start", variant="primary", id="start")
        yield Footer()

    def subtitle(self) -> str:
        return "setup (unfinished)" if self.resume else "setup"

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        if self.resume is not None and self.wa.profile.is_complete:
            self.app.push_screen(RunScreen(self.wa.profile))
        else:
            self.action_edit()

    def action_edit(self) -> None:
        self.app.push_screen(ProfileScreen(self.wa.profile))


#: (field, label, placeholder); the first four are what most members touch.
BASIC_FIELDS = (
    ("user", "CAE username", "e.g. bbadger"),
    ("jump", "Jump host", "HOST[:PORT]"),
    ("host", "Workstation", "HOST[:PORT]"),
    ("env", "Conda env", "your env's name"),
)
ADVANCED_FIELDS = (
    ("local_port", "Local port", "on this laptop"),
    ("remote_port", "Hub port", "on the workstation"),
    ("base_url", "Base URL", "/jupyter"),
    ("kernel_name", "Kernel name", "WA"),
    ("display_name", "Display name", "what the Launcher shows"),
    ("conda_module", "Conda module", "anaconda"),
    ("python", "Python", "3.11"),
)
PORT_FIELDS = ("local_port", "remote_port")


def check_field(name: str, text: str) -> tuple[Any, str | None]:
    """One form field through the core's validators: (clean value, None) or (None, the rule broken)."""
    try:
        value: Any = validate.port(text, name.replace("_", "-")) if name in PORT_FIELDS else text.strip()
        Profile().updated(**{name: value})
    except InvalidInput as exc:
        return None, exc.rule
    return value, None


class ProfileScreen(WaScreen):
    HELP = (
        "Your settings, checked as you type. The defaults are the lab's; most members only enter "
        "their CAE username. Enter (or ctrl+s) continues, Esc goes back."
    )
    BINDINGS = [
        Binding("ctrl+s", "submit", "Continue"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, profile: Profile) -> None:
        super().__init__()
        self.profile = profile

    def subtitle(self) -> str:
        return "your settings"

    def compose(self) -> ComposeResult:
        yield TitleBar(self.subtitle())
        with VerticalScroll(id="form"):
            yield Static("Only the username is new to you; the rest are the lab's defaults.", classes="muted")
            for name, label, placeholder in BASIC_FIELDS:
                yield self._row(name, label, placeholder)
            with Collapsible(title="Advanced: ports, URL, kernel, conda", id="advanced"):
                for name, label, placeholder in ADVANCED_FIELDS:
                    yield self._row(name, label, placeholder)
            with Horizontal(classes="buttons"):
                yield Button("Continue", variant="primary", id="submit", compact=True)
                yield Button("Back", id="back", compact=True)
        yield Footer()

    def _row(self, name: str, label: str, placeholder: str) -> Horizontal:
        value = getattr(self.profile, name)
        return Horizontal(
            Label(label, classes="field-label"),
            Vertical(
                Input(str(value), placeholder=placeholder, id=f"in-{name}", classes="field-input"),
                Label("", id=f"err-{name}", classes="field-error", markup=False),
                classes="field-box",
            ),
            classes="field-row",
        )

    def on_mount(self) -> None:
        self.query_one("#in-user", Input).focus()

    @on(Input.Changed, ".field-input")
    def field_changed(self, event: Input.Changed) -> None:
        name = (event.input.id or "").removeprefix("in-")
        _, error = check_field(name, event.value)
        self._show_error(name, error)

    def _show_error(self, name: str, error: str | None) -> None:
        label = self.query_one(f"#err-{name}", Label)
        label.update(error or "")
        label.set_class(bool(error), "-shown")
        self.query_one(f"#in-{name}", Input).set_class(bool(error), "-invalid")

    def collect(self) -> Profile | None:
        """The profile the form describes, or None after showing every error."""
        values: dict[str, Any] = {}
        first_bad: str | None = None
        for name, _, _ in BASIC_FIELDS + ADVANCED_FIELDS:
            value, error = check_field(name, self.query_one(f"#in-{name}", Input).value)
            if name == "user" and error is None and not value:
                error = "is required: your CAE username"
            self._show_error(name, error)
            if error is None:
                values[name] = value
            elif first_bad is None:
                first_bad = name
        if first_bad is not None:
            if first_bad not in {n for n, _, _ in BASIC_FIELDS}:
                self.query_one("#advanced", Collapsible).collapsed = False
            self.query_one(f"#in-{first_bad}", Input).focus()
            return None
        return self.profile.updated(**values)

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def action_submit(self) -> None:
        profile = self.collect()
        if profile is not None:
            self.wa.profile = profile
            self.app.switch_screen(RunScreen(profile))

    @on(Button.Pressed, "#back")
    def action_back(self) -> None:
        self.app.pop_screen()
