"""Small widgets the screens share: a setup step's row, a doctor check's row, and time formats."""

from __future__ import annotations

from dataclasses import replace

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Label, Static

from wa_onboard.core.prompts import server_text
from wa_onboard.core.results import CheckResult, CheckStatus, StepStatus

STEP_ICONS = {
    StepStatus.PENDING: "·",
    StepStatus.RUNNING: "▶",
    StepStatus.DONE: "✓",
    StepStatus.SKIPPED: "↷",
    StepStatus.FAILED: "✗",
}
CHECK_ICONS = {CheckStatus.OK: "✓", CheckStatus.WARN: "!", CheckStatus.FAIL: "✗", CheckStatus.SKIP: "-"}
CHECK_STYLES = {
    CheckStatus.OK: "$text-success",
    CheckStatus.WARN: "$text-warning",
    CheckStatus.FAIL: "$text-error",
    CheckStatus.SKIP: "$foreground-muted",
}


def widget_id(prefix: str, key: str) -> str:
    """A valid, unique Textual id for a core id: check and step ids have dots ("local.profile").

    Letters, digits and "-" are kept; every other byte becomes "_xx" (its hex), so two keys never
    share an id and the common case stays readable.
    """
    safe = "".join(
        chr(byte) if chr(byte).isascii() and (chr(byte).isalnum() or chr(byte) == "-") else f"_{byte:02x}"
        for byte in key.encode()
    )
    return f"{prefix}-{safe}"


def fmt_seconds(seconds: float) -> str:
    """A step's time: whole seconds are what a member can act on."""
    if seconds < 1:
        return "<1s"
    whole = int(seconds)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60:02d}s"


def fmt_uptime(seconds: float) -> str:
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


class StepRow(Horizontal):
    """One setup step: icon, title (with the summary once finished), and its time."""

    def __init__(self, step_id: str, title: str) -> None:
        super().__init__(id=widget_id("step", step_id), classes="step-row -pending")
        self.step_id = step_id
        self.title = title
        self.status = StepStatus.PENDING
        # Made here, not in compose: events can arrive before the row is mounted.
        self._icon = Label(STEP_ICONS[StepStatus.PENDING], classes="step-icon")
        self._title = Label(title, classes="step-title")
        self._time = Label("", classes="step-time")

    def compose(self) -> ComposeResult:
        yield self._icon
        yield self._title
        yield self._time

    def show(self, status: StepStatus, summary: str = "", seconds: float | None = None) -> None:
        self.remove_class(f"-{self.status.value}")
        self.status = status
        self.add_class(f"-{status.value}")
        self._icon.update(STEP_ICONS[status])
        summary = server_text(summary).replace("\n", " ")  # a tool's words, on one line
        self._title.update(
            Content.assemble(self.title, (f"  {summary}" if summary else "", "$foreground-muted"))
        )
        self._time.update("" if seconds is None else fmt_seconds(seconds))


class CheckRow(Static):
    """One doctor check: icon, summary, time; the detail and the fix under a warning or failure."""

    def __init__(self, result: CheckResult) -> None:
        # the text from the start, not on mount: the row's height is right at its first layout, so the
        # diagnostics screen can scroll to it as soon as it is placed
        super().__init__(
            self._content(result),
            classes=f"check-row -{result.status.value}",
            id=widget_id("check", result.id),
        )
        self.result = result

    @staticmethod
    def _content(result: CheckResult) -> Content:
        r = result
        r = replace(r, summary=server_text(r.summary), detail=server_text(r.detail), hint=server_text(r.hint))
        parts: list[str | tuple[str, str]] = [(f"{CHECK_ICONS[r.status]} ", f"bold {CHECK_STYLES[r.status]}")]
        parts.append((r.summary, "$foreground-muted") if r.status is CheckStatus.SKIP else r.summary)
        if r.duration_ms and r.status is not CheckStatus.SKIP:
            parts.append((f"  {r.duration_ms} ms", "$foreground-muted"))
        if r.status in (CheckStatus.FAIL, CheckStatus.WARN):
            if r.detail:
                parts.append((f"\n  {r.detail}", "$foreground-muted"))
            if r.hint:
                parts += [("\n  → ", f"bold {CHECK_STYLES[r.status]}"), (r.hint, "italic")]
        return Content.assemble(*parts)


class TitleBar(Label):
    """The app's name and where the member is. (Textual's Header races screen switches.)"""

    def __init__(self, subtitle: str) -> None:
        super().__init__(
            Content.assemble(
                ("wa-onboard", "bold"), (f"  {subtitle}" if subtitle else "", "$foreground-muted")
            ),
            id="titlebar",
        )
