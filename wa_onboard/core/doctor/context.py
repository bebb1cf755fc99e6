"""What the checks of one doctor run share: the profile, the facts gathered once, and the ssh calls.

Facts that several checks read (the client version, the SSH banner, the workstation facts) are
computed once per run, by whichever check asks first; the others wait for that one answer.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from wa_onboard.core import tunnel
from wa_onboard.core.doctor import facts as facts_mod
from wa_onboard.core.doctor.registry import CheckFailed
from wa_onboard.core.errors import WaError
from wa_onboard.core.profile import DEFAULT_PROFILE, Profile, command_line
from wa_onboard.core.remote import RemoteResult, SubprocessShell

T = TypeVar("T")

#: a remote script that includes `bash -l` startup and conda gets this long
FACTS_TIMEOUT = 45.0
#: over a live master the facts take well under a second; longer means the master's path is dead
#: (not noticed yet by its keep-alives), and the fresh login answers instead
MASTER_TIMEOUT = 15.0


@dataclass(frozen=True)
class WorkstationRun:
    """The one round trip to the workstation: how it went and what it found."""

    result: RemoteResult
    facts: facts_mod.WorkstationFacts
    fresh: bool
    """True when it made its own login; False when it rode the live control master."""


@dataclass
class DoctorContext:
    profile_name: str = DEFAULT_PROFILE
    load_profile: Callable[[], Profile] = Profile
    """Called by the ``local.profile`` check; raising WaError makes that check fail."""
    cancel: threading.Event = field(default_factory=threading.Event)
    _profile: Profile | None = None
    _memo: dict[str, Future[Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ the profile
    @property
    def profile(self) -> Profile:
        if self._profile is None:
            raise CheckFailed("no valid profile", self.command("setup"))
        return self._profile

    def set_profile(self, profile: Profile) -> None:
        self._profile = profile

    def peek_profile(self) -> Profile | None:
        return self._profile

    def command(self, sub: str) -> str:
        """``wa-onboard [--profile NAME] <sub>``: the command a hint tells the member to run."""
        return command_line(self.profile_name, sub)

    def live_tunnel(self) -> tunnel.TunnelRecord | None:
        """This profile's tunnel record when its supervisor is alive (its lock is held, its pid is ours)."""

        return self.once("live-tunnel", lambda: tunnel.live_record(self.profile_name))

    @property
    def tunnel_port(self) -> int:
        """The local port the tunnel really uses: connect moves off a busy profile port on its own
        (8000 taken, 8001 used), so the tunnel checks ask the live supervisor's record first."""
        record = self.live_tunnel()
        return record.local_port if record is not None and record.local_port else self.profile.local_port

    # ------------------------------------------------------------------ once-per-run facts
    def once(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` the first time ``key`` is asked for; every later caller gets that answer
        (or the same exception) without computing again."""
        with self._lock:
            future = self._memo.get(key)
            owner = future is None
            if future is None:
                future = self._memo[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:  # handed to every waiter, re-raised below
                future.set_exception(exc)
        value: T = future.result()
        return value

    def start(self, key: str, compute: Callable[[], T]) -> None:
        """Begin a once-fact in the background (a prefetch); ``once(key, ...)`` then waits for it."""
        with self._lock:
            if key in self._memo:
                return
            future: Future[Any] = Future()
            self._memo[key] = future

        def work() -> None:
            try:
                future.set_result(compute())
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=work, name=f"doctor-{key}", daemon=True).start()

    def peek(self, key: str) -> Any:
        """A once-fact if it has been computed successfully, else None (for the report)."""
        with self._lock:
            future = self._memo.get(key)
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()

    # ------------------------------------------------------------------ ssh
    def ssh(self, role: str, command: str, *, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        """A fresh BatchMode login on the jump host or the workstation running one command."""
        argv = [*tunnel.ssh_argv(self.profile_name, role, fresh=True), command]
        try:
            return tunnel.run_quiet(argv, timeout)
        except subprocess.TimeoutExpired:
            raise CheckFailed(
                f"ssh to the {role} did not finish within {timeout:.0f} s",
                "check your network connection, then run the doctor again",
            ) from None
        except OSError as exc:
            raise WaError(f"cannot run ssh: {exc}", "install the OpenSSH client") from None

    def workstation_run(self, *, fresh: bool) -> WorkstationRun:
        """Run the facts script: over the live master (``fresh=False``) or a new login."""
        argv = tunnel.ssh_argv(self.profile_name, "ws", fresh=fresh)
        shell = SubprocessShell(argv, env=tunnel.quiet_env())
        result = shell.run(facts_mod.script(self.profile), timeout=FACTS_TIMEOUT if fresh else MASTER_TIMEOUT)
        return WorkstationRun(result, facts_mod.WorkstationFacts(result.stdout, self.profile), fresh)

    def master_alive(self) -> bool:
        return self.once("master", lambda: tunnel.master_alive(self.profile_name))

    def prefetch_workstation(self) -> None:
        """If the tunnel's control master is up, gather the facts over it now, while the fresh
        login checks run: the workstation checks then wait for nothing."""
        if self.master_alive():
            self.start("workstation.master", lambda: self.workstation_run(fresh=False))

    def workstation(self) -> WorkstationRun:
        """The facts: from the ride on the master if that worked, else from a fresh login now."""

        def compute() -> WorkstationRun:
            with self._lock:
                prefetch = self._memo.get("workstation.master")
            if prefetch is not None:
                try:
                    run: WorkstationRun = prefetch.result()
                    if run.result.reached_script:
                        return run
                except Exception:  # noqa: S110 - the fresh login below reports what is wrong
                    pass
            return self.workstation_run(fresh=True)

        return self.once("workstation", compute)

    def facts(self) -> facts_mod.WorkstationFacts:
        """For the workstation checks (which run only after ssh.workstation passed)."""
        run = self.workstation()
        if not run.result.reached_script:
            raise CheckFailed(
                "could not run the checks on the workstation",
                self.command("doctor") + " again; if it persists, send the report to the lab admins",
                run.result.stderr.strip()[-500:],
            )
        return run.facts
