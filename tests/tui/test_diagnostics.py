"""The diagnostics screen: checks fill in live, grouped by layer, hints under failures, re-run, report."""

from __future__ import annotations

import asyncio
import stat
import threading
from pathlib import Path

from textual.containers import Vertical

from tests.tui.scenes import screen_name, wait_for
from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import Profile, ProfileStore
from wa_onboard.core.results import CheckResult, CheckStatus
from wa_onboard.tui.app import WaApp, make_app
from wa_onboard.tui.diagnostics import DiagnosticsScreen
from wa_onboard.tui.fake import FakeBackend, demo_checks
from wa_onboard.tui.widgets import CheckRow, widget_id

MEMBER = Profile(user="bbadger")


def diagnostics_app(tmp_path: Path, fake: FakeBackend) -> WaApp:
    return make_app(fake, ProfileStore(tmp_path / "c.toml"), profile=MEMBER)


async def open_diagnostics(pilot, app: WaApp) -> DiagnosticsScreen:  # type: ignore[no-untyped-def]
    await wait_for(pilot, lambda: screen_name(app) == "DashboardScreen", "the dashboard")
    await pilot.press("d")
    await wait_for(pilot, lambda: screen_name(app) == "DiagnosticsScreen", "diagnostics")
    screen = app.screen
    assert isinstance(screen, DiagnosticsScreen)
    return screen


def row(screen: DiagnosticsScreen, check_id: str) -> CheckRow:
    """The row of one check, found by the check's id (not by a widget id made from it)."""
    return next(r for r in screen.query(CheckRow) if r.result.id == check_id)


def test_checks_fill_in_live_grouped_by_layer_with_hints(tmp_path: Path) -> None:
    fake = FakeBackend(check_hold=threading.Event())
    checks = demo_checks()

    async def scenario() -> None:
        app = diagnostics_app(tmp_path, fake)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_diagnostics(pilot, app)
            half = len(checks) // 2
            await wait_for(pilot, lambda: len(screen.query(CheckRow)) == half, "the first half")
            await pilot.pause()
            assert screen.running
            assert f"Checking… {half} done" in str(screen.query_one("#doctor-summary").render())
            assert fake.check_hold is not None
            fake.check_hold.set()
            await wait_for(pilot, lambda: not screen.running, "the rest")
            layers = [section.id for section in screen.query_one("#checks").query(Vertical)]
            assert layers == [
                "layer-local",
                "layer-network",
                "layer-ssh",
                "layer-workstation",
                "layer-tunnel",
            ]
            titles = [screen.query_one(f"#{layer}").border_title for layer in layers]
            assert titles == ["This laptop", "Network", "SSH", "Workstation", "Tunnel"]
            in_ws = [row.result.id for row in screen.query_one("#layer-workstation").query(CheckRow)]
            assert in_ws == [c.id for c in checks if c.layer == "workstation"]
            failure = str(row(screen, "workstation.hub-port").render())
            assert "✗ nothing listens on the workstation's port 8000" in failure
            assert "→ ask the lab admins to start JupyterHub" in failure
            assert "conda clean --all" in str(row(screen, "workstation.disk").render())
            skipped = str(row(screen, "workstation.hub-health").render())
            assert "because workstation.hub-port failed" in skipped and "→" not in skipped
            summary = str(screen.query_one("#doctor-summary").render())
            assert "15 ok" in summary and "1 warnings" in summary and "1 failed" in summary
            assert "4 skipped" in summary and "Start with the first failure." in summary

    asyncio.run(scenario())


def test_rerun_runs_every_check_again(tmp_path: Path) -> None:
    fake = FakeBackend()

    async def scenario() -> int:
        app = diagnostics_app(tmp_path, fake)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_diagnostics(pilot, app)
            await wait_for(pilot, lambda: not screen.running, "the first run")
            fake.checks = [CheckResult("local.ssh-client", "local", CheckStatus.OK, "OpenSSH_9.2p1")]
            await pilot.press("r")
            await wait_for(pilot, lambda: fake.doctor_runs == 2 and not screen.running, "the second run")
            await pilot.pause()
            assert "Nothing failed." in str(screen.query_one("#doctor-summary").render())
            return len(screen.query(CheckRow))

    assert asyncio.run(scenario()) == 1


def test_save_writes_the_redacted_report_0600(tmp_path: Path) -> None:
    fake = FakeBackend()
    target = tmp_path / "out" / "wa-report.txt"

    async def scenario() -> None:
        app = diagnostics_app(tmp_path, fake)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_diagnostics(pilot, app)
            await wait_for(pilot, lambda: not screen.running, "the checks")
            await pilot.press("s")
            await wait_for(pilot, lambda: screen_name(app) == "SaveReportModal", "the save dialog")
            app.screen.query_one("#report-path").value = str(target)  # type: ignore[attr-defined]
            await pilot.press("enter")
            await wait_for(pilot, target.exists, "the report")

    asyncio.run(scenario())
    text = target.read_text()
    assert "profile default (bbadger@carproject-06.engr.wisc.edu)" in text
    assert "[fail] workstation/workstation.hub-port" in text
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_missing_doctor_is_said_not_crashed(tmp_path: Path) -> None:
    class NoDoctor(FakeBackend):
        def doctor(self, name, profile, cancel):  # type: ignore[no-untyped-def,override]
            raise WaError("the diagnostics checks are not part of this version yet", "update wa-onboard")
            yield  # pragma: no cover

    async def scenario() -> str:
        app = diagnostics_app(tmp_path, NoDoctor())
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_diagnostics(pilot, app)
            await wait_for(pilot, lambda: not screen.running, "the end")
            await pilot.pause()
            return str(screen.query_one("#doctor-summary").render())

    assert "not part of this version yet → update wa-onboard" in asyncio.run(scenario())


def real_checks() -> list[CheckResult]:
    """One result per check of the real doctor's registry (their ids have dots: "local.profile")."""
    from wa_onboard.core.doctor import REGISTRY

    statuses = [CheckStatus.OK, CheckStatus.WARN, CheckStatus.FAIL, CheckStatus.SKIP]
    return [
        CheckResult(check.id, check.layer, statuses[index % 4], f"{check.id} said something", hint="do X")
        for index, check in enumerate(REGISTRY.checks)
    ]


def test_the_real_doctors_check_ids_open_without_a_crash(tmp_path: Path) -> None:
    """Every id of the real registry becomes a row (it crashed with BadIdentifier on 'check-local.profile')."""
    checks = real_checks()
    fake = FakeBackend(checks=checks)

    async def scenario() -> list[str]:
        app = diagnostics_app(tmp_path, fake)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_diagnostics(pilot, app)
            await wait_for(pilot, lambda: not screen.running, "the checks")
            await pilot.pause()
            assert screen_name(app) == "DiagnosticsScreen"
            profile_row = screen.query_one(f"#{widget_id('check', 'local.profile')}", CheckRow)
            assert profile_row.result.id == "local.profile"
            return [row.result.id for row in screen.query(CheckRow)]

    assert asyncio.run(scenario()) == [c.id for c in checks]


def test_widget_ids_are_valid_and_distinct_for_any_key() -> None:
    from textual.dom import check_identifiers

    from wa_onboard.core.doctor import REGISTRY

    keys = [c.id for c in REGISTRY.checks] + ["a.b", "a_b", "a-b", "a_2eb", "ü", "x y", "_", ""]
    ids = [widget_id("check", key) for key in keys]
    check_identifiers("id", *ids)
    assert len(set(ids)) == len(ids)
    assert widget_id("step", "key") == "step-key"
