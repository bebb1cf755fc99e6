"""The setup steps running live (progress, log, failure with its fix), then done."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Footer, Label, ProgressBar, RichLog, Static
from textual.worker import Worker, WorkerState

from wa_onboard.core.errors import Cancelled, WaError
from wa_onboard.core.profile import Profile, command_line
from wa_onboard.core.prompts import server_text
from wa_onboard.core.results import StepResult, StepStatus
from wa_onboard.core.setup.plan import (
    PlanEvent,
    SetupOutcome,
    StepFinished,
    StepOutput,
    StepProgress,
    StepStarted,
)
from wa_onboard.tui.backend import StepInfo
from wa_onboard.tui.widgets import STEP_ICONS, StepRow, TitleBar

if TYPE_CHECKING:
    pass


from wa_onboard.tui.screen import WaScreen


class RunScreen(WaScreen):
    """The setup plan running: a live list of steps, a log of what they report, progress, and failure."""

    HELP = (
        "The setup steps run one after the other; the log shows each step, what it reports (conda's "
        "output, progress) and how it ended. "
        "Questions (password, host key) pop up as dialogs. If a step fails, its error and the fix "
        "are shown: retry, open the diagnostics, or quit."
    )
    BINDINGS = [
        Binding("escape", "cancel_run", "Cancel", tooltip="stop after the current line of work"),
        Binding("r", "retry", "Retry"),
        Binding("d", "diagnostics", "Diagnostics"),
        Binding("q", "app.quit", "Quit"),
    ]

    class StepsListed(Message):
        def __init__(self, steps: list[StepInfo]) -> None:
            super().__init__()
            self.steps = steps

    class PlanEventReceived(Message):
        def __init__(self, event: PlanEvent) -> None:
            super().__init__()
            self.event = event

        def can_replace(self, message: Message) -> bool:
            # Progress is a level, not a log: a newer one for the same step replaces an older one.
            return (
                isinstance(message, RunScreen.PlanEventReceived)
                and isinstance(self.event, StepProgress)
                and isinstance(message.event, StepProgress)
                and message.event.step_id == self.event.step_id
            )

    class SetupEnded(Message):
        def __init__(self, outcome: SetupOutcome | None, error: WaError | None = None) -> None:
            super().__init__()
            self.outcome = outcome
            self.error = error

    def __init__(self, profile: Profile) -> None:
        super().__init__()
        self.profile = profile
        self.rows: dict[str, StepRow] = {}
        self.last_logged = ""
        self.running: str | None = None
        self.started_at = 0.0
        self.failed = False
        self.cancel = threading.Event()

    def subtitle(self) -> str:
        return f"setting up {self.profile.user}@{self.profile.host}"

    def compose(self) -> ComposeResult:
        yield TitleBar(self.subtitle())
        with Vertical(id="run"):
            steps = VerticalScroll(id="steps")
            steps.border_title = "Setup"
            yield steps
            with Horizontal(id="progress", classes="hidden"):
                yield Label("", id="progress-message")
                yield ProgressBar(total=100, show_eta=False, id="progress-bar")
            with Vertical(id="failure", classes="hidden"):
                yield Static("", id="failure-title")
                yield Static("", id="failure-error", markup=False)
                yield Static("", id="failure-detail", markup=False)
                yield Static("", id="failure-hint")
                with Horizontal(classes="buttons"):
                    yield Button("Retry", variant="primary", id="retry", compact=True)
                    yield Button("Diagnostics", id="diagnostics", compact=True)
                    yield Button("Quit", variant="error", id="quit", compact=True)
            log = RichLog(id="log", wrap=True, markup=False, highlight=False, max_lines=5000)
            log.border_title = "Log"
            yield log
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)
        self.start()

    def start(self) -> None:
        self.failed = False
        self.wa.prompter.take_declined()  # a dialog cancelled before this run is not this run's
        self.cancel = threading.Event()
        self.wa.cancel_on_exit(self.cancel)
        self.query_one("#failure").add_class("hidden")
        self.query_one("#run").remove_class("-failed")
        self.refresh_bindings()
        self.run_setup()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("retry", "diagnostics"):
            return self.failed
        if action == "cancel_run":
            return not self.failed and not self.cancel.is_set()
        return True

    def action_cancel_run(self) -> None:
        """The core checks this between lines of output, so a long conda run stops soon, cleanly."""
        self.cancel.set()
        self.query_one("#log", RichLog).write(Content.styled("── cancelling… ──", "$foreground-muted"))
        self.refresh_bindings()

    @work(thread=True, exclusive=True, group="setup", exit_on_error=False)
    def run_setup(self) -> None:
        app = self.wa
        try:
            self.post_message(self.StepsListed(app.backend.setup_steps(app.profile_name, self.profile)))
            app.store.save(self.profile, app.profile_name)
            outcome = app.backend.run_setup(
                app.profile_name,
                self.profile,
                app.prompter,
                self._emit,
                self.cancel,
            )
        except WaError as exc:
            self.post_message(self.SetupEnded(None, exc))
        else:
            self.post_message(self.SetupEnded(outcome))
        finally:
            app.prompter.forget()

    def _emit(self, event: PlanEvent) -> None:
        """The core's event sink, called in the worker thread: hand the event to the UI."""
        self.post_message(self.PlanEventReceived(event))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "setup" and event.state is WorkerState.ERROR:
            error = event.worker.error
            self.show_failure(
                "Setup stopped", WaError(f"unexpected error: {error!r}", "run `wa-onboard doctor`")
            )

    def on_run_screen_steps_listed(self, message: StepsListed) -> None:
        container = self.query_one("#steps", VerticalScroll)
        known = set(self.rows)
        for step in message.steps:
            if step.id in known:
                self.rows[step.id].show(StepStatus.PENDING)
            else:
                self.rows[step.id] = StepRow(step.id, step.title)
                container.mount(self.rows[step.id])

    def on_run_screen_plan_event_received(self, message: PlanEventReceived) -> None:
        event = message.event
        log = self.query_one("#log", RichLog)
        if isinstance(event, StepStarted):
            self.running, self.started_at = event.step_id, self.wa.clock()
            row = self.rows.get(event.step_id)
            if row is not None:
                row.show(StepStatus.RUNNING, seconds=0)
                self.query_one("#steps", VerticalScroll).scroll_to_widget(row, animate=False)
            log.write(Content.assemble(("── ", "$foreground-muted"), (event.title, "bold")))
            self.last_logged = ""
        elif isinstance(event, StepOutput):
            self._log_line(event.line)
        elif isinstance(event, StepProgress):
            self._log_line(event.message, "$foreground-muted")
            self.query_one("#progress").remove_class("hidden")
            self.query_one("#progress-message", Label).update(Content(server_text(event.message)))
            bar = self.query_one("#progress-bar", ProgressBar)
            bar.update(total=None if event.fraction is None else 100, progress=100 * (event.fraction or 0))
        elif isinstance(event, StepFinished):
            result = event.result
            self.running = None
            self.query_one("#progress").add_class("hidden")
            row = self.rows.get(result.step_id)
            if row is not None:
                # A failure's message goes to the failure panel, not into the row.
                summary = "" if result.status is StepStatus.FAILED else result.summary
                row.show(result.status, summary, result.seconds)
            self._log_result(result)

    def _log_line(self, line: str, style: str = "") -> None:
        """A line the core reported, shown as written (no markup, no escape codes); progress that
        repeats the output line just logged (conda's lines are both) is not logged twice."""
        text = server_text(line).rstrip()
        if text and text.strip() != self.last_logged.strip():
            self.query_one("#log", RichLog).write(Content.styled(text, style) if style else Content(text))
        self.last_logged = text or self.last_logged

    def _log_result(self, result: StepResult) -> None:
        """How the step ended, and for a failure the tool's last words (its detail)."""
        log = self.query_one("#log", RichLog)
        icon = STEP_ICONS[result.status]
        style = "$text-error" if result.status is StepStatus.FAILED else "$foreground-muted"
        if result.summary:
            log.write(Content.styled(f"{icon} {server_text(result.summary)}", style))
        for line in server_text(result.detail).splitlines():
            log.write(Content.styled(f"  {line}", "$foreground-muted"))

    def _tick(self) -> None:
        if self.running and self.running in self.rows:
            self.rows[self.running].show(StepStatus.RUNNING, seconds=self.wa.clock() - self.started_at)

    def on_run_screen_setup_ended(self, message: SetupEnded) -> None:
        outcome = message.outcome
        if outcome is not None and outcome.succeeded:
            self.app.switch_screen(DoneScreen(self.profile, outcome))
            return
        if isinstance(message.error, Cancelled):
            self.show_failure("Setup stopped", WaError("cancelled", "press r to go on where it stopped"))
            return
        if message.error is not None:
            self.show_failure("Setup could not run", message.error)
            return
        assert outcome is not None
        failed = outcome.failed
        if failed is None:  # the plan stopped early without a failure: say so rather than guess
            self.show_failure("Setup stopped", WaError("not every step ran", "run setup again"))
            return
        title = self.rows[failed.step_id].title if failed.step_id in self.rows else failed.step_id
        self.show_failure(f"Failed: {title}", WaError(failed.summary, failed.hint), failed.detail)
        self.query_one("#steps", VerticalScroll).scroll_to_widget(self.rows[failed.step_id], animate=False)

    def show_failure(self, title: str, error: WaError, detail: str = "") -> None:
        if self.wa.prompter.take_declined():
            # the core's hint is for the command line ("--password-stdin"); here, r asks again
            error = WaError(error.message, "you cancelled the login dialog: press r to be asked again")
        self.failed = True
        self.wa.exit_code = 1
        self.wa.farewell = [
            f"wa-onboard: {title}: {error.message}",
            f"  go on where it stopped with: {command_line(self.wa.profile_name, 'setup')}",
        ]
        self.query_one("#progress").add_class("hidden")
        self.query_one("#failure-title", Static).update(
            Content.assemble(("✗ ", "bold $text-error"), (title, "bold"))
        )
        detail = server_text(detail)  # the failing tool's last words
        self.query_one("#failure-error", Static).update(server_text(error.message))
        self.query_one("#failure-detail", Static).update(detail)
        self.query_one("#failure-detail").set_class(not detail, "hidden")
        hint = self.query_one("#failure-hint", Static)
        hint.update(Content.assemble(("→ ", "bold $text-warning"), error.hint) if error.hint else "")
        self.query_one("#failure").remove_class("hidden")
        self.query_one("#run").add_class("-failed")
        self.query_one("#retry", Button).focus()
        self.refresh_bindings()
        # the panel shrinks the log: once laid out again, show its end (the failing tool's last words)
        log = self.query_one("#log", RichLog)
        self.call_after_refresh(log.scroll_end, animate=False, immediate=True)

    @on(Button.Pressed, "#retry")
    def action_retry(self) -> None:
        if self.failed:
            self.query_one("#log", RichLog).write(Content.styled("── retry ──", "$foreground-muted"))
            self.wa.exit_code = 0
            self.wa.farewell = []
            self.start()

    @on(Button.Pressed, "#diagnostics")
    def action_diagnostics(self) -> None:
        self.wa.show_diagnostics()

    @on(Button.Pressed, "#quit")
    def quit_pressed(self) -> None:
        self.wa.request_quit()


