"""``wa-onboard doctor``: layered checks (local, network, ssh, workstation, tunnel) with fix hints.

Front ends call ``run_doctor`` (results stream to a callback as each check ends) or, from the
TUI, ``iter_checks``; ``render_report`` makes the redacted text report for the lab admins.
"""

from __future__ import annotations

import platform
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from wa_onboard import __version__
from wa_onboard.core.doctor import checks_local, checks_remote, checks_tunnel
from wa_onboard.core.doctor.context import DoctorContext
from wa_onboard.core.doctor.registry import LAYERS, Check, Registry, ResultCallback, run_checks
from wa_onboard.core.profile import DEFAULT_PROFILE, Profile
from wa_onboard.core.results import CheckResult, CheckStatus

__all__ = [
    "LAYERS",
    "REGISTRY",
    "Check",
    "DoctorRun",
    "build_registry",
    "iter_checks",
    "render_report",
    "run_doctor",
]


def build_registry() -> Registry:
    reg = Registry()
    checks_local.register(reg)
    checks_remote.register(reg)
    checks_tunnel.register(reg)
    return reg


REGISTRY = build_registry()


@dataclass(frozen=True)
class DoctorRun:
    profile_name: str
    results: tuple[CheckResult, ...]
    versions: Mapping[str, str] = field(default_factory=dict)
    """OS, OpenSSH, Python, wa-onboard, and what the run learned (conda, JupyterHub)."""
    profile: Profile | None = None

    @property
    def ok(self) -> bool:
        """Nothing failed (warnings and skips-after-success are fine)."""
        return not any(r.status is CheckStatus.FAIL for r in self.results)


def local_versions() -> dict[str, str]:
    from wa_onboard.core import tunnel

    try:
        ssh = tunnel.client_version()
    except OSError:
        ssh = None
    return {
        "wa-onboard": __version__,
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "OpenSSH": ssh.text if ssh else "not found",
    }


def _versions(ctx: DoctorContext) -> dict[str, str]:
    versions = {"wa-onboard": __version__, "OS": platform.platform(), "Python": platform.python_version()}
    ssh = ctx.peek("ssh-version")
    versions["OpenSSH"] = ssh.text if ssh is not None else "unknown"
    run = ctx.peek("workstation")
    facts = run.facts if run is not None and run.result.reached_script else None
    loc = facts.conda if facts is not None else None
    versions["conda"] = loc.version if loc is not None and loc.version else "unknown"
    hub = ctx.peek("hub-version") or (facts.hub_version if facts is not None else "")
    versions["JupyterHub"] = hub or "unknown"
    if facts is not None:
        versions["workstation OS"] = facts.os
    return versions


_last_lock = threading.Lock()
_last: DoctorRun | None = None


def run_doctor(
    profile_name: str = DEFAULT_PROFILE,
    load_profile: Callable[[], Profile] | None = None,
    on_result: ResultCallback | None = None,
    *,
    cancel: threading.Event | None = None,
    checks: Sequence[Check] | None = None,
) -> DoctorRun:
    """Run every check (or ``checks``), independent ones at the same time. ``load_profile`` defaults
    to the stored profile; the ``local.profile`` check reports it if that fails."""
    global _last
    if load_profile is None:
        from wa_onboard.core.profile import ProfileStore

        def stored() -> Profile:
            return ProfileStore().load(profile_name) or Profile()

        load_profile = stored
    ctx = DoctorContext(
        profile_name=profile_name, load_profile=load_profile, cancel=cancel or threading.Event()
    )
    results = run_checks(checks if checks is not None else REGISTRY.checks, ctx, on_result, cancel=ctx.cancel)
    run = DoctorRun(profile_name, tuple(results), _versions(ctx), ctx.peek_profile())
    with _last_lock:
        _last = run
    return run


def iter_checks(
    profile: Profile, *, cancel: threading.Event | None = None, name: str = DEFAULT_PROFILE
) -> Iterator[CheckResult]:
    """Results as they finish, for a front end that renders them live (the TUI's diagnostics)."""
    done: queue.Queue[CheckResult | None] = queue.Queue()

    def work() -> None:
        try:
            run_doctor(name, lambda: profile, done.put, cancel=cancel)
        finally:
            done.put(None)

    threading.Thread(target=work, name="doctor", daemon=True).start()
    while (result := done.get()) is not None:
        yield result


def render_report(
    profile: Profile | None,
    results: Sequence[CheckResult],
    *,
    name: str = DEFAULT_PROFILE,
    versions: Mapping[str, str] | None = None,
    secrets: Sequence[str] = (),
) -> str:
    """The support report, redacted. Versions default to the last run's when these are its results."""
    from wa_onboard.core.doctor.report import build_report

    if versions is None:
        with _last_lock:
            last = _last
        same = last is not None and list(last.results) == list(results)
        versions = dict(last.versions) if same and last is not None else local_versions()
        if same and last is not None:
            name = last.profile_name
    return build_report(name, profile, results, versions, secrets=secrets)
