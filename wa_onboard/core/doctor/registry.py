"""A registry of checks with declared dependencies, run concurrently, streamed as each one ends.

A check runs once every check it depends on has finished. If one of those failed (or was itself
skipped), the check is not run: it is ``skip`` "because <check> failed", naming the root failure,
so one broken layer shows up as one failure and a column of skips, not a wall of red.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from wa_onboard.core.errors import WaError
from wa_onboard.core.results import CheckResult, CheckStatus

#: bottom up: a failure in one layer explains the skips above it
LAYERS = ("local", "network", "ssh", "workstation", "tunnel")

ResultCallback = Callable[[CheckResult], None]


@dataclass(frozen=True)
class Outcome:
    """What a check function returns; the runner adds the id, layer and duration."""

    status: CheckStatus
    summary: str
    detail: str = ""
    hint: str = ""


def ok(summary: str, detail: str = "") -> Outcome:
    return Outcome(CheckStatus.OK, summary, detail)


def warn(summary: str, hint: str = "", detail: str = "") -> Outcome:
    return Outcome(CheckStatus.WARN, summary, detail, hint)


def fail(summary: str, hint: str, detail: str = "") -> Outcome:
    return Outcome(CheckStatus.FAIL, summary, detail, hint)


class CheckFailed(WaError):
    """Raised inside a check (or a shared fact it needs) to end it as ``fail`` with a hint."""

    def __init__(self, message: str, hint: str = "", detail: str = "") -> None:
        super().__init__(message, hint)
        self.detail = detail


CheckFunc = Callable[[Any], Outcome]


@dataclass(frozen=True)
class Check:
    id: str
    layer: str
    title: str
    """What is checked, for a row before it has a result ("jump host resolves")."""
    func: CheckFunc = field(repr=False, compare=False)
    depends: tuple[str, ...] = ()


class Registry:
    """Checks in declaration order (which is also the report order)."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, check: Check) -> Check:
        if check.layer not in LAYERS:
            raise ValueError(f"{check.id}: unknown layer {check.layer!r}")
        if check.id in self._checks:
            raise ValueError(f"duplicate check id {check.id!r}")
        missing = [d for d in check.depends if d not in self._checks]
        if missing:  # declared-before-use also rules out cycles
            raise ValueError(f"{check.id}: depends on unknown or later check(s) {missing}")
        self._checks[check.id] = check
        return check

    def check(
        self, id: str, layer: str, title: str, depends: Iterable[str] = ()
    ) -> Callable[[CheckFunc], CheckFunc]:
        """Decorator form of ``add``."""

        def register(func: CheckFunc) -> CheckFunc:
            self.add(Check(id, layer, title, func, tuple(depends)))
            return func

        return register

    @property
    def checks(self) -> list[Check]:
        return list(self._checks.values())

    def __len__(self) -> int:
        return len(self._checks)

    def __getitem__(self, check_id: str) -> Check:
        return self._checks[check_id]


def _run_one(check: Check, ctx: Any) -> CheckResult:
    started = time.monotonic()
    try:
        outcome = check.func(ctx)
    except CheckFailed as exc:
        outcome = fail(exc.message, exc.hint, exc.detail)
    except WaError as exc:
        outcome = fail(
            exc.message, exc.hint or "run wa-onboard doctor --report FILE and send it to the lab admins"
        )
    except Exception as exc:  # a bug in a check must not hide every other result
        outcome = fail(
            f"the check itself crashed: {type(exc).__name__}: {exc}",
            "run wa-onboard doctor --report FILE and send it to the lab admins",
        )
    ms = int((time.monotonic() - started) * 1000)
    return CheckResult(
        check.id, check.layer, outcome.status, outcome.summary, outcome.detail, outcome.hint, ms
    )


def run_checks(
    checks: Sequence[Check],
    ctx: Any,
    on_result: ResultCallback | None = None,
    *,
    max_workers: int = 8,
    cancel: threading.Event | None = None,
) -> list[CheckResult]:
    """Run ``checks`` (each as soon as its dependencies are done); return results in input order.

    ``on_result`` is called once per check, from a worker thread, as each one finishes. Dependencies
    on checks not in ``checks`` are ignored, so a front end can run a subset.
    """
    by_id = {c.id: c for c in checks}
    deps = {c.id: [d for d in c.depends if d in by_id] for c in checks}
    results: dict[str, CheckResult] = {}
    root_cause: dict[str, str] = {}  # failed or skipped check -> the failure that explains it
    started: set[str] = set()
    lock = threading.Lock()
    all_done = threading.Event()
    if not checks:
        return []

    def finish(result: CheckResult) -> None:
        """Record a result, report it, then start whatever it unblocked."""
        with lock:
            results[result.id] = result
            if result.status is CheckStatus.FAIL:
                root_cause[result.id] = result.id
        if on_result is not None:
            on_result(result)
        schedule()

    def schedule() -> None:
        ready: list[Check] = []
        skipped: list[CheckResult] = []
        with lock:
            progress = True
            while progress:
                progress = False
                for c in checks:
                    if c.id in started or not all(d in results for d in deps[c.id]):
                        continue
                    started.add(c.id)
                    blocker = next((d for d in deps[c.id] if d in root_cause), None)
                    cancelled = cancel is not None and cancel.is_set()
                    if blocker is None and not cancelled:
                        ready.append(c)
                        continue
                    if blocker is None:
                        skip = CheckResult(c.id, c.layer, CheckStatus.SKIP, "cancelled")
                    else:
                        cause = root_cause[blocker]
                        root_cause[c.id] = cause
                        skip = CheckResult(c.id, c.layer, CheckStatus.SKIP, f"because {cause} failed")
                    results[c.id] = skip
                    skipped.append(skip)
                    progress = True  # a skip may settle checks further up
            complete = len(results) == len(checks)
        for skip in skipped:
            if on_result is not None:
                on_result(skip)
        for c in ready:
            pool.submit(_run_and_finish, c)
        if complete:  # set only after the last callback, so none races the return
            all_done.set()

    def _run_and_finish(check: Check) -> None:
        finish(_run_one(check, ctx))

    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="doctor") as pool:
        schedule()
        all_done.wait()
    return [results[c.id] for c in checks]