class DoneScreen(WaScreen):
    HELP = "Setup is finished. The tunnel keeps running in the background."
    BINDINGS = [
        Binding("enter", "dashboard", "Dashboard"),
        Binding("o", "open", "Open browser"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, profile: Profile, outcome: SetupOutcome) -> None:
        super().__init__()
        self.profile = profile
        self.outcome = outcome

    def compose(self) -> ComposeResult:
        name = self.wa.profile_name
        url = self.outcome.url
        yield TitleBar(self.subtitle())
        with VerticalScroll(id="done"):
            yield Static(
                Content.assemble(("✓ ", "bold $text-success"), ("You're set up.", "bold")), id="done-title"
            )
            yield Static(Content.assemble("Your hub:  ", (url, "bold $text-accent")), id="done-url")
            if self.outcome.browser_opened:
                opened = "It is open in your browser."
            else:
                opened = "Open it in your browser (press o)."
            yield Static(
                f"{opened} Log in with your campus password; the Launcher shows "
                f'"{self.profile.display_name}".',
                id="done-browser",
                markup=False,
            )
            yield Static("The tunnel keeps running in the background.", classes="muted")
            yield Static(
                Content.assemble(
                    ("Tomorrow, run:  ", "bold"), (command_line(name, "connect"), "bold $text-accent")
                ),
                id="done-tomorrow",
            )
            yield Static(
                f"Is it up?  {command_line(name, 'status')}    Stop it:  {command_line(name, 'disconnect')}\n"
                f"Something wrong?  {command_line(name, 'doctor')}",
                classes="muted",
                markup=False,
            )
            with Horizontal(classes="buttons"):
                yield Button("Dashboard", variant="primary", id="dashboard", compact=True)
                yield Button("Open browser", id="open", compact=True)
                yield Button("Quit", id="quit", compact=True)
        yield Footer()

    def subtitle(self) -> str:
        return "done"

    @on(Button.Pressed, "#dashboard")
    def action_dashboard(self) -> None:
        self.wa.show_dashboard()

    @on(Button.Pressed, "#open")
    def action_open(self) -> None:
        self.wa.open_browser(self.outcome.url)

    @on(Button.Pressed, "#quit")
    def quit_pressed(self) -> None:
        self.wa.request_quit()
