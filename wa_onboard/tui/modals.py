"""Dialogs: each a ModalScreen[T] that answers through dismiss()."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from wa_onboard.core.prompts import (
    MAX_TRIES,
    ConfirmQuestion,
    HostKeyQuestion,
    SecretQuestion,
    echo_allowed,
    server_text,
)

#: the dialog's title for each kind of secret (an unknown prompt may still be a secret: it is masked too)
SECRET_TITLES = {"password": "Campus password", "otp": "Verification code", "other": "Login question"}


class SecretModal(ModalScreen[str | None]):
    """A password or MFA prompt, shown as the server wrote it, with the hop that asks."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: SecretQuestion) -> None:
        super().__init__(classes="dialog-screen")
        self.question = question

    def compose(self) -> ComposeResult:
        q = self.question
        with Vertical(classes="dialog", id="secret-dialog") as box:
            box.border_title = SECRET_TITLES[q.kind]
            yield Label(
                Content.assemble(("asked by ", "$foreground-muted"), (server_text(q.hop), "bold")),
                id="secret-hop",
            )
            if q.attempt > 1:
                yield Label(
                    f"That was not accepted. Try again (attempt {q.attempt} of {MAX_TRIES}).",
                    classes="dialog-warning",
                    id="secret-retry",
                )
            # the server's words, shown as written: never markup, never escape codes
            yield Label(server_text(q.prompt), id="secret-prompt", classes="server-prompt", markup=False)
            # masked unless a plain one-time code: "Passwort:", "Enter PIN:" and unknown prompts are secrets
            yield Input(password=not echo_allowed(q.prompt), id="secret-input", placeholder=_placeholder(q))
            yield Label(
                "Used once for this login, never stored." if q.kind == "password" else "",
                classes="dialog-note",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#secret-input", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def submit(self) -> None:
        self.dismiss(self.query_one("#secret-input", Input).value)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def _placeholder(question: SecretQuestion) -> str:
    return {"password": "password", "otp": "code"}.get(question.kind, "answer")


class HostKeyModal(ModalScreen[bool]):
    """First contact with a host: its fingerprint, and trust or cancel (cancel is the default)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("t", "trust", "Trust")]

    def __init__(self, question: HostKeyQuestion) -> None:
        super().__init__(classes="dialog-screen")
        self.question = question

    def compose(self) -> ComposeResult:
        q = self.question
        with Vertical(classes="dialog", id="hostkey-dialog") as box:
            box.border_title = "New host"
            yield Label(Content.assemble("First connection to ", (server_text(q.host), "bold"), "."))
            yield Label(f"Its {server_text(q.key_type)} key fingerprint is:", markup=False)
            yield Label(server_text(q.fingerprint), id="fingerprint", classes="fingerprint", markup=False)
            yield Label(
                "Trust it only if it matches the fingerprint the lab publishes. A changed key "
                "later is refused.",
                classes="dialog-note",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Trust", variant="warning", id="trust")
                yield Button("Cancel", variant="primary", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#trust")
    def action_trust(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class ConfirmModal(ModalScreen[bool]):
    """A yes/no about a change to the member's files (the ~/.ssh/config line, a rebuild)."""

    BINDINGS = [Binding("escape", "no", "No"), Binding("y", "yes", "Yes"), Binding("n", "no", "No")]

    def __init__(self, question: ConfirmQuestion) -> None:
        super().__init__(classes="dialog-screen")
        self.question = question

    def compose(self) -> ComposeResult:
        q = self.question
        with Vertical(classes="dialog", id="confirm-dialog") as box:
            box.border_title = "Destructive change" if q.destructive else "Your consent"
            yield Label(q.title, classes="dialog-title", markup=False)
            if q.detail:
                yield Static(q.detail, classes="dialog-detail", markup=False)
            with Horizontal(classes="dialog-buttons"):
                # The highlighted button is the default answer (the focused one).
                yes_default = q.default and not q.destructive
                yield Button(
                    "Yes",
                    variant="error" if q.destructive else "primary" if yes_default else "default",
                    id="yes",
                )
                yield Button("No", variant="default" if yes_default else "primary", id="no")

    def on_mount(self) -> None:
        default = self.question.default and not self.question.destructive
        self.query_one("#yes" if default else "#no", Button).focus()

    @on(Button.Pressed, "#yes")
    def action_yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def action_no(self) -> None:
        self.dismiss(False)


QuitChoice = Literal["keep", "stop"]


class QuitModal(ModalScreen[QuitChoice | None]):
    """Leaving with a live tunnel: keep it in the background, or stop it."""

    BINDINGS = [
        Binding("escape", "stay", "Stay"),
        Binding("k", "keep", "Keep running"),
        Binding("s", "stop", "Stop it"),
    ]

    def __init__(self, url: str, can_keep: bool) -> None:
        super().__init__(classes="dialog-screen")
        self.url = url
        self.can_keep = can_keep

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="quit-dialog") as box:
            box.border_title = "Quit"
            yield Label(Content.assemble("The tunnel to ", (self.url, "bold"), " is up."))
            if self.can_keep:
                yield Label(
                    "Keep it running in the background? (`wa-onboard disconnect` stops it later)",
                    classes="dialog-note",
                )
            with Horizontal(classes="dialog-buttons"):
                if self.can_keep:
                    yield Button("Keep running", variant="primary", id="keep")
                yield Button("Stop it", variant="warning", id="stop")
                yield Button("Stay", id="stay")

    def on_mount(self) -> None:
        self.query_one("#keep" if self.can_keep else "#stop", Button).focus()

    @on(Button.Pressed, "#keep")
    def action_keep(self) -> None:
        if self.can_keep:
            self.dismiss("keep")

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        self.dismiss("stop")

    @on(Button.Pressed, "#stay")
    def action_stay(self) -> None:
        self.dismiss(None)


