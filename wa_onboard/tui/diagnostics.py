"""The doctor on screen: checks fill in as they finish, grouped by layer, hints under failures."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.errors import NoWidget
from textual.message import Message
from textual.widgets import Footer, Label
from textual.worker import Worker, WorkerState

from wa_onboard.core import paths
from wa_onboard.core.errors import Cancelled, WaError
from wa_onboard.core.results import CheckResult, CheckStatus
from wa_onboard.tui.modals import SaveReportModal
from wa_onboard.tui.screen import WaScreen
from wa_onboard.tui.widgets import CheckRow, TitleBar, widget_id

#: bottom up, as the doctor checks them
LAYERS = {
    "local": "This laptop",
    "network": "Network",
    "ssh": "SSH",
    "workstation": "Workstation",
    "tunnel": "Tunnel",
}


class DiagnosticsScreen(WaScreen):
    HELP = (
        "Every layer from this laptop to the hub, checked bottom up. A failure says what to do; "
        "checks that depend on a failed one are skipped. r runs them again, s saves a report with "
        "passwords, codes and keys removed, for the lab admins."
    )
    BINDINGS = [
        Binding("r", "rerun", "Re-run"),
        Binding("s", "save", "Save report"),
        Binding("escape", "back", "Back"),
    ]

    class CheckFinished(Message):
        def __init__(self, result: CheckResult) -> None:
            super().__init__()
            self.result = result

    class DoctorEnded(Message):
        def __init__(self, error: WaError | None = None) -> None:
            super().__init__()
            self.error = error

    def __init__(self) -> None:
        super().__init__()
        self.results: list[CheckResult] = []
        self.running = False
        self.settled = False
        """The run is over and the view has moved to the first problem (tests wait for this)."""
        self.cancel = threading.Event()

    def subtitle(self) -> str:
        return f"diagnostics: {self.wa.profile_name}"

    def compose(self) -> ComposeResult:
        yield TitleBar(self.subtitle())
        yield Label("", id="doctor-summary")
        yield VerticalScroll(id="checks")
        yield Footer()

    async def on_mount(self) -> None:
        await self.action_rerun()

    def on_unmount(self) -> None:
        self.cancel.set()

    async def action_rerun(self) -> None:
        if self.running:
            return
        self.running = True
        self.settled = False
        self.cancel = threading.Event()
        self.wa.cancel_on_exit(self.cancel)
        self.results = []
        await self.query_one("#checks", VerticalScroll).remove_children()
        self._summarise()
        self.run_doctor()

    @work(thread=True, exclusive=True, group="doctor", exit_on_error=False)
    def run_doctor(self) -> None:
        app = self.wa
        try:
            for result in app.backend.doctor(app.profile_name, app.profile, self.cancel):
                self.post_message(self.CheckFinished(result))
        except Cancelled:
            self.post_message(self.DoctorEnded(None))
        except WaError as exc:
            self.post_message(self.DoctorEnded(exc))
        else:
            self.post_message(self.DoctorEnded(None))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "doctor" and event.state is WorkerState.ERROR:
            self.post_message(self.DoctorEnded(WaError(f"unexpected error: {event.worker.error!r}")))

    async def on_diagnostics_screen_check_finished(self, message: CheckFinished) -> None:
        """Awaited mounts: by the time the run ends every row is in the DOM (see _show_first_problem)."""
        result = message.result
        self.results.append(result)
        section = await self._section(result.layer)
        await section.mount(CheckRow(result))
        self._summarise()

    def on_diagnostics_screen_doctor_ended(self, message: DoctorEnded) -> None:
        self.running = False
        self._summarise(message.error)
        self.call_after_refresh(self._show_first_problem)

    def _show_first_problem(self) -> None:
        """At 80x24 not every layer fits: bring the first failure (else warning) into view.

        Scrolling needs the row's place on screen: a row not laid out yet (a burst of results ends
        the run before the next refresh) would scroll to the top, so wait for the refresh that
        places it."""
        for status in (CheckStatus.FAIL, CheckStatus.WARN):
            rows = [row for row in self.query(CheckRow) if row.result.status is status]
            if rows:
                if not self._laid_out(rows[0]):
                    self.call_after_refresh(self._show_first_problem)
                    return
                self.query_one("#checks", VerticalScroll).scroll_to_widget(
                    rows[0], animate=False, immediate=True
                )
                break
        self.settled = True

    def _laid_out(self, row: CheckRow) -> bool:
        try:
            self.find_widget(row)
        except NoWidget:
            return False
        return True

    async def _section(self, layer: str) -> Vertical:
        """The layer's group, created on its first result and kept in bottom-up order."""
        container = self.query_one("#checks", VerticalScroll)
        found = container.query(f"#{widget_id('layer', layer)}")
        if found:
            return found.first(Vertical)
        section = Vertical(id=widget_id("layer", layer), classes="layer")
        section.border_title = LAYERS.get(layer, layer.capitalize())
        order = list(LAYERS)
        rank = order.index(layer) if layer in order else len(order)
        later = [
            child
            for child in container.children
            if child.id in {widget_id("layer", name) for name in order[rank + 1 :]}
        ]
        await container.mount(section, before=later[0] if later else None)
        return section

    def _summarise(self, error: WaError | None = None) -> None:
        counts = Counter(r.status for r in self.results)
        parts: list[str | tuple[str, str]] = []
        if self.running:
            parts.append((f"Checking… {len(self.results)} done  ", "bold"))
        for status, word, style in (
            (CheckStatus.OK, "ok", "$text-success"),
            (CheckStatus.WARN, "warnings", "$text-warning"),
            (CheckStatus.FAIL, "failed", "$text-error"),
            (CheckStatus.SKIP, "skipped", "$foreground-muted"),
        ):
            if counts[status]:
                parts += [(f"{counts[status]} {word}", f"bold {style}"), "  "]
        if not self.running and not error:
            verdict = (
                ("Start with the first failure.", "$text-error")
                if counts[CheckStatus.FAIL]
                else ("Nothing failed.", "$text-success")
            )
            parts.append(verdict)
        if error is not None:
            parts.append((f"{error.message}" + (f" → {error.hint}" if error.hint else ""), "$text-error"))
        self.query_one("#doctor-summary", Label).update(Content.assemble(*parts))

    def action_save(self) -> None:
        if self.running or not self.results:
            self.notify("Wait for the checks to finish first.", severity="warning")
            return
        self.app.push_screen(SaveReportModal(Path.home() / "wa-report.txt"), self._save_to)

    def _save_to(self, path: Path | None) -> None:
        if path is not None:
            self.save_report(path, list(self.results))

    @work(thread=True, group="report", exit_on_error=False)
    def save_report(self, path: Path, results: list[CheckResult]) -> None:
        app = self.wa
        try:
            text = app.backend.report(app.profile_name, app.profile, results)
            paths.write_private_file(path.absolute(), text)
        except (WaError, OSError) as exc:
            self.app.notify(f"Report not saved: {exc}", severity="error", markup=False)
        else:
            self.app.notify(f"Report saved to {path}", markup=False)

    def action_back(self) -> None:
        self.app.pop_screen()
