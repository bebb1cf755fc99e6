"""The app: which screen first, the tunnel session it owns, questions from the core, and a clean exit.

``make_app`` is the one factory: the CLI, the tests and the screenshot script all build the app
through it, with the real backend or a fake one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.worker import Worker, WorkerState

from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import DEFAULT_PROFILE, Profile, ProfileStore
from wa_onboard.core.prompts import HostKeyQuestion, SecretQuestion
from wa_onboard.core.results import TunnelState, TunnelStatus
from wa_onboard.core.setup import progress as setup_progress
from wa_onboard.core.setup.progress import SetupProgress
from wa_onboard.tui.backend import Backend, TunnelSession
from wa_onboard.tui.modals import (
    ConfirmModal,
    HelpScreen,
    HostKeyModal,
    ProfilePicker,
    QuitChoice,
    QuitModal,
    SecretModal,
)
from wa_onboard.tui.prompter import ModalPrompter, QuestionAsked

LIVE = (TunnelState.CONNECTING, TunnelState.UP, TunnelState.RECONNECTING)


class TunnelChanged(Message):
    """The supervisor reported a new snapshot; only the newest one matters."""

    def __init__(self, status: TunnelStatus) -> None:
        super().__init__()
        self.status = status

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TunnelChanged)


class WaApp(App[int]):
    """wa-onboard's app: the setup wizard, the tunnel dashboard and the diagnostics screen."""

    TITLE = "wa-onboard"
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("ctrl+c", "interrupt", "Quit", show=False, priority=True),
        Binding("question_mark,f1", "help", "Help", tooltip="this help"),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False, tooltip="light / dark theme"),
    ]

    def __init__(
        self,
        backend: Backend,
        store: ProfileStore,
        profile_name: str = DEFAULT_PROFILE,
        profile: Profile | None = None,
        *,
        clock: Callable[[], float] = time.time,
        wizard: bool = False,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.force_wizard = wizard
        """``wa-onboard setup``: the wizard even when the profile is complete (a rerun, a repair)."""
        self.store = store
        self.profile_name = profile_name
        self.profile = profile or Profile()
        self.clock = clock
        """Wall clock for uptimes and step times; tests pin it so snapshots do not drift."""
        self.prompter = ModalPrompter(self)
        self.session: TunnelSession | None = None
        self.last_status: TunnelStatus | None = None
        self.watching = False
        self.exit_code = 0
        """1 while a setup failure is on screen: quitting then exits 1."""
        self.farewell: list[str] = []
        """Printed after the app has left the terminal (a failed setup's line and how to resume)."""
        self._interrupted = False
        self._cancels: list[threading.Event] = []
        self._quitting = False

    # -- screens -------------------------------------------------------------------------------

    def on_mount(self) -> None:
        # a complete profile whose setup never finished (a failed or killed first run) is not set up
        resume = setup_progress.unfinished(self.profile_name) if self.profile.is_complete else None
        if self.profile.is_complete and not self.force_wizard and resume is None:
            self.show_dashboard()
        else:
            self.start_wizard(resume)

    def start_wizard(self, resume: SetupProgress | None = None) -> None:
        from wa_onboard.tui.wizard import WelcomeScreen

        self._replace_stack(WelcomeScreen(resume))

    def show_dashboard(self) -> None:
        from wa_onboard.tui.dashboard import DashboardScreen

        self._replace_stack(DashboardScreen())

    def show_diagnostics(self) -> None:
        from wa_onboard.tui.diagnostics import DiagnosticsScreen

        self.push_screen(DiagnosticsScreen())

    def _replace_stack(self, screen: Any) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()
        if len(self.screen_stack) > 1:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def pick_profile(self) -> None:
        self.push_screen(ProfilePicker(self.store.names(), self.profile_name), self._switch_profile)

    def _switch_profile(self, name: str | None) -> None:
        if name is None or name == self.profile_name:
            return
        self._leave_tunnel()
        try:
            profile = self.store.load(name)
        except WaError as exc:
            self.notify(f"{exc.message}\n{exc.hint}", severity="error", markup=False)
            return
        self.profile_name, self.profile = name, profile or Profile()
        self.last_status = None
        self.on_mount()

    # -- questions from the core ---------------------------------------------------------------

    def on_question_asked(self, message: QuestionAsked) -> None:
        question = message.question
        if isinstance(question, SecretQuestion):
            self.push_screen(SecretModal(question), message.answer)
        elif isinstance(question, HostKeyQuestion):
            self.push_screen(HostKeyModal(question), message.answer)
        else:
            self.push_screen(ConfirmModal(question), message.answer)

    # -- the tunnel ----------------------------------------------------------------------------

    def ensure_tunnel(self) -> None:
        """Watch this profile's tunnel (starting it when none runs) unless already watching."""
        if not self.watching:
            self.watching = True
            self.watch_tunnel()

    @work(thread=True, exclusive=True, group="tunnel", exit_on_error=False)
    def watch_tunnel(self) -> None:
        try:
            if self.session is None:
                self.session = self.backend.tunnel(self.profile_name, self.profile, self.prompter)
            for status in self.session.statuses():
                self.post_message(TunnelChanged(status))
        except WaError as exc:
            down = TunnelStatus(self.profile_name, TunnelState.DOWN, message=exc.message, hint=exc.hint)
            self.post_message(TunnelChanged(down))
        finally:
            self.watching = False

    def on_tunnel_changed(self, message: TunnelChanged) -> None:
        from wa_onboard.tui.dashboard import DashboardScreen

        self.last_status = message.status
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                screen.show(message.status)

    def reconnect_tunnel(self) -> None:
        self._tunnel_call("reconnect")

    def stop_tunnel(self) -> None:
        self._tunnel_call("stop")

    @work(thread=True, group="tunnel-control", exit_on_error=False)
    def _tunnel_call(self, what: str) -> None:
        session = self.session
        if session is None:
            return
        try:
            getattr(session, what)()
        except WaError as exc:
            self.notify(f"{exc.message}\n{exc.hint}", severity="error", markup=False)
        if what == "reconnect":
            self.call_from_thread(self.ensure_tunnel)

    def _leave_tunnel(self) -> None:
        """Stop watching this profile's tunnel: it keeps running when it can, else it stops."""
        session, self.session = self.session, None
        if session is not None and self.watching:
            if session.can_detach:
                session.detach()
            else:
                session.stop()

    @property
    def tunnel_live(self) -> bool:
        return self.watching and self.last_status is not None and self.last_status.state in LIVE

    # -- misc actions --------------------------------------------------------------------------

    def open_browser(self, url: str) -> None:
        self._open_browser(url)

    @work(thread=True, group="browser", exit_on_error=False)
    def _open_browser(self, url: str) -> None:
        if self.backend.open_browser(url):
            self.notify(f"Opened {url}", markup=False)
        else:
            self.notify(f"No browser could be opened. Go to {url}", severity="warning", markup=False)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        # The screen's keys, then the app's (not every scroll key of the focused widget); keys for
        # the same action share a line.
        by_action: dict[str, tuple[list[str], str]] = {}
        for node in (self.screen, self):
            for active in self.active_bindings.values():
                binding = active.binding
                if active.node is not node or not active.enabled or not binding.description or binding.system:
                    continue
                action = binding.action.removeprefix("app.")
                action = "quit" if action == "interrupt" else action  # one line: both leave
                if action.rsplit(".", 1)[-1] in ("focus_next", "focus_previous", "copy_text"):
                    continue
                by_action.setdefault(action, ([], binding.tooltip or binding.description))[0].append(
                    self.get_key_display(binding)
                )
        keys = [(", ".join(shown), text) for shown, text in by_action.values()]
        about = getattr(self.screen, "HELP", "") or "wa-onboard gets you onto the lab's JupyterHub."
        subtitle = getattr(self.screen, "subtitle", lambda: "")()
        self.push_screen(HelpScreen(subtitle or self.title, keys, about))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def cancel_on_exit(self, event: threading.Event) -> None:
        """Set ``event`` when the app leaves, so the worker that waits on it can finish."""
        self._cancels.append(event)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.group.startswith(("tunnel", "browser")):
            self.notify(f"unexpected error: {event.worker.error!r}", severity="error", markup=False)

    # -- leaving -------------------------------------------------------------------------------

    async def action_quit(self) -> None:
        self.request_quit()

    async def action_interrupt(self) -> None:
        """Ctrl-C: leave as ``q`` does, but exit 130 as an interrupted command does."""
        self._interrupted = True
        self.request_quit()

    def request_quit(self) -> None:
        """Leave; with a live tunnel, first ask whether it keeps running in the background."""
        if self._quitting:
            return
        if isinstance(self.screen, QuitModal):  # asked twice: leave it running when it can
            self.screen.dismiss("keep" if self.screen.can_keep else "stop")
            return
        if self.tunnel_live and self.session is not None:
            url = self.last_status.url if self.last_status else self.profile.url
            self.push_screen(QuitModal(url, self.session.can_detach), self._quit_answered)
        else:
            self._finish()

    def on_unmount(self) -> None:
        """However the app ends, no worker is left waiting on a person or a tunnel."""
        self.prompter.close()
        for event in self._cancels:
            event.set()
        self._leave_tunnel()

    def _quit_answered(self, choice: QuitChoice | None) -> None:
        if choice is not None:
            self._finish(choice)
        else:  # stayed: a later plain quit is not an interruption
            self._interrupted = False

    @work(thread=True, group="quit", exit_on_error=False)
    def _finish(self, choice: QuitChoice = "keep") -> None:
        self._quitting = True
        self.prompter.close()
        for event in self._cancels:
            event.set()
        session, self.session = self.session, None
        try:
            if session is not None and self.watching:
                if choice == "keep" and session.can_detach:
                    session.detach()
                else:
                    session.stop()
        finally:
            self.call_from_thread(self.exit, 130 if self._interrupted else self.exit_code)


def make_app(
    backend: Backend | None = None,
    store: ProfileStore | None = None,
    profile_name: str = DEFAULT_PROFILE,
    profile: Profile | None = None,
    *,
    clock: Callable[[], float] = time.time,
    wizard: bool = False,
) -> WaApp:
    """The app as the CLI, the tests and the screenshot script build it."""
    if backend is None:
        from wa_onboard.tui.backend import RealBackend

        backend = RealBackend()
    return WaApp(backend, store or ProfileStore(), profile_name, profile, clock=clock, wizard=wizard)