class ProfilePicker(ModalScreen[str | None]):
    """Pick another stored profile, or start a new one (which opens the wizard)."""

    NEW = "\x00new"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, names: list[str], current: str) -> None:
        super().__init__(classes="dialog-screen")
        self.names = names
        self.current = current

    def compose(self) -> ComposeResult:
        options = [
            Option(f"{name}  (current)" if name == self.current else name, id=name) for name in self.names
        ]
        options.append(Option("+ new profile…", id=self.NEW))
        with Vertical(classes="dialog", id="profile-dialog") as box:
            box.border_title = "Switch profile"
            yield OptionList(*options, id="profiles")
            yield Input(placeholder="name for the new profile", id="new-name", classes="hidden")
            yield Label("", id="new-name-error", classes="field-error", markup=False)

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == self.NEW:
            field = self.query_one("#new-name", Input)
            field.remove_class("hidden")
            field.focus()
        else:
            self.dismiss(event.option.id)

    @on(Input.Submitted, "#new-name")
    def named(self, event: Input.Submitted) -> None:
        from wa_onboard.core import validate
        from wa_onboard.core.errors import InvalidInput

        try:
            self.dismiss(validate.profile_name(event.value.strip()))
        except InvalidInput as exc:
            self.query_one("#new-name-error", Label).update(exc.rule)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SaveReportModal(ModalScreen[Path | None]):
    """Where to write the redacted report."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default: Path) -> None:
        super().__init__(classes="dialog-screen")
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="report-dialog") as box:
            box.border_title = "Save the report"
            yield Label("Passwords, codes, tokens and keys are removed. Send the file to the lab admins.")
            yield Input(str(self.default), id="report-path")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def save(self) -> None:
        text = self.query_one("#report-path", Input).value.strip()
        self.dismiss(Path(text).expanduser() if text else None)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """The keys of the screen underneath, and where to go from here."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def __init__(self, title: str, keys: list[tuple[str, str]], about: str) -> None:
        super().__init__(classes="dialog-screen")
        self.help_title = title
        self.keys = keys
        self.about = about

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help-dialog") as box:
            box.border_title = f"Help: {self.help_title}"
            with VerticalScroll(id="help-body"):
                yield Static(self.about, classes="help-about", markup=False)
                for key, description in self.keys:
                    yield Label(Content.assemble((f"{key:<10}", "bold $text-accent"), f"  {description}"))
            yield Label("Esc closes this.", classes="dialog-note")

    def action_close(self) -> None:
        self.dismiss(None)
