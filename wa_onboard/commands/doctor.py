"""``wa-onboard doctor``: every layer checked, a table (or JSON), and a redacted support report."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wa_onboard import __version__
from wa_onboard.core.results import CheckResult, CheckStatus

if TYPE_CHECKING:
    from wa_onboard.context import CommandContext
    from wa_onboard.core.doctor import DoctorRun

#: the --json contract (tests/unit/test_doctor_contract.py pins it)
JSON_KEYS = ("version", "profile", "ok", "checks")
CHECK_KEYS = ("id", "layer", "status", "summary", "detail", "hint", "duration_ms")

_STYLE = {
    CheckStatus.OK: ("ok", "green"),
    CheckStatus.WARN: ("warn", "yellow"),
    CheckStatus.FAIL: ("FAIL", "bold red"),
    CheckStatus.SKIP: ("skip", "dim"),
}


def to_json(run: DoctorRun) -> dict[str, Any]:
    return {
        "version": __version__,
        "profile": run.profile_name,
        "ok": run.ok,
        "checks": [{k: _value(getattr(r, k)) for k in CHECK_KEYS} for r in run.results],
    }


def _value(v: object) -> object:
    return v.value if isinstance(v, CheckStatus) else v


def summary_line(results: Sequence[CheckResult]) -> str:
    counts = {s: sum(r.status is s for r in results) for s in CheckStatus}
    verdict = "nothing failed" if not counts[CheckStatus.FAIL] else f"{counts[CheckStatus.FAIL]} failed"
    return (
        f"{len(results)} checks: {counts[CheckStatus.OK]} ok, {counts[CheckStatus.WARN]} warnings, "
        f"{counts[CheckStatus.FAIL]} failed, {counts[CheckStatus.SKIP]} skipped - {verdict}"
    )


def render_table(run: DoctorRun) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from wa_onboard.core.doctor import LAYERS

    console = Console()
    table = Table(title=f"wa-onboard doctor - profile {run.profile_name}", show_lines=False, expand=False)
    table.add_column("layer", style="bold")
    table.add_column("check")
    table.add_column("status")
    table.add_column("result", overflow="fold")
    table.add_column("ms", justify="right", style="dim")
    for layer in LAYERS:
        rows = [r for r in run.results if r.layer == layer]
        for i, r in enumerate(rows):
            label, style = _STYLE[r.status]
            text = Text(r.summary)
            if r.hint and r.status in (CheckStatus.FAIL, CheckStatus.WARN):
                text.append(f"\nfix: {r.hint}", style="cyan")
            table.add_row(
                layer if i == 0 else "",
                r.id.split(".", 1)[-1],
                Text(label, style=style),
                text,
                str(r.duration_ms),
                end_section=i == len(rows) - 1,
            )
    console.print(table)
    style = "bold green" if run.ok else "bold red"
    console.print(Text(summary_line(run.results), style=style))


def _report_target(report: str | None) -> Path | None:
    """Where ``--report`` goes, checked before any check runs: a wrong path is said at once."""
    if not report:
        return None
    from wa_onboard.core import paths
    from wa_onboard.core.errors import InvalidInput

    target = Path(report).expanduser().absolute()
    problem = paths.new_file_problem(target)
    if problem:
        raise InvalidInput("--report", problem, "give a file in a folder you can write, e.g. ~/wa-report.txt")
    return target


def run(command: str, ctx: CommandContext) -> int:
    from wa_onboard.core.doctor import run_doctor
    from wa_onboard.core.errors import WaError

    args = ctx.args
    target = _report_target(getattr(args, "report", None))
    as_json = bool(getattr(args, "json", False))
    live = not as_json and sys.stderr.isatty()

    def progress(result: CheckResult) -> None:
        if live:
            label, _ = _STYLE[result.status]
            sys.stderr.write(f"\r\033[K  {label:4} {result.id}")
            sys.stderr.flush()

    doctor_run = run_doctor(ctx.profile_name, ctx.load_profile, progress)
    if live:
        sys.stderr.write("\r\033[K")
    if as_json:
        sys.stdout.write(json.dumps(to_json(doctor_run), indent=2) + "\n")
    else:
        render_table(doctor_run)
    if target is not None:
        from wa_onboard.core import paths
        from wa_onboard.core.doctor.report import build_report

        text = build_report(
            doctor_run.profile_name, doctor_run.profile, doctor_run.results, doctor_run.versions
        )
        try:
            paths.write_private_file(target, text)
        except OSError as exc:
            raise WaError(f"cannot write {target}: {exc.strerror or exc}", "pick a writable path") from None
        if not as_json:
            sys.stdout.write(f"report written to {target} (secrets removed): send it to the lab admins\n")
    return 0 if doctor_run.ok else 1
